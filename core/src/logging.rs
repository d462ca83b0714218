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
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let _ = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
        }
    }
    Ok(())
}
