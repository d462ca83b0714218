//! [`Slurm`] over the command-line tools, each call bounded by a timeout.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

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
    pub async fn run(
        &self,
        program: &str,
        args: &[String],
        stdin: Option<&str>,
    ) -> Result<Output, SlurmError> {
        self.run_in(program, args, stdin, None).await
    }

    async fn run_in(
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
            .stderr(Stdio::piped())
            // A command abandoned at its timeout (or by a cancelled caller) is killed, not
            // left running against the controller.
            .kill_on_drop(true);
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
        let feed = child.stdin.take();
        let finished = async {
            if let (Some(text), Some(mut pipe)) = (stdin, feed) {
                // A command that exits without reading its stdin is not our failure to report
                // here; its exit status says what happened.
                let _ = pipe.write_all(text.as_bytes()).await;
                drop(pipe);
            }
            // Both pipes are drained while waiting, so a chatty command cannot block.
            child.wait_with_output().await
        };
        let out = match tokio::time::timeout(self.timeout, finished).await {
            Ok(Ok(out)) => out,
            Ok(Err(source)) => return Err(SlurmError::Spawn { command, source }),
            Err(_) => {
                return Err(SlurmError::Timeout {
                    command,
                    timeout: self.timeout,
                });
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
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
                code: out.status.code().unwrap_or(-1),
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

pub(crate) fn is_controller_down(stderr: &str) -> bool {
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

#[async_trait::async_trait]
impl Slurm for SlurmCli {
    async fn partitions(&self) -> Result<Vec<Partition>, SlurmError> {
        let out = self
            .run(
                "scontrol",
                &["show".into(), "partition".into(), "-o".into()],
                None,
            )
            .await?;
        Ok(out
            .stdout
            .lines()
            .filter_map(Partition::from_line)
            .collect())
    }

    async fn nodes(&self) -> Result<Vec<Node>, SlurmError> {
        let out = self
            .run(
                "scontrol",
                &["show".into(), "node".into(), "-o".into()],
                None,
            )
            .await?;
        Ok(out.stdout.lines().filter_map(Node::from_line).collect())
    }

    async fn submit(&self, script: &str, opts: &SubmitOptions) -> Result<JobId, SlurmError> {
        let args = self.sbatch_args(opts, "--parsable");
        let out = self
            .run_in("sbatch", &args, Some(script), opts.workdir.as_deref())
            .await?;
        out.stdout.trim().parse().map_err(|_| SlurmError::Parse {
            command: "sbatch --parsable".into(),
            output: out.stdout.clone(),
        })
    }

    async fn estimate(
        &self,
        script: &str,
        opts: &SubmitOptions,
    ) -> Result<StartEstimate, SlurmError> {
        let args = self.sbatch_args(opts, "--test-only");
        let out = self
            .run_in("sbatch", &args, Some(script), opts.workdir.as_deref())
            .await?;
        let text = format!("{}\n{}", out.stderr, out.stdout);
        StartEstimate::from_output(&text).ok_or(SlurmError::Parse {
            command: "sbatch --test-only".into(),
            output: text,
        })
    }

    async fn my_jobs(&self) -> Result<Vec<QueuedJob>, SlurmError> {
        let args = ["--me", "-h", "-o", SQUEUE_FORMAT].map(String::from);
        let out = self.run("squeue", &args, None).await?;
        Ok(out
            .stdout
            .lines()
            .filter_map(QueuedJob::from_line)
            .collect())
    }

    async fn job(&self, id: JobId) -> Result<Option<JobDetail>, SlurmError> {
        match self
            .run(
                "scontrol",
                &["show".into(), "job".into(), "-o".into(), id.to_string()],
                None,
            )
            .await
        {
            Ok(out) => Ok(out.stdout.lines().find_map(JobDetail::from_line)),
            Err(SlurmError::Failed { stderr, .. }) if stderr.contains("Invalid job id") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn cancel(&self, ids: &[JobId], signal: Option<&str>) -> Result<(), SlurmError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args: Vec<String> = signal
            .map(|s| format!("--signal={s}"))
            .into_iter()
            .collect();
        args.extend(ids.iter().map(|i| i.to_string()));
        self.run("scancel", &args, None).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_program_says_how_to_fix_it() {
        let cli = SlurmCli::new(&SlurmConfig {
            bin_dir: "/nonexistent/slurm/bin".into(),
            ..SlurmConfig::default()
        });
        let err = cli
            .partitions()
            .await
            .expect_err("no scontrol there")
            .to_string();
        assert!(
            err.contains("/nonexistent/slurm/bin/scontrol") && err.contains("bin_dir"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_hung_command_times_out_with_its_name() {
        let cli = SlurmCli {
            bin_dir: None,
            extra_args: Vec::new(),
            qos: None,
            timeout: Duration::from_millis(200),
            env: Vec::new(),
        };
        let err = cli
            .run("sleep", &["5".into()], None)
            .await
            .expect_err("times out");
        assert!(matches!(err, SlurmError::Timeout { .. }), "{err}");
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn an_unreachable_controller_is_named_and_worth_retrying() {
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
        let err = cli.my_jobs().await.expect_err("controller down");
        assert!(matches!(err, SlurmError::ControllerDown { .. }), "{err}");
        assert!(err.is_transient());
        assert!(err.to_string().contains("not reachable"), "{err}");
    }

    #[tokio::test]
    async fn a_shell_without_slurm_config_is_told_what_to_do() {
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
            .await
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

    #[tokio::test]
    async fn a_failing_command_carries_its_stderr() {
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
            .await
            .expect_err("fails");
        assert!(
            err.to_string().contains("invalid partition specified: x"),
            "{err}"
        );
    }
}
