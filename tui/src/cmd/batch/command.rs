//! Running CMD on the ready cluster. The address rule, the same for every kind of command
//! (`./job.py`, `python3.11 job.py`, `env python job.py`, `sh -c 'STRING'`): every `{}` in
//! CMD's arguments — also inside a word, so `sh -c 'python job.py {}'` works — becomes the
//! coordinator's address (host:port); without any `{}` the address is added as the last
//! argument. `CORRAL_CLUSTER` (the name) and `CORRAL_COORDINATOR` (host:port) are always in
//! CMD's environment. A Dask cluster's CMD gets the Dask scheduler's `tls://host:port` in
//! place of the coordinator's address, and the variables of `corral dask-env` (the client
//! certificate), so an unchanged `Client(address)` connects.
//!
//! Signals: CMD runs in its own process group, so corral decides what reaches it: a signal to
//! corral is passed on to CMD's whole group, and CMD gets [`GRACE`] to exit before SIGKILL.
//! When CMD's stdin would be the terminal it gets /dev/null instead (a background process
//! group reading the terminal would be stopped).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use rustix::process::Signal;
use tokio::process::Command;

use super::launch::Signals;
use super::{BatchArgs, EXIT_NO_CLUSTER, Held, signal_exit, signal_name};

/// CMD exists but cannot be executed.
const EXIT_NOT_EXECUTABLE: u8 = 126;
/// CMD was not found.
const EXIT_NOT_FOUND: u8 = 127;
/// How long CMD may take to exit after a signal was passed on, before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
/// What CMD's arguments say where the address goes.
const PLACEHOLDER: &str = "{}";

/// CMD's arguments with the address in place: each `{}` replaced, or the address appended
/// when there is none.
fn arguments(args: &[OsString], address: &str) -> Vec<OsString> {
    let has_placeholder = args
        .iter()
        .any(|a| a.to_string_lossy().contains(PLACEHOLDER));
    if !has_placeholder {
        let mut out = args.to_vec();
        out.push(OsString::from(address));
        return out;
    }
    args.iter()
        .map(|a| match a.to_str() {
            Some(s) if s.contains(PLACEHOLDER) => OsString::from(s.replace(PLACEHOLDER, address)),
            // Not UTF-8: left as it is (a `{}` in it could not be found either).
            _ => a.clone(),
        })
        .collect()
}

/// When `corral` is not on `PATH` (run by its full path, or from a build directory), `PATH`
/// with this executable's directory appended, so CMD's `corral query "$CORRAL_CLUSTER"` works.
/// An installed corral is left alone (appending never shadows anything either).
fn path_with_corral() -> Option<OsString> {
    let me = std::env::current_exe().ok()?;
    let dir = me.parent()?.to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if dirs.iter().any(|d| d.join("corral").is_file()) {
        return None;
    }
    dirs.push(dir);
    std::env::join_paths(dirs).ok()
}

/// What the user's command line names.
fn describe_command(words: &[OsString]) -> String {
    words
        .iter()
        .map(|w| w.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs CMD on the ready cluster, releases the cluster when it ends, and returns its status.
pub(super) async fn run(
    args: &BatchArgs,
    mut held: Held,
    name: &str,
    workers: u32,
    cores: u32,
    signals: &mut Signals,
) -> anyhow::Result<ExitCode> {
    let address = match held.cluster.dir.read_coordinator() {
        Ok(info) => info.socket_addr().to_string(),
        Err(e) => {
            held.release("the coordinator vanished").await;
            eprintln!("corral: error: cannot read the coordinator's address: {e}");
            return Ok(ExitCode::from(EXIT_NO_CLUSTER));
        }
    };
    let Some((program, rest)) = args.command.split_first() else {
        held.release("no command was given").await;
        eprintln!("corral: error: no command after `--`");
        return Ok(ExitCode::from(EXIT_NO_CLUSTER));
    };
    // Dask mode: CMD gets the Dask scheduler's address (as fhdask passed its scheduler's)
    // and what `corral dask-env` prints, so its `Client(address)` connects unchanged.
    let mut dask_env = Vec::new();
    let cmd_address = if held.cluster.record.dask.is_some() {
        match crate::cmd::dask::scheduler_of(&held.cluster) {
            Ok(info) => {
                dask_env = crate::cmd::dask::client_env(&held.cluster, &info);
                info.address
            }
            Err(e) => {
                held.release("the Dask scheduler was not listening").await;
                eprintln!("corral: error: {e}");
                return Ok(ExitCode::from(EXIT_NO_CLUSTER));
            }
        }
    } else {
        address.clone()
    };
    let shown = describe_command(&args.command);
    eprintln!(
        "corral batch: cluster {name} is up ({workers} worker{}, {cores} core{}) at {cmd_address}; running {shown}",
        if workers == 1 { "" } else { "s" },
        if cores == 1 { "" } else { "s" },
    );
    let mut cmd = Command::new(program);
    cmd.args(arguments(rest, &cmd_address))
        .env("CORRAL_CLUSTER", name)
        .env("CORRAL_COORDINATOR", &address)
        .envs(dask_env)
        .process_group(0);
    // The state directory CMD's `corral query "$CORRAL_CLUSTER"` must find: the one this
    // corral used, whatever set it.
    if let Some(state_home) = corral_core::paths::state_dir().parent() {
        cmd.env("XDG_STATE_HOME", state_home);
    }
    if let Some(path) = path_with_corral() {
        cmd.env("PATH", path);
    }
    if std::io::stdin().is_terminal() {
        cmd.stdin(Stdio::null());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let (code, what) = match e.kind() {
                std::io::ErrorKind::NotFound => (EXIT_NOT_FOUND, "command not found"),
                std::io::ErrorKind::PermissionDenied => {
                    (EXIT_NOT_EXECUTABLE, "permission denied (not executable)")
                }
                _ => (EXIT_NOT_EXECUTABLE, "cannot be run"),
            };
            eprintln!(
                "corral: error: cannot run {:?}: {what} ({e})",
                program.to_string_lossy()
            );
            held.release(&format!("CMD {what}")).await;
            return Ok(ExitCode::from(code));
        }
    };
    let group = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);
    let to_group = |s: Signal| {
        if let Some(g) = group {
            // Gone already is fine: nothing left to signal.
            let _ = rustix::process::kill_process_group(g, s);
        }
    };
    let mut kill_at: Option<tokio::time::Instant> = None;
    let status = loop {
        let grace_over = async {
            match kill_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            st = child.wait() => break st,
            s = signals.recv() => {
                eprintln!(
                    "corral batch: {} — passing it on to CMD, then releasing the cluster",
                    signal_name(s)
                );
                to_group(s);
                kill_at.get_or_insert(tokio::time::Instant::now() + GRACE);
            }
            () = grace_over => {
                eprintln!("corral batch: CMD did not exit within {GRACE:?} of the signal; killing it");
                to_group(Signal::KILL);
                kill_at = None;
            }
        }
    };
    // CMD's background leftovers end with it, as a batch script's do when its job ends.
    to_group(Signal::TERM);
    let (code, how) = match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(c), _) => (
                u8::try_from(c).unwrap_or(255),
                format!("CMD exited with {c}"),
            ),
            (None, Some(n)) => (signal_exit(n), format!("CMD was killed by signal {n}")),
            (None, None) => (255, format!("CMD ended: {st}")),
        },
        Err(e) => (255, format!("cannot wait for CMD: {e}")),
    };
    eprintln!("corral batch: {how}; releasing cluster {name}");
    held.release(&how).await;
    Ok(ExitCode::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        let all: Vec<OsString> = words.iter().map(OsString::from).collect();
        let mut out = vec![words[0].to_string()];
        out.extend(
            arguments(&all[1..], "10.0.0.1:4242")
                .into_iter()
                .map(|w| w.to_string_lossy().into_owned()),
        );
        out
    }

    #[test]
    fn without_a_placeholder_the_address_is_the_last_argument() {
        assert_eq!(argv(&["./job.py"]), ["./job.py", "10.0.0.1:4242"]);
        assert_eq!(
            argv(&["python3.11", "job.py", "--n", "2"]),
            ["python3.11", "job.py", "--n", "2", "10.0.0.1:4242"]
        );
        assert_eq!(
            argv(&["env", "python", "job.py"]),
            ["env", "python", "job.py", "10.0.0.1:4242"]
        );
    }

    #[test]
    fn every_placeholder_is_replaced_also_inside_a_word() {
        assert_eq!(
            argv(&["sh", "-c", "python job.py {} && echo done {}"]),
            [
                "sh",
                "-c",
                "python job.py 10.0.0.1:4242 && echo done 10.0.0.1:4242"
            ]
        );
        assert_eq!(
            argv(&["./job.py", "--scheduler", "{}", "--n", "2"]),
            ["./job.py", "--scheduler", "10.0.0.1:4242", "--n", "2"]
        );
    }
}
