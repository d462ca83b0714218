//! `tracing` setup shared by the binaries.
//!
//! The TUI draws on the terminal, so it must log to a file; agents log to stderr, which srun
//! labels per task. The level comes from `CORRAL_LOG` (an `EnvFilter` directive), default `info`.

use std::path::Path;

use tracing_subscriber::EnvFilter;

/// Where log lines go.
pub enum LogTarget<'a> {
    /// Diagnostics on stderr (agents, and CLI subcommands that do not draw a screen).
    Stderr,
    /// Appended to a file (the TUI); the directory is created if missing.
    File(&'a Path),
}

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(target: LogTarget<'_>, default_level: &str) -> std::io::Result<()> {
    let filter =
        EnvFilter::try_from_env("CORRAL_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match target {
        LogTarget::Stderr => {
            // Under srun stderr is a log file: colour codes would only garble it.
            use std::io::IsTerminal;
            let _ = builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .try_init();
        }
        LogTarget::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            // Logs name files, nodes and errors: for the user only, like the rest of the state
            // directory; and never through a symlink someone left in its place.
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)?;
            if file.metadata()?.permissions().mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            let _ = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_log_file_is_for_the_user_only_and_never_a_symlink() {
        let d = tempfile::tempdir().expect("tmp");
        let target = d.path().join("elsewhere");
        std::fs::write(&target, "").expect("write");
        let link = d.path().join("link.log");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(init(LogTarget::File(&link), "info").is_err());
        // A log left world-readable by an older corral is tightened.
        let path = d.path().join("tui.log");
        std::fs::write(&path, "old\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        init(LogTarget::File(&path), "info").expect("init");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
