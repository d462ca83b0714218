//! The `corral` and `corral-agent` binaries the end-to-end tests run, built by Cargo from the
//! sources as they are now — so `cargo test` after an edit never runs stale binaries.
//!
//! `env!("CARGO_BIN_EXE_…")` only works for binaries of the test's own package, and this crate
//! deliberately depends on no binary crate, so the first use in a test process runs `cargo
//! build --workspace --bins` (a no-op when nothing changed). Under cargo-nextest the tests
//! were built beforehand and the build directory is free, so the binaries are built next to
//! the tests. Under `cargo test`, Cargo holds the build directory's lock while tests run and a
//! nested build there would wait forever, so they are built in a directory of their own
//! (`<target>/e2e-bins`). `CORRAL_BIN_DIR` points at prebuilt binaries instead (no build).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `corral` binary (the TUI and CLI).
pub fn corral() -> PathBuf {
    bin("corral")
}

/// The `corral-agent` binary (coordinator and worker roles).
pub fn corral_agent() -> PathBuf {
    bin("corral-agent")
}

/// A workspace binary by name; panics with what went wrong when it cannot be had.
pub fn bin(name: &str) -> PathBuf {
    try_bin(name).unwrap_or_else(|msg| panic!("{msg}"))
}

/// A workspace binary by name, built if needed, or a message saying why it cannot be had.
pub fn try_bin(name: &str) -> Result<PathBuf, String> {
    let dir = bin_dir()?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing after `cargo build --workspace --bins`",
            path.display()
        ))
    }
}

/// The directory holding the workspace binaries, built from the current sources (once per
/// test process).
pub fn bin_dir() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CORRAL_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the test executable: {e}"))?;
    let profile_dir = profile_dir_of(&exe).ok_or_else(|| {
        format!(
            "cannot derive the target directory from the test executable {}; set CORRAL_BIN_DIR",
            exe.display()
        )
    })?;
    let profile = profile_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "debug".into());
    let target = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    let under_nextest = std::env::var_os("NEXTEST").is_some();
    let target_dir = if under_nextest {
        target.to_path_buf()
    } else {
        target.join("e2e-bins")
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the tests crate has no workspace above it")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "--quiet", "--workspace", "--bins", "--target-dir"])
        .arg(&target_dir);
    if profile == "release" {
        cmd.arg("--release");
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false") {
        cmd.arg("--locked");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    if !out.status.success() {
        return Err(format!(
            "building the binaries the end-to-end tests run failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(target_dir.join(profile))
}

/// `<profile>/deps/<exe>` → `<profile>`; `<profile>/<exe>` (a binary run directly) → `<profile>`.
fn profile_dir_of(exe: &Path) -> Option<PathBuf> {
    let parent = exe.parent()?;
    if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().map(Path::to_path_buf)
    } else {
        Some(parent.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_is_above_deps() {
        assert_eq!(
            profile_dir_of(Path::new("/w/target/debug/deps/slurm_testbed-0123abcd")),
            Some(PathBuf::from("/w/target/debug"))
        );
        assert_eq!(
            profile_dir_of(Path::new("/w/target/debug/corral")),
            Some(PathBuf::from("/w/target/debug"))
        );
    }
}
