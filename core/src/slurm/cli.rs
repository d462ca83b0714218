//! [`Slurm`] over the command-line tools, each call bounded by a timeout.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::parse::{JobDetail, Node, Partition, QueuedJob, SQUEUE_FORMAT, StartEstimate};
use super::{Slurm, SlurmError, SubmitOptions};
use crate::config::SlurmConfig;
use crate::model::JobId;

/// The SLURM tools as configured for this site.
#[derive(Debug, Clone)]
pub struct SlurmCli {
    bin_dir: Option<PathBuf>,
    extra_args: Vec<String>,
    qos: Option<String>,
    timeout: Duration,
    /// Variables set for every command (e.g. `SLURM_CONF` of a particular cluster).
    env: Vec<(String, String)>,
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

impl SlurmCli {
    pub fn new(config: &SlurmConfig) -> SlurmCli {
        SlurmCli {
            bin_dir: (!config.bin_dir.is_empty()).then(|| PathBuf::from(&config.bin_dir)),
            extra_args: config.extra_args.clone(),
            qos: (!config.qos.is_empty()).then(|| config.qos.clone()),
            timeout: Duration::from_secs(config.command_timeout_secs.max(1)),
            env: Vec::new(),
        }
    }

    /// The same client with `vars` set for every command it runs.
    pub fn with_env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> SlurmCli {
        self.env.extend(vars);
        self
    }

    fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// Runs `program args…` with the site's extra args, feeding `stdin`, within the timeout.
    pub fn run(
        &self,
        program: &str,
        args: &[String],
        stdin: Option<&str>,
    ) -> Result<Output, SlurmError> {
        self.run_in(program, args, stdin, None)
    }

    fn run_in(
        &self,
        program: &str,
        args: &[String],
        stdin: Option<&str>,
        workdir: Option<&std::path::Path>,
    ) -> Result<Output, SlurmError> {
        let mut all_args = self.extra_args.clone();
        all_args.extend_from_slice(args);
        let command = format!("{program} {}", all_args.join(" "));
        let mut cmd = Command::new(self.program(program));
        cmd.args(&all_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = workdir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SlurmError::NotFound {
                    program: self.program(program).display().to_string(),
                }
            } else {
                SlurmError::Spawn {
                    command: command.clone(),
                    source,
                }
            }
        })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that exits without reading its stdin is not our failure to report
            // here; its exit status says what happened.
            let _ = pipe.write_all(text.as_bytes());
        }
        // Drain both pipes on threads so a chatty command cannot block on a full pipe.
        let out = child.stdout.take().map(drain);
        let err = child.stderr.take().map(drain);
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SlurmError::Timeout {
                        command,
                        timeout: self.timeout,
                    });
                }
                Err(source) => return Err(SlurmError::Spawn { command, source }),
            }
        };
        let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
        if !status.success() {
            let stderr = stderr.trim().to_string();
            if is_controller_down(&stderr) {
                return Err(SlurmError::ControllerDown { command, stderr });
            }
            if stderr.contains("Could not establish a configuration source") {
                // The last line says it all; the DNS SRV lines before it are noise.
                let stderr = stderr.lines().last().unwrap_or_default().to_string();
                return Err(SlurmError::NotConfigured { command, stderr });
            }
            return Err(SlurmError::Failed {
                command,
                code: status.code().unwrap_or(-1),
                stderr,
            });
        }
        Ok(Output { stdout, stderr })
    }

    fn sbatch_args(&self, opts: &SubmitOptions, first: &str) -> Vec<String> {
        let mut args = vec![first.to_string()];
        if let Some(q) = &self.qos {
            args.push(format!("--qos={q}"));
        }
        args.extend(opts.args.iter().cloned());
        args
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn is_controller_down(stderr: &str) -> bool {
    [
        "Unable to contact slurm controller",
        "Socket timed out on send/recv",
        "Connection refused",
        "Zero Bytes were transmitted or received",
        "Unable to establish control machine address",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

impl Slurm for SlurmCli {
    fn partitions(&self) -> Result<Vec<Partition>, SlurmError> {
        let out = self.run(
            "scontrol",
            &["show".into(), "partition".into(), "-o".into()],
            None,
        )?;
        Ok(out
            .stdout
            .lines()
            .filter_map(Partition::from_line)
            .collect())
    }

    fn nodes(&self) -> Result<Vec<Node>, SlurmError> {
        let out = self.run(
            "scontrol",
            &["show".into(), "node".into(), "-o".into()],
            None,
        )?;
        Ok(out.stdout.lines().filter_map(Node::from_line).collect())
    }

    fn submit(&self, script: &str, opts: &SubmitOptions) -> Result<JobId, SlurmError> {
        let args = self.sbatch_args(opts, "--parsable");
        let out = self.run_in("sbatch", &args, Some(script), opts.workdir.as_deref())?;
        out.stdout.trim().parse().map_err(|_| SlurmError::Parse {
            command: "sbatch --parsable".into(),
            output: out.stdout.clone(),
        })
    }

    fn estimate(&self, script: &str, opts: &SubmitOptions) -> Result<StartEstimate, SlurmError> {
        let args = self.sbatch_args(opts, "--test-only");
        let out = self.run_in("sbatch", &args, Some(script), opts.workdir.as_deref())?;
        let text = format!("{}\n{}", out.stderr, out.stdout);
        StartEstimate::from_output(&text).ok_or(SlurmError::Parse {
            command: "sbatch --test-only".into(),
            output: text,
        })
    }

    fn my_jobs(&self) -> Result<Vec<QueuedJob>, SlurmError> {
        let args = ["--me", "-h", "-o", SQUEUE_FORMAT].map(String::from);
        let out = self.run("squeue", &args, None)?;
        Ok(out
            .stdout
            .lines()
            .filter_map(QueuedJob::from_line)
            .collect())
    }

    fn job(&self, id: JobId) -> Result<Option<JobDetail>, SlurmError> {
        match self.run(
            "scontrol",
            &["show".into(), "job".into(), "-o".into(), id.to_string()],
            None,
        ) {
            Ok(out) => Ok(out.stdout.lines().find_map(JobDetail::from_line)),
            Err(SlurmError::Failed { stderr, .. }) if stderr.contains("Invalid job id") => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn cancel(&self, ids: &[JobId], signal: Option<&str>) -> Result<(), SlurmError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args: Vec<String> = signal
            .map(|s| format!("--signal={s}"))
            .into_iter()
            .collect();
        args.extend(ids.iter().map(|i| i.to_string()));
        self.run("scancel", &args, None).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_says_how_to_fix_it() {
        let cli = SlurmCli::new(&SlurmConfig {
            bin_dir: "/nonexistent/slurm/bin".into(),
            ..SlurmConfig::default()
        });
        let err = cli.partitions().expect_err("no scontrol there").to_string();
        assert!(
            err.contains("/nonexistent/slurm/bin/scontrol") && err.contains("bin_dir"),
            "{err}"
        );
    }

    #[test]
    fn a_hung_command_times_out_with_its_name() {
        let cli = SlurmCli {
            bin_dir: None,
            extra_args: Vec::new(),
            qos: None,
            timeout: Duration::from_millis(200),
            env: Vec::new(),
        };
        let err = cli
            .run("sleep", &["5".into()], None)
            .expect_err("times out");
        assert!(matches!(err, SlurmError::Timeout { .. }), "{err}");
        assert!(err.is_transient());
    }

    #[test]
    fn an_unreachable_controller_is_named_and_worth_retrying() {
        let dir = tempfile::tempdir().expect("tempdir");
        let squeue = dir.path().join("squeue");
        std::fs::write(
            &squeue,
            "#!/bin/sh\necho 'squeue: error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n",
        )
        .expect("write");
        std::process::Command::new("chmod")
            .args(["+x", &squeue.display().to_string()])
            .status()
            .expect("chmod");
        let cli = SlurmCli::new(&SlurmConfig {
            bin_dir: dir.path().display().to_string(),
            ..SlurmConfig::default()
        });
        let err = cli.my_jobs().expect_err("controller down");
        assert!(matches!(err, SlurmError::ControllerDown { .. }), "{err}");
        assert!(err.is_transient());
        assert!(err.to_string().contains("not reachable"), "{err}");
    }

    #[test]
    fn a_shell_without_slurm_config_is_told_what_to_do() {
        let cli = SlurmCli::new(&SlurmConfig::default());
        let err = cli
            .run(
                "sh",
                &[
                    "-c".into(),
                    "echo 'scontrol: error: fetch_config: DNS SRV lookup failed' >&2; echo 'scontrol: fatal: Could not establish a configuration source' >&2; exit 1".into(),
                ],
                None,
            )
            .expect_err("fails");
        let text = err.to_string();
        assert!(
            text.contains("SLURM_CONF") && text.contains("--local"),
            "{text}"
        );
        match err {
            SlurmError::NotConfigured { stderr, .. } => assert_eq!(
                stderr, "scontrol: fatal: Could not establish a configuration source",
                "the DNS SRV noise is dropped"
            ),
            other => panic!("not NotConfigured: {other}"),
        }
    }

    #[test]
    fn a_failing_command_carries_its_stderr() {
        let cli = SlurmCli::new(&SlurmConfig::default());
        let err = cli
            .run(
                "sh",
                &[
                    "-c".into(),
                    "echo 'sbatch: error: invalid partition specified: x' >&2; exit 1".into(),
                ],
                None,
            )
            .expect_err("fails");
        assert!(
            err.to_string().contains("invalid partition specified: x"),
            "{err}"
        );
    }
}
