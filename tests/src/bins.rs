//! Where the built `corral` and `corral-agent` binaries are.
//!
//! `env!("CARGO_BIN_EXE_…")` only works for binaries of the test's own package, and this crate
//! deliberately depends on no binary crate. Cargo puts every package's binaries in one target
//! profile directory, and a test executable in its `deps/` subdirectory, so the binaries are
//! found next to the test executable's parent. `scripts/test` builds them first
//! (`cargo build --workspace --bins`); a test never builds them itself, because `cargo test`
//! holds the build directory lock while tests run and a nested cargo would wait for it forever.

use std::path::{Path, PathBuf};

/// The `corral` binary (the TUI and CLI).
pub fn corral() -> PathBuf {
    bin("corral")
}

/// The `corral-agent` binary (coordinator and worker roles).
pub fn corral_agent() -> PathBuf {
    bin("corral-agent")
}

/// A workspace binary by name; panics with what to run when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    try_bin(name).unwrap_or_else(|msg| panic!("{msg}"))
}

/// A workspace binary by name, or a message saying where it was looked for and how to build it.
pub fn try_bin(name: &str) -> Result<PathBuf, String> {
    let dir = bin_dir()?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is not built; run `cargo build --workspace --bins` first (scripts/test does)",
            path.display()
        ))
    }
}

/// The target profile directory holding the workspace binaries: `CORRAL_BIN_DIR` if set, else
/// derived from the running test executable (`<target>/<profile>/deps/<test>-<hash>`).
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CORRAL_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the test executable: {e}"))?;
    profile_dir_of(&exe).ok_or_else(|| {
        format!(
            "cannot derive the target directory from the test executable {}; set CORRAL_BIN_DIR",
            exe.display()
        )
    })
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
