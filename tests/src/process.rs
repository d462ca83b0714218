//! Running a command with a deadline and capturing what it printed.
//!
//! End-to-end tests talk to real daemons; a wedged `squeue` or a child that never exits must
//! fail the test with what it printed so far, not hang the whole suite.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a finished command printed, and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or `None` when the process was killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` ended with {} after {:.2?}\n--- stdout\n{}--- stderr\n{}",
            self.command, self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error(
        "`{command}` did not finish within {after:?}; killed it (stdout so far: {stdout:?}, stderr so far: {stderr:?})"
    )]
    Timeout {
        command: String,
        after: Duration,
        stdout: String,
        stderr: String,
    },
    #[error("waiting for `{command}`: {source}")]
    Wait {
        command: String,
        source: std::io::Error,
    },
}

/// `program arg…` as one readable line.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with stdin closed, capturing stdout and stderr, killing it (and everything it
/// started, via its own process group) if it has not finished after `timeout`. A non-zero exit
/// is not an error here: the caller decides what the status means.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output, RunError> {
    use std::os::unix::process::CommandExt;

    let command = describe(cmd);
    let start = Instant::now();
    let deadline = start + timeout;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills the helpers it spawned too.
        .process_group(0)
        .spawn()
        .map_err(|source| RunError::Spawn {
            command: command.clone(),
            source,
        })?;

    // Drain both pipes on threads (a full pipe would block the child), reporting on a channel so
    // a descendant that keeps a pipe open cannot make us wait past the deadline.
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    for (is_stdout, pipe) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                // A read error leaves what was read so far, which is all a message can use.
                let _ = pipe.read_to_end(&mut buf);
            }
            let _ = tx.send((is_stdout, buf));
        });
    }
    drop(tx);

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                kill_group(&mut child);
                return Err(RunError::Wait { command, source });
            }
        }
    };
    if status.is_none() {
        kill_group(&mut child);
        let _ = child.wait();
    }

    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let grace = deadline.max(Instant::now()) + Duration::from_millis(500);
    for _ in 0..2 {
        let left = grace.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, b)) => stdout = b,
            Ok((false, b)) => stderr = b,
            Err(_) => break,
        }
    }
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    match status {
        Some(status) => Ok(Output {
            command,
            status,
            stdout,
            stderr,
            elapsed: start.elapsed(),
        }),
        None => Err(RunError::Timeout {
            command,
            after: timeout,
            stdout,
            stderr,
        }),
    }
}

/// SIGKILL to the process group led by `child`, through the shell's `kill` builtin (this crate
/// has no unsafe code, and a minimal Debian has no /bin/kill), then to the child itself in case
/// that failed, so the `wait` that follows cannot hang.
fn kill_group(child: &mut std::process::Child) {
    let _ = Command::new("sh")
        .args(["-c", "kill -KILL -\"$1\"", "sh", &child.id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_both_streams_and_status() {
        let out = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .expect("sh runs");
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.code(), Some(3));
    }

    #[test]
    fn times_out_and_kills_the_whole_group() {
        let t0 = Instant::now();
        let err = run(
            Command::new("sh").args(["-c", "echo started; sleep 30 & sleep 30"]),
            Duration::from_millis(300),
        )
        .expect_err("must time out");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        match err {
            RunError::Timeout { stdout, .. } => assert_eq!(stdout, "started\n"),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run(
            &mut Command::new("/nonexistent/corral-no-such-program"),
            Duration::from_secs(1),
        )
        .expect_err("cannot spawn");
        assert!(matches!(err, RunError::Spawn { .. }), "{err}");
    }
}
