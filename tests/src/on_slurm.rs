//! A test's `corral` against the SLURM test bed: its own state directory, the bed's client
//! environment, the binaries under test on `PATH`, and a guard that runs `corral down` when the
//! test ends, passed or failed, so no job outlives it.

use std::process::Command;
use std::time::Duration;

use crate::cluster::Env;
use crate::process::{self, Output};
use crate::slurm::Slurm;

/// A test environment bound to the test bed.
#[derive(Clone, Copy)]
pub struct OnSlurm<'a> {
    pub env: &'a Env,
    pub bed: &'a Slurm,
}

impl<'a> OnSlurm<'a> {
    pub fn new(env: &'a Env, bed: &'a Slurm) -> OnSlurm<'a> {
        OnSlurm { env, bed }
    }

    /// `corral ARGS` with the test's state directory, the bed's SLURM and this corral on PATH.
    /// With `CORRAL_TEST_SLURM_API=rest` in the tests' environment, every such corral talks to
    /// SLURM through the bed's slurmrestd (unix socket) instead of the tools: the same suite,
    /// over the second client.
    pub fn corral(&self, args: &[&str]) -> Command {
        let mut c = self.env.corral(args);
        c.envs(self.bed.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PATH", crate::expect::path_with_bins());
        if std::env::var("CORRAL_TEST_SLURM_API").as_deref() == Ok("rest") {
            let socket = self.bed.var("SLURMRESTD_SOCKET").unwrap_or_else(|| {
                panic!(
                    "CORRAL_TEST_SLURM_API=rest, but the bed's env ({}) names no SLURMRESTD_SOCKET",
                    self.bed.source()
                )
            });
            c.env("CORRAL_SLURM_API", "rest")
                .env("CORRAL_SLURM_REST_URL", format!("unix://{socket}"));
        }
        c
    }

    /// Runs `corral ARGS`; panics with its output if it could not run or timed out.
    pub fn run(&self, args: &[&str]) -> Output {
        self.env.run_cmd(&mut self.corral(args))
    }

    /// `corral status NAME --json`, parsed (`Null` when it printed no JSON).
    pub fn status(&self, name: &str) -> serde_json::Value {
        let s = self.run(&["status", name, "--json"]);
        serde_json::from_str(&s.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Stops cluster `name` when the guard drops.
    pub fn down_on_drop(&self, name: &str) -> Down<'a> {
        Down {
            on: *self,
            name: name.to_string(),
        }
    }

    /// The job ids corral recorded for a cluster (`jobs.json`).
    pub fn job_ids(&self, name: &str) -> Vec<u64> {
        let path = self.env.cluster_dir(name).join("jobs.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let v: serde_json::Value = serde_json::from_str(&text).expect("jobs.json is JSON");
        v["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .filter_map(|j| j["id"].as_u64())
            .collect()
    }

    /// Which of `ids` squeue still lists, in any state.
    pub fn still_queued(&self, ids: &[u64]) -> Vec<u64> {
        let out = self
            .bed
            .run_ok("squeue", &["-h", "-o", "%i"])
            .expect("squeue");
        out.stdout
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|i| ids.contains(i))
            .collect()
    }
}

/// Runs `corral down NAME` on drop.
pub struct Down<'a> {
    on: OnSlurm<'a>,
    name: String,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = process::run(
            &mut self.on.corral(&["down", &self.name]),
            Duration::from_secs(120),
        );
    }
}
