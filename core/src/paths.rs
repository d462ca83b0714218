//! Where corral keeps its files, following the XDG base directory spec.
//!
//! `$HOME` is shared between login and compute nodes on HPC sites, so the state directory is
//! also the rendezvous between the TUI on the login node and the agents in the allocation.

use std::path::PathBuf;

/// `$XDG_CONFIG_HOME/corral`, default `~/.config/corral`.
pub fn config_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("corral")
}

/// `$XDG_STATE_HOME/corral`, default `~/.local/state/corral`.
pub fn state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state").join("corral")
}

/// `$XDG_CACHE_HOME/corral`, default `~/.cache/corral` (demo data lives here).
pub fn cache_dir() -> PathBuf {
    xdg("XDG_CACHE_HOME", ".cache").join("corral")
}

/// The directory holding every cluster directory.
pub fn clusters_dir() -> PathBuf {
    state_dir().join("clusters")
}

/// Site-wide defaults an administrator may install.
pub fn site_config_file() -> PathBuf {
    PathBuf::from("/etc/corral/config.toml")
}

/// The user's own config file.
pub fn user_config_file() -> PathBuf {
    config_dir().join("config.toml")
}

fn xdg(var: &str, fallback_under_home: &str) -> PathBuf {
    match std::env::var_os(var) {
        // The spec says relative values are invalid and must be ignored.
        Some(v) if PathBuf::from(&v).is_absolute() => PathBuf::from(v),
        _ => home().join(fallback_under_home),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}
