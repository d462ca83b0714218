//! Helpers for the local-cluster end-to-end tests: a private state/cache directory per test
//! (tests run concurrently), `corral` commands with a deadline, test data, and a guard that
//! stops every cluster a test started even when the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{self, Output};

/// A test's own XDG state and cache directories, under a temp dir removed on drop.
pub struct Env {
    pub root: tempfile::TempDir,
    started: std::cell::RefCell<Vec<String>>,
}

/// Default deadline of a `corral` command in these tests (debug binaries, a busy machine).
pub const TIMEOUT: Duration = Duration::from_secs(120);

impl Env {
    pub fn new(tag: &str) -> Env {
        let root = crate::shared_tempdir(tag);
        for d in ["state", "cache", "data"] {
            std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
        }
        Env {
            root,
            started: std::cell::RefCell::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// Where test data goes.
    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    /// `corral ARGS` with this test's state and cache directories, in the test's directory.
    pub fn corral(&self, args: &[&str]) -> Command {
        self.command(crate::bins::corral(), args)
    }

    /// `corral-agent ARGS`, likewise.
    pub fn agent(&self, args: &[&str]) -> Command {
        self.command(crate::bins::corral_agent(), args)
    }

    fn command(&self, program: PathBuf, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .current_dir(self.path())
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env_remove("CORRAL_WORKER_TEST_DELAY_MS")
            .env_remove("CORRAL_WORKER_ORPHAN_TIMEOUT_SECS")
            .env_remove("CORRAL_AGENT_DASHBOARD")
            .env_remove("SLURM_JOB_ID")
            .env_remove("SLURM_CPUS_PER_TASK");
        c
    }

    /// Runs `corral ARGS`; panics with its output if it could not run or timed out.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_cmd(&mut self.corral(args))
    }

    pub fn run_cmd(&self, cmd: &mut Command) -> Output {
        process::run(cmd, TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `corral ARGS` and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.success(), "{out}");
        out
    }

    /// `corral gen taxi` into `data/<sub>`; returns that directory.
    pub fn gen_taxi(&self, sub: &str, files: usize, rows: u64, dirty: f64) -> PathBuf {
        let out = self.data().join(sub);
        let (f, r, d) = (files.to_string(), rows.to_string(), dirty.to_string());
        let o = out.to_string_lossy().into_owned();
        self.ok(&[
            "gen", "taxi", "--out", &o, "--files", &f, "--rows", &r, "--dirty", &d, "--seed", "7",
            "-q",
        ]);
        out
    }

    /// `corral up --local` with `env` for the agents; the cluster is stopped when `self` drops.
    pub fn up(&self, name: &str, workers: u32, cores: u32, env: &[(&str, &str)]) -> Output {
        let (w, c) = (workers.to_string(), cores.to_string());
        let mut cmd = self.corral(&[
            "up",
            "--local",
            "--name",
            name,
            "--workers",
            &w,
            "--cores",
            &c,
            "--json",
        ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.started.borrow_mut().push(name.to_owned());
        let out = self.run_cmd(&mut cmd);
        assert!(out.success(), "{out}");
        out
    }

    /// `corral up --local --name NAME ARGS…` (e.g. `--dask`); stopped when `self` drops.
    pub fn up_with(&self, name: &str, args: &[&str]) -> Output {
        let mut all = vec!["up", "--local", "--name", name];
        all.extend_from_slice(args);
        self.started.borrow_mut().push(name.to_owned());
        let out = self.run(&all);
        assert!(out.success(), "{out}");
        out
    }

    pub fn cluster_dir(&self, name: &str) -> PathBuf {
        self.path().join("state/corral/clusters").join(name)
    }

    /// `spec.json` of a cluster.
    pub fn record(&self, name: &str) -> serde_json::Value {
        let text =
            std::fs::read_to_string(self.cluster_dir(name).join("spec.json")).expect("spec.json");
        serde_json::from_str(&text).expect("spec.json is JSON")
    }

    pub fn worker_pids(&self, name: &str) -> Vec<u32> {
        self.record(name)["backend"]["worker_pids"]
            .as_array()
            .expect("worker_pids")
            .iter()
            .filter_map(|p| p.as_u64().map(|p| p as u32))
            .collect()
    }

    pub fn coordinator_pid(&self, name: &str) -> u32 {
        self.record(name)["backend"]["coordinator_pid"]
            .as_u64()
            .expect("coordinator_pid") as u32
    }

    /// `corral status NAME --json`, parsed.
    pub fn status(&self, name: &str) -> serde_json::Value {
        let out = self.run(&["status", name, "--json"]);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("status JSON: {e}\n{out}"))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for name in self.started.borrow().iter() {
            let _ = process::run(&mut self.corral(&["down", name]), Duration::from_secs(30));
        }
    }
}

/// Whether `pid` is still a process started for the cluster directory `dir`.
pub fn alive_for(pid: u32, dir: &Path) -> bool {
    corral_core::procstat::runs_for(pid, dir)
}

/// Waits until `f` holds or `within` passes; returns whether it held.
pub fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILL to one process, through sh's builtin kill (this crate has no unsafe code).
pub fn kill9(pid: u32) {
    let status = Command::new("sh")
        .args(["-c", "kill -KILL \"$1\"", "sh", &pid.to_string()])
        .status()
        .expect("sh");
    assert!(status.success(), "kill -9 {pid}");
}

/// The parts of a `corral agg --json` / `corral query --json` result that must be equal.
/// Bad-row examples are compared by file, offset, line and text: their `span_start` and
/// `rel_line` are bookkeeping relative to a partition, and partitions differ.
pub fn result_core(v: &serde_json::Value) -> serde_json::Value {
    let mut bad = v["bad_rows"].clone();
    if let Some(examples) = bad.get_mut("examples").and_then(|e| e.as_array_mut()) {
        for e in examples {
            if let Some(o) = e.as_object_mut() {
                o.remove("span_start");
                o.remove("rel_line");
            }
        }
    }
    serde_json::json!({
        "group_by": v["group_by"],
        "aggregates": v["aggregates"],
        "groups": v["groups"],
        "rows": v["rows"],
        "blank_lines": v["blank_lines"],
        "bad_rows": bad,
        "missing": v["missing"],
        "files": v["files"],
        "bytes": v["bytes"],
        "exact": v["exact"],
    })
}
