//! The hosts-mode test bed (`CORRAL_TESTBED_NET=hosts`) as a test uses it: node n<i> is network
//! namespace `<prefix><i>`, faults are made and healed by `scripts/slurm-test-cluster fault|heal`
//! (the one place that knows how: link down, nft loss, the login side cut off), and a test that
//! broke a node leaves the bed whole again when it ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::slurm::{self, Slurm};

/// The hosts bed and its namespace names.
pub struct Hosts {
    pub bed: Slurm,
    prefix: String,
}

/// `scripts/slurm-test-cluster`.
pub fn bed_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/slurm-test-cluster")
}

impl Hosts {
    /// The hosts bed if it runs ([`slurm::require_hosts`]: under CI a missing bed fails).
    pub fn require() -> Option<Hosts> {
        let bed = slurm::require_hosts()?;
        let prefix = bed
            .var("CORRAL_TESTBED_NS_PREFIX")
            .expect("the hosts bed names its namespaces")
            .to_string();
        Some(Hosts { bed, prefix })
    }

    /// The network namespace of node `node` (`n2` → `crl17917n2`).
    pub fn ns(&self, node: &str) -> String {
        format!("{}{}", self.prefix, node.trim_start_matches('n'))
    }

    /// Every pid in node `node`'s network namespace.
    pub fn pids(&self, node: &str) -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.ns(node)])
            .output()
            .expect("ip netns pids");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// SIGKILL to every process of node `node`, slurmd included: the node dies.
    pub fn kill_node(&self, node: &str) {
        let pids = self.pids(node);
        assert!(!pids.is_empty(), "nothing runs on {node}");
        let killed = Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .status()
            .expect("kill");
        assert!(killed.success(), "kill -KILL on {node}");
    }

    /// Runs `program args…` on node `node` (a process of that host), with a minute's timeout.
    pub fn on_node(&self, node: &str, program: &Path, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns(node)))
            .arg(program)
            .args(args)
            .output()
            .expect("nsenter runs")
    }

    /// The bed script with this bed's knobs (its env file records them).
    fn script(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bed_script());
        c.args(args);
        for (k, v) in self.bed.env() {
            if k.starts_with("CORRAL_TESTBED_") {
                c.env(k, v);
            }
        }
        c
    }

    /// Starts fault `what` on node `node` (`["partition"]`, `["loss", "5"]`, `["cut-login"]`);
    /// the guard heals it when dropped, if the test has not already.
    pub fn fault(&self, node: &str, what: &[&str]) -> Fault<'_> {
        let mut args = vec!["fault", node];
        args.extend_from_slice(what);
        let out = self
            .script(&args)
            .output()
            .expect("slurm-test-cluster fault");
        assert!(
            out.status.success(),
            "fault {what:?} on {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Fault {
            hosts: self,
            node: node.to_string(),
            healed: false,
        }
    }

    /// Brings the bed back whole when the guard drops (after a node was killed): `up` restarts
    /// an unhealthy bed and heals every fault.
    pub fn restore_on_drop(&self) -> Restore<'_> {
        Restore(self)
    }
}

/// A fault in force until [`Fault::heal`] or drop.
pub struct Fault<'a> {
    hosts: &'a Hosts,
    node: String,
    healed: bool,
}

impl Fault<'_> {
    /// Ends the fault now.
    pub fn heal(&mut self) {
        let out = self
            .hosts
            .script(&["heal", &self.node])
            .output()
            .expect("slurm-test-cluster heal");
        assert!(
            out.status.success(),
            "heal {}: {}",
            self.node,
            String::from_utf8_lossy(&out.stderr)
        );
        self.healed = true;
    }
}

impl Drop for Fault<'_> {
    fn drop(&mut self) {
        if !self.healed {
            let _ = self
                .hosts
                .script(&["heal", &self.node])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// See [`Hosts::restore_on_drop`].
pub struct Restore<'a>(&'a Hosts);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .script(&["up"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
