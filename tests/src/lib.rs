//! Helpers for corral's end-to-end tests: the built binaries, the real SLURM test bed, commands
//! with timeouts, and temporary directories every emulated node can see.
//!
//! A test that needs SLURM starts like this:
//!
//! ```no_run
//! let Some(slurm) = corral_tests::slurm::require() else { return };
//! let out = slurm.run("sinfo", &["-h", "-o", "%P"]).expect("sinfo");
//! assert!(out.stdout.contains("debug"));
//! ```
//!
//! `require()` skips (returns `None`) when the test bed is not running, except under CI, where it
//! panics: a test that needs SLURM must fail in CI, never pass by skipping. `scripts/test`
//! starts the test bed, builds the binaries and runs every test.

pub mod bins;
pub mod cluster;
pub mod dask;
pub mod expect;
pub mod hosts;
pub mod on_slurm;
pub mod process;
pub mod slurm;
pub mod tmux;
pub mod web;

use std::path::PathBuf;

/// True when running under CI (`CI` set to anything but empty, `0` or `false`, as CI systems
/// set `CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        !(v.is_empty() || v == "0" || v == "false")
    })
}

/// The directory temporary test directories go under: `CORRAL_TEST_TMPDIR`, else the system
/// temp dir. It must be visible to every node; the test bed's nodes all run on this host, so
/// `/tmp` is. (On a real multi-host cluster this would be a shared filesystem such as `$HOME`.)
pub fn shared_tmp_root() -> PathBuf {
    std::env::var_os("CORRAL_TEST_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A fresh directory under [`shared_tmp_root`], removed when dropped (call `.keep()` on it to
/// look at it after a failure). Named `corral-<tag>-…` so leftovers are easy to attribute.
pub fn shared_tempdir(tag: &str) -> tempfile::TempDir {
    let root = shared_tmp_root();
    tempfile::Builder::new()
        .prefix(&format!("corral-{tag}-"))
        .tempdir_in(&root)
        .unwrap_or_else(|e| panic!("cannot create a temp dir under {}: {e}", root.display()))
}

/// A name no other test (or earlier run) uses, for job names and files: `corral-e2e-<tag>-<pid>-<n>`.
/// Tests run in parallel against one SLURM, so nothing may assume an empty queue or a fixed name.
pub fn unique_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("corral-e2e-{tag}-{}-{n}", std::process::id())
}
