//! Clusters that have ended: their names are free again, their records stay for `history`.
//!
//! Starting a cluster under the name of an ended one moves the ended one's directory to
//! `clusters/.ended/NAME@<ended at, unix seconds>` (a name no cluster can have, so `ls` and
//! name lookups never see it), where `history` still reads its ledger. `corral forget NAME`
//! removes an ended cluster's directory and its earlier records for good.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::cluster_dir::{ClusterDir, ClusterDirError, validate_name};
use crate::cluster_record::ClusterRecord;

/// Where ended clusters go when their name is taken again.
const ENDED_DIR: &str = ".ended";

/// How long an ended cluster stays in `corral ls` and on Home (`ls --all` shows every one).
pub const SHOWN_AFTER_END_SECS: u64 = 24 * 3600;

/// Whether a record ended long enough ago (at `now`, unix seconds) to be left out of lists.
pub fn ended_long_ago(record: &ClusterRecord, now: u64) -> bool {
    record
        .stopped
        .as_ref()
        .is_some_and(|s| now.saturating_sub(s.at_unix) > SHOWN_AFTER_END_SECS)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ClusterDirError + '_ {
    move |source| ClusterDirError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Makes `name` free for a new cluster under `parent`: nothing there, or an ended cluster,
/// which is moved aside (returns where). A cluster that has not ended keeps its name:
/// [`ClusterDirError::AlreadyExists`].
pub fn free_name(parent: &Path, name: &str) -> Result<Option<PathBuf>, ClusterDirError> {
    validate_name(name)?;
    let dir = match ClusterDir::open_in(parent, name) {
        Ok(d) => d,
        Err(ClusterDirError::NoSuchCluster { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let stopped = ClusterRecord::load(&dir).ok().and_then(|r| r.stopped);
    let Some(stopped) = stopped else {
        return Err(ClusterDirError::AlreadyExists {
            name: name.to_owned(),
            path: dir.path().to_owned(),
        });
    };
    let ended = parent.join(ENDED_DIR);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&ended)
        .map_err(io_err(&ended))?;
    // Two ends of one name within a second get distinct places.
    let mut to = ended.join(format!("{name}@{}", stopped.at_unix));
    let mut n = 1;
    while to.exists() {
        to = ended.join(format!("{name}@{}-{n}", stopped.at_unix));
        n += 1;
    }
    fs::rename(dir.path(), &to).map_err(io_err(dir.path()))?;
    Ok(Some(to))
}

/// The earlier (moved-aside) ended clusters called `name`, or all of them, oldest first.
pub fn earlier(parent: &Path, name: Option<&str>) -> Result<Vec<ClusterDir>, ClusterDirError> {
    let ended = parent.join(ENDED_DIR);
    let entries = match fs::read_dir(&ended) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&ended)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(&ended))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some((base, when)) = split(&file) else {
            continue;
        };
        if name.is_none_or(|n| n == base) {
            found.push((when, file.clone(), ClusterDir::open_path(&entry.path())?));
        }
    }
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(found.into_iter().map(|(_, _, d)| d).collect())
}

/// `lab@1764570000` or `lab@1764570000-2` → ("lab", 1764570000). `@` is in no cluster name.
fn split(file: &str) -> Option<(&str, u64)> {
    let (base, rest) = file.rsplit_once('@')?;
    let when = rest.split_once('-').map_or(rest, |(w, _)| w);
    validate_name(base).ok()?;
    Some((base, when.parse().ok()?))
}

/// What `corral forget NAME` removed.
#[derive(Debug, Default)]
pub struct Forgotten {
    /// The cluster's directory, when it had ended.
    pub current: Option<PathBuf>,
    /// Earlier ended clusters of that name.
    pub earlier: Vec<PathBuf>,
}

/// Why a cluster cannot be forgotten.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error(
        "cluster {name} has not ended; `corral down {name}` stops it, then `corral forget {name}`"
    )]
    NotEnded { name: String },
    #[error(transparent)]
    Dir(#[from] ClusterDirError),
}

/// Removes every ended record of `name` under `parent`: its directory (refused unless it has
/// ended) and the earlier ones moved aside.
pub fn forget(parent: &Path, name: &str) -> Result<Forgotten, ForgetError> {
    validate_name(name)?;
    let mut out = Forgotten::default();
    let earlier = earlier(parent, Some(name))?;
    match ClusterDir::open_in(parent, name) {
        Ok(dir) => {
            let ended = ClusterRecord::load(&dir).ok().and_then(|r| r.stopped);
            if ended.is_none() {
                return Err(ForgetError::NotEnded {
                    name: name.to_owned(),
                });
            }
            out.current = Some(dir.path().to_owned());
        }
        Err(ClusterDirError::NoSuchCluster { .. }) if !earlier.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    out.earlier = earlier.iter().map(|d| d.path().to_owned()).collect();
    for p in out.current.iter().chain(&out.earlier) {
        fs::remove_dir_all(p).map_err(|e| ClusterDirError::Io {
            path: p.clone(),
            source: e,
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_record::{Backend, Stopped};

    fn ended_cluster(parent: &Path, name: &str, at: Option<u64>) -> ClusterDir {
        let dir = ClusterDir::create_in(parent, name).expect("create");
        let record = ClusterRecord {
            name: name.into(),
            workers: 1,
            cores_per_worker: 1,
            created_at_unix: 1,
            backend: Backend::Local {
                coordinator_pid: 1,
                worker_pids: vec![],
                agent: PathBuf::from("corral-agent"),
            },
            stopped: at.map(|at_unix| Stopped {
                at_unix,
                how: "corral down".into(),
            }),
            dask: None,
        };
        record.save(&dir).expect("save");
        dir
    }

    #[test]
    fn an_ended_name_is_free_again_and_its_record_stays() {
        let t = tempfile::tempdir().expect("tmp");
        assert_eq!(free_name(t.path(), "lab").expect("free"), None);
        ended_cluster(t.path(), "lab", Some(100));
        let moved = free_name(t.path(), "lab")
            .expect("moved")
            .expect("somewhere");
        assert!(moved.ends_with(".ended/lab@100"), "{}", moved.display());
        assert!(ClusterDir::open_in(t.path(), "lab").is_err());
        assert!(ClusterDir::list_in(t.path()).expect("list").is_empty());
        ended_cluster(t.path(), "lab", Some(100));
        free_name(t.path(), "lab").expect("moved again");
        let old = earlier(t.path(), Some("lab")).expect("earlier");
        assert_eq!(old.len(), 2);
        assert!(earlier(t.path(), Some("la")).expect("earlier").is_empty());
    }

    #[test]
    fn a_cluster_that_has_not_ended_keeps_its_name_and_is_not_forgotten() {
        let t = tempfile::tempdir().expect("tmp");
        ended_cluster(t.path(), "live", None);
        assert!(matches!(
            free_name(t.path(), "live"),
            Err(ClusterDirError::AlreadyExists { .. })
        ));
        let e = forget(t.path(), "live").expect_err("refused");
        assert!(e.to_string().contains("`corral down live`"), "{e}");
    }

    #[test]
    fn forget_removes_the_ended_cluster_and_its_earlier_records() {
        let t = tempfile::tempdir().expect("tmp");
        ended_cluster(t.path(), "lab", Some(100));
        free_name(t.path(), "lab").expect("moved");
        ended_cluster(t.path(), "lab", Some(200));
        ended_cluster(t.path(), "other", Some(200));
        let f = forget(t.path(), "lab").expect("forgotten");
        assert!(f.current.is_some());
        assert_eq!(f.earlier.len(), 1);
        assert!(earlier(t.path(), None).expect("earlier").is_empty());
        assert_eq!(ClusterDir::list_in(t.path()).expect("list"), vec!["other"]);
        assert!(matches!(
            forget(t.path(), "lab"),
            Err(ForgetError::Dir(ClusterDirError::NoSuchCluster { .. }))
        ));
    }

    #[test]
    fn long_ago_is_more_than_a_day_after_the_end() {
        let t = tempfile::tempdir().expect("tmp");
        let d = ended_cluster(t.path(), "x", Some(1_000));
        let r = ClusterRecord::load(&d).expect("load");
        assert!(!ended_long_ago(&r, 1_000 + SHOWN_AFTER_END_SECS));
        assert!(ended_long_ago(&r, 1_001 + SHOWN_AFTER_END_SECS));
    }
}
