//! The real SLURM test bed (`scripts/slurm-test-cluster`) as seen from a test.
//!
//! [`require`] finds the bed's client environment — `$CORRAL_TESTBED_DIR/env` (default
//! `/tmp/corral-slurm/env`, written by `up`), else a `SLURM_CONF` already in the environment — and
//! checks that slurmctld answers. [`Slurm`] then runs SLURM commands with that environment and a
//! timeout, submits jobs and waits for job states.
//!
//! Tests share one SLURM and run in parallel: use [`crate::unique_name`] for job names, never
//! assume an empty queue, and cancel what you start ([`Slurm::cancel_on_drop`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::process::{self, Output, RunError};

/// Where `scripts/slurm-test-cluster` keeps the bed when `CORRAL_TESTBED_DIR` is not set.
pub const DEFAULT_DIR: &str = "/tmp/corral-slurm";

/// Timeout of one SLURM client command. Generous: a 2-core CI machine compiling in parallel
/// can be slow, and a command that needs longer than this is a finding in itself.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// States after which a job never changes again.
pub const TERMINAL_STATES: &[&str] = &[
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
];

/// A SLURM job id as sbatch prints it.
pub type JobId = u64;

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Failed(Box<Output>),
    #[error("cannot parse the output of `{command}`: {output:?}")]
    Parse { command: String, output: String },
    #[error("job {job} is {state}, which is final, while waiting for {wanted:?}\n{details}")]
    Terminal {
        job: JobId,
        state: String,
        wanted: Vec<String>,
        details: String,
    },
    #[error("job {job} did not reach {wanted:?} within {after:?}; last state {last:?}\n{details}")]
    WaitTimeout {
        job: JobId,
        wanted: Vec<String>,
        after: Duration,
        last: Option<String>,
        details: String,
    },
}

/// The directory of the test bed: `CORRAL_TESTBED_DIR`, else [`DEFAULT_DIR`].
pub fn testbed_dir() -> PathBuf {
    std::env::var_os("CORRAL_TESTBED_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

/// A handle on a reachable SLURM: the client environment to run its commands with.
#[derive(Debug, Clone)]
pub struct Slurm {
    env: Vec<(String, String)>,
    source: String,
}

/// The test bed if it answers. When it does not: under CI this panics (tests that need SLURM
/// must fail in CI, not skip); otherwise it says so on stderr and returns `None`, so the caller
/// returns early:
///
/// ```no_run
/// let Some(slurm) = corral_tests::slurm::require() else { return };
/// ```
pub fn require() -> Option<Slurm> {
    static PROBE: OnceLock<Result<Slurm, String>> = OnceLock::new();
    match PROBE.get_or_init(probe) {
        Ok(slurm) => Some(slurm.clone()),
        Err(why) if crate::in_ci() => panic!(
            "SLURM test bed not reachable, and CI is set: a test that needs SLURM fails in CI \
             instead of skipping.\n{why}\nStart it with `eval \"$(scripts/slurm-test-cluster up)\"` \
             (scripts/test does this)."
        ),
        Err(why) => {
            eprintln!(
                "skipping: SLURM test bed not running (scripts/slurm-test-cluster up)\n  {why}"
            );
            None
        }
    }
}

/// Where `scripts/test` starts the hosts-mode bed (each node its own network namespace) when
/// `CORRAL_TESTBED_HOSTS_DIR` is not set.
pub const DEFAULT_HOSTS_DIR: &str = "/tmp/corral-slurm-hosts";

/// The hosts-mode test bed (`CORRAL_TESTBED_NET=hosts`: nodes n1..n3 in network namespaces on a
/// private bridge), as [`require`] finds the shared one: under CI a missing bed fails the test.
pub fn require_hosts() -> Option<Slurm> {
    static PROBE: OnceLock<Result<Slurm, String>> = OnceLock::new();
    let probe = || {
        let dir = std::env::var_os("CORRAL_TESTBED_HOSTS_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_HOSTS_DIR));
        from_env_file(&dir.join("env")).and_then(|s| {
            if s.var("CORRAL_TESTBED_NET") == Some("hosts") {
                Ok(s)
            } else {
                Err(format!("{} is not a hosts-mode bed", dir.display()))
            }
        })
    };
    match PROBE.get_or_init(probe) {
        Ok(slurm) => Some(slurm.clone()),
        Err(why) if crate::in_ci() => panic!(
            "the hosts-mode SLURM test bed is not reachable, and CI is set: {why}
scripts/test \
             starts it (CORRAL_TESTBED_NET=hosts scripts/slurm-test-cluster up with its own \
             CORRAL_TESTBED_DIR and CORRAL_TESTBED_PORT)."
        ),
        Err(why) => {
            eprintln!("skipping: the hosts-mode SLURM test bed is not running\n  {why}");
            None
        }
    }
}

fn from_env_file(file: &Path) -> Result<Slurm, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let env = parse_env_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let slurm = Slurm {
        env,
        source: file.display().to_string(),
    };
    slurm
        .ping()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(slurm)
}

/// Tries the bed's env file, then the process environment's `SLURM_CONF`.
fn probe() -> Result<Slurm, String> {
    let mut reasons = Vec::new();
    let file = testbed_dir().join("env");
    match std::fs::read_to_string(&file) {
        Ok(text) => match parse_env_file(&text) {
            Ok(env) => {
                let slurm = Slurm {
                    env,
                    source: file.display().to_string(),
                };
                match slurm.ping() {
                    Ok(()) => return Ok(slurm),
                    Err(e) => reasons.push(format!("{}: {e}", file.display())),
                }
            }
            Err(e) => reasons.push(format!("{}: {e}", file.display())),
        },
        Err(e) => reasons.push(format!("{}: {e}", file.display())),
    }
    match std::env::var("SLURM_CONF") {
        Ok(conf) if !conf.is_empty() => {
            let slurm = Slurm {
                env: vec![("SLURM_CONF".to_string(), conf.clone())],
                source: format!("SLURM_CONF={conf} from the environment"),
            };
            match slurm.ping() {
                Ok(()) => return Ok(slurm),
                Err(e) => reasons.push(format!("SLURM_CONF={conf}: {e}")),
            }
        }
        _ => reasons.push("SLURM_CONF is not set".to_string()),
    }
    Err(reasons.join("; "))
}

/// Parses the `export NAME='value'` lines `scripts/slurm-test-cluster up` writes.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut env = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("line {}: expected export NAME='value', got {line:?}", n + 1);
        let rest = line.strip_prefix("export ").ok_or_else(bad)?;
        let (name, value) = rest.split_once('=').ok_or_else(bad)?;
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .filter(|v| !v.contains('\''))
            .ok_or_else(bad)?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad());
        }
        env.push((name.to_string(), value.to_string()));
    }
    if !env.iter().any(|(k, _)| k == "SLURM_CONF") {
        return Err("no SLURM_CONF in it".to_string());
    }
    Ok(env)
}

impl Slurm {
    /// Where this environment came from (the env file, or the process environment).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The client environment (`SLURM_CONF`, `SLURMRESTD_SOCKET`, …) to add to commands.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// One variable of the client environment.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The slurm.conf clients use.
    pub fn conf(&self) -> &Path {
        Path::new(self.var("SLURM_CONF").unwrap_or_default())
    }

    /// A command with the client environment applied (also for corral's own binaries, which
    /// call SLURM). `SLURM_JWT` is removed: in a client's environment it switches every SLURM
    /// command to JWT auth.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("SLURM_JWT");
        cmd
    }

    /// Runs a SLURM command with [`COMMAND_TIMEOUT`]; any exit status is returned as is.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output, SlurmError> {
        self.run_timeout(program, args, COMMAND_TIMEOUT)
    }

    pub fn run_timeout(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output, SlurmError> {
        Ok(process::run(self.command(program).args(args), timeout)?)
    }

    /// Runs a SLURM command that must succeed; a non-zero exit is [`SlurmError::Failed`].
    pub fn run_ok(&self, program: &str, args: &[&str]) -> Result<Output, SlurmError> {
        let out = self.run(program, args)?;
        if out.success() {
            Ok(out)
        } else {
            Err(SlurmError::Failed(Box::new(out)))
        }
    }

    /// slurmctld answers `scontrol ping`.
    pub fn ping(&self) -> Result<(), SlurmError> {
        let out = self.run_timeout("scontrol", &["ping"], Duration::from_secs(10))?;
        if out.success() && out.stdout.contains("is UP") {
            Ok(())
        } else {
            Err(SlurmError::Failed(Box::new(out)))
        }
    }

    /// `sbatch --parsable ARGS…` → the job id. A refused submission is [`SlurmError::Failed`]
    /// with sbatch's message in its stderr; use [`Slurm::run`] to look at refusals.
    pub fn sbatch(&self, args: &[&str]) -> Result<JobId, SlurmError> {
        let mut all = vec!["--parsable"];
        all.extend_from_slice(args);
        let out = self.run_ok("sbatch", &all)?;
        parse_parsable_job_id(&out.stdout).ok_or_else(|| SlurmError::Parse {
            command: out.command.clone(),
            output: out.stdout.clone(),
        })
    }

    /// `scontrol show job -o ID` as a field map, or `None` once SLURM no longer knows the job
    /// (after MinJobAge, or a wrong id).
    pub fn job(&self, job: JobId) -> Result<Option<BTreeMap<String, String>>, SlurmError> {
        let id = job.to_string();
        let out = self.run("scontrol", &["show", "job", "-o", &id])?;
        if !out.success() {
            if out.stderr.contains("Invalid job id") {
                return Ok(None);
            }
            return Err(SlurmError::Failed(Box::new(out)));
        }
        // One line per job; a heterogeneous or array job could print several, ours print one.
        let line = out
            .stdout
            .lines()
            .find(|l| field(l, "JobId") == Some(id.as_str()))
            .ok_or_else(|| SlurmError::Parse {
                command: out.command.clone(),
                output: out.stdout.clone(),
            })?;
        Ok(Some(parse_fields(line)))
    }

    /// The job's `JobState` (`PENDING`, `RUNNING`, `COMPLETED`, …), `None` if SLURM forgot it.
    pub fn job_state(&self, job: JobId) -> Result<Option<String>, SlurmError> {
        Ok(self.job(job)?.and_then(|mut f| f.remove("JobState")))
    }

    /// Polls `scontrol show job -o` every 100 ms until the job is in one of `wanted` and returns
    /// that state. Fails early when the job reaches a final state that is not wanted (with the
    /// job's record in the error), and after `timeout`.
    pub fn wait_for_state(
        &self,
        job: JobId,
        wanted: &[&str],
        timeout: Duration,
    ) -> Result<String, SlurmError> {
        let deadline = Instant::now() + timeout;
        let wanted_owned = || wanted.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut last: Option<String> = None;
        let mut details = String::new();
        loop {
            if let Some(fields) = self.job(job)? {
                details = render_fields(&fields);
                let state = fields.get("JobState").cloned().unwrap_or_default();
                if wanted.contains(&state.as_str()) {
                    return Ok(state);
                }
                if TERMINAL_STATES.contains(&state.as_str()) {
                    return Err(SlurmError::Terminal {
                        job,
                        state,
                        wanted: wanted_owned(),
                        details,
                    });
                }
                last = Some(state);
            }
            if Instant::now() >= deadline {
                return Err(SlurmError::WaitTimeout {
                    job,
                    wanted: wanted_owned(),
                    after: timeout,
                    last,
                    details,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `scancel ID` (which exits 0 even for unknown or finished jobs).
    pub fn scancel(&self, job: JobId) -> Result<(), SlurmError> {
        self.run_ok("scancel", &[&job.to_string()]).map(|_| ())
    }

    /// Cancels the job when the guard is dropped — including when the test panics — so a
    /// failed test does not leave work on the shared test bed.
    pub fn cancel_on_drop(&self, job: JobId) -> JobGuard {
        JobGuard {
            slurm: self.clone(),
            job,
        }
    }
}

/// See [`Slurm::cancel_on_drop`].
#[derive(Debug)]
pub struct JobGuard {
    slurm: Slurm,
    job: JobId,
}

impl JobGuard {
    pub fn id(&self) -> JobId {
        self.job
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        // Best effort: the job has usually finished already, and scancel of a finished job is a
        // no-op; a failure here must not turn into a second panic.
        if let Err(e) = self.slurm.scancel(self.job) {
            eprintln!("cancelling job {} on drop: {e}", self.job);
        }
    }
}

/// `sbatch --parsable` prints `ID` or `ID;CLUSTER`.
pub fn parse_parsable_job_id(stdout: &str) -> Option<JobId> {
    stdout.trim().split(';').next()?.trim().parse().ok()
}

/// The value of `Key=` in a `scontrol show … -o` line (up to the next space). Values that
/// contain spaces (`Command=`, `Comment=`, `Reason=` text…) need more care than this.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_ascii_whitespace()
        .find_map(|tok| tok.strip_prefix(key)?.strip_prefix('='))
}

/// Every `Key=value` token of a `scontrol show … -o` line (values up to the next space).
pub fn parse_fields(line: &str) -> BTreeMap<String, String> {
    line.split_ascii_whitespace()
        .filter_map(|tok| tok.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn render_fields(fields: &BTreeMap<String, String>) -> String {
    const SHOWN: [&str; 8] = [
        "JobId", "JobName", "JobState", "Reason", "ExitCode", "NodeList", "StdOut", "RunTime",
    ];
    SHOWN
        .iter()
        .filter_map(|k| fields.get(*k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Holds the test bed for one test at a time within a test binary. Under nextest every test is
/// its own process and the `slurm` test group (`.config/nextest.toml`) serialises them; under
/// plain `cargo test` a binary's tests are threads of one process, and this lock does it.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that panicked while holding the bed leaves the lock poisoned; the next test may
    // still use the bed.
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_round_trip() {
        let text = "export CORRAL_TESTBED_DIR='/tmp/corral-slurm'\n\
                    export SLURM_CONF='/tmp/corral-slurm/etc/slurm.conf'\n\
                    export SLURMRESTD_SOCKET='/tmp/corral-slurm/run/slurmrestd.sock'\n";
        let env = parse_env_file(text).expect("parses");
        assert_eq!(env.len(), 3);
        assert_eq!(
            env[1],
            (
                "SLURM_CONF".into(),
                "/tmp/corral-slurm/etc/slurm.conf".into()
            )
        );
    }

    #[test]
    fn env_file_rejects_what_it_cannot_read_exactly() {
        assert!(parse_env_file("SLURM_CONF=/x\n").is_err());
        assert!(parse_env_file("export SLURM_CONF=\"/x\"\n").is_err());
        assert!(parse_env_file("export SLURM_CONF='/it's'\n").is_err());
        assert!(
            parse_env_file("export OTHER='/x'\n").is_err(),
            "no SLURM_CONF"
        );
    }

    #[test]
    fn job_fields_from_real_scontrol_output() {
        // Real output of SLURM 22.05.8 (`scontrol show job -o` of a 16x2 job).
        let line = concat!(
            "JobId=1 JobName=grabtest UserId=root(0) GroupId=root(0) MCS_label=N/A ",
            "Priority=4294901759 Nice=0 Account=(null) QOS=(null) JobState=RUNNING ",
            "Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ",
            "ExitCode=0:0 RunTime=00:00:02 TimeLimit=1-00:00:00 TimeMin=N/A ",
            "SubmitTime=2026-11-25T23:09:06 EligibleTime=2026-11-25T23:09:06 ",
            "AccrueTime=2026-11-25T23:09:06 StartTime=2026-11-25T23:09:07 ",
            "EndTime=2026-11-26T23:09:07 Deadline=N/A SuspendTime=None SecsPreSuspend=0 ",
            "LastSchedEval=2026-11-25T23:09:07 Scheduler=Backfill Partition=debug ",
            "AllocNode:Sid=localhost:2140 ReqNodeList=(null) ExcNodeList=(null) ",
            "NodeList=n[1-2] BatchHost=n1 NumNodes=2 NumCPUs=32 NumTasks=16 CPUs/Task=2 ",
            "ReqB:S:C:T=0:0:*:* TRES=cpu=32,node=2,billing=32 Socks/Node=* ",
            "NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=2 MinMemoryNode=0 ",
            "MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK ",
            "Contiguous=0 Licenses=(null) Network=(null) Command=(null) WorkDir=/tmp ",
            "StdErr=/tmp/1.out StdIn=/dev/null StdOut=/tmp/1.out",
        );
        assert_eq!(field(line, "JobState"), Some("RUNNING"));
        assert_eq!(field(line, "JobId"), Some("1"));
        assert_eq!(field(line, "NodeList"), Some("n[1-2]"));
        assert_eq!(field(line, "Job"), None, "a key is matched whole");
        let f = parse_fields(line);
        assert_eq!(f["CPUs/Task"], "2");
        assert_eq!(f["TimeLimit"], "1-00:00:00");
    }

    #[test]
    fn parsable_job_id() {
        assert_eq!(parse_parsable_job_id("42\n"), Some(42));
        assert_eq!(parse_parsable_job_id("42;cluster2\n"), Some(42));
        assert_eq!(parse_parsable_job_id("sbatch: error\n"), None);
    }
}
