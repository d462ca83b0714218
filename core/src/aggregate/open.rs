//! Opening input files so that a file swapped under us is an error, never a hang.
//!
//! Other users may write to a shared data directory, so between planning and reading a file
//! can be replaced — by another file, or by a FIFO whose `open` would block a worker forever.
//! So a file is never `stat`ed by path and then opened: it is opened first, non-blocking (a
//! FIFO or device opens at once and is then refused), and the *descriptor* is `fstat`ed; only
//! a regular file with the planned device, inode, size, modification and change times is read.

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::error::AggError;
use super::plan::PlannedFile;

/// What identifies a file's contents as planned. `ctime` changes with every write, truncate,
/// rename onto it and metadata change, and cannot be set back by the owner, unlike `mtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
    pub dev: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            inode: meta.ino(),
            dev: meta.dev(),
        }
    }

    pub fn of_planned(f: &PlannedFile) -> FileId {
        FileId {
            size: f.size,
            mtime_ns: f.mtime_ns,
            ctime_ns: f.ctime_ns,
            inode: f.inode,
            dev: f.dev,
        }
    }
}

/// Opens `path` for reading without blocking: a FIFO without a writer or a device opens at
/// once (and is refused by the caller after `fstat`), and it never becomes our terminal.
pub(crate) fn open_nonblocking(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// An opened input and what its descriptor says about it.
pub(crate) struct Opened {
    pub file: File,
    pub meta: std::fs::Metadata,
}

/// Opens an input at planning: a regular file, or the error that names it.
pub(crate) fn open_input(path: &Path) -> Result<Opened, AggError> {
    let file = open_nonblocking(path).map_err(|e| open_error(path, e))?;
    let meta = file.metadata().map_err(|e| AggError::Unreadable {
        path: path.to_path_buf(),
        source: e,
    })?;
    if meta.is_dir() {
        return Err(AggError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if !meta.file_type().is_file() {
        return Err(AggError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    Ok(Opened { file, meta })
}

pub(crate) fn open_error(path: &Path, e: io::Error) -> AggError {
    match e.kind() {
        io::ErrorKind::NotFound => AggError::NotFound {
            path: path.to_path_buf(),
        },
        _ => AggError::Unreadable {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// Compares what a descriptor (or a path) says now with the plan.
pub(crate) fn check_same(planned: &PlannedFile, meta: &std::fs::Metadata) -> Result<(), AggError> {
    let changed = |truncated| AggError::FileChanged {
        path: planned.path.clone(),
        truncated,
    };
    if !meta.file_type().is_file() {
        return Err(changed(false));
    }
    let now = FileId::of(meta);
    if now.size < planned.size {
        return Err(changed(true));
    }
    if now != FileId::of_planned(planned) {
        return Err(changed(false));
    }
    Ok(())
}

/// Opens a planned file for computing: the same regular file as planned, or
/// [`AggError::FileChanged`] naming it.
pub(crate) fn open_planned(planned: &PlannedFile) -> Result<File, AggError> {
    let changed = |truncated| AggError::FileChanged {
        path: planned.path.clone(),
        truncated,
    };
    let file = open_nonblocking(&planned.path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => changed(false),
        _ => AggError::Unreadable {
            path: planned.path.clone(),
            source: e,
        },
    })?;
    let meta = file.metadata().map_err(|e| AggError::Unreadable {
        path: planned.path.clone(),
        source: e,
    })?;
    check_same(planned, &meta)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
    }

    #[test]
    fn a_fifo_is_refused_at_once_not_waited_for() {
        let d = tempfile::tempdir().expect("tmp");
        let fifo = d.path().join("f.csv");
        mkfifo(&fifo);
        // Without O_NONBLOCK this open would wait for a writer forever.
        let err = open_input(&fifo).err().expect("a FIFO is not an input");
        assert!(matches!(err, AggError::NotRegularFile { .. }), "{err}");
        assert!(err.to_string().contains("f.csv"), "{err}");
    }

    #[test]
    fn a_planned_file_replaced_by_a_fifo_or_touched_is_a_change() {
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("a.csv");
        std::fs::write(&path, "k\n1\n").expect("write");
        let q = crate::aggregate::Query::value_counts(
            vec![path.to_string_lossy().into_owned()],
            crate::aggregate::Column::Name("k".into()),
        );
        let plan = crate::aggregate::plan(&q, 1 << 20).expect("plan");
        let planned = &plan.files[0];
        assert!(open_planned(planned).is_ok());
        // A metadata change moves ctime (mtime stays): it is not the planned file any more.
        let mut p = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("meta").permissions(),
        );
        p ^= 0o010;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(p))
            .expect("chmod");
        let err = open_planned(planned).expect_err("ctime moved");
        assert!(matches!(err, AggError::FileChanged { .. }), "{err}");
        // Replaced by a FIFO: refused at once, naming the file.
        std::fs::remove_file(&path).expect("rm");
        mkfifo(&path);
        let err = open_planned(planned).expect_err("a FIFO now");
        assert!(
            matches!(err, AggError::FileChanged { .. }) && err.to_string().contains("a.csv"),
            "{err}"
        );
    }
}
