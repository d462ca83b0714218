//! What a coordinator keeps in the cluster directory so that a new one can take over (after
//! the old one was killed, crashed, lost its node, or handed over to a replacement head job):
//!
//! - `coordinator/identity` (0600): its certificate and private key, so the new coordinator
//!   presents the certificate every worker and client already pinned;
//! - `coordinator/query.json`: the next query number and the running query (its query,
//!   options and plan — the plan, not the inputs, because partitions depend on the cores at
//!   the time and on the files as they were);
//! - `coordinator/partials/Q-T.bin`: every accepted partial of the running query (postcard,
//!   with the quote parity it was computed from), so nothing finished is computed again.
//!
//! The ledger is already a file of its own (`ledger.jsonl`). Writes go through one thread in
//! order (a bounded queue; when it is full a partial is not kept and is computed again after
//! a takeover, which costs time, not exactness). Every file is written atomically.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::aggregate::{Parity, Partial, Plan, Query};
use crate::cluster_dir::{self, ClusterDir, ClusterDirError};
use crate::protocol::{QueryId, QueryOptions};

const DIR: &str = "coordinator";
const QUERY_FILE: &str = "query.json";
const PARTIALS: &str = "partials";
const IDENTITY_FILE: &str = "identity";
/// Writes waiting for the persistence thread.
const QUEUE: usize = 4096;

/// The running query as kept on disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    pub id: QueryId,
    pub query: Query,
    pub options: QueryOptions,
    pub plan: Plan,
    pub started_unix_ms: u64,
}

/// `query.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Kept {
    pub next_query: QueryId,
    pub running: Option<RunRecord>,
}

/// One accepted partial as kept on disk.
#[derive(Serialize, Deserialize)]
struct KeptPartial {
    parity: Parity,
    partial: Partial,
}

/// What a new coordinator finds.
pub(crate) struct Found {
    pub kept: Kept,
    /// Accepted partials of the running query: task, the parity it was computed from, result.
    pub partials: Vec<(usize, Parity, Partial)>,
}

enum Write {
    Kept(Box<Kept>),
    Partial {
        query: QueryId,
        task: usize,
        parity: Parity,
        partial: Box<Partial>,
    },
    /// The query ended: its partials go.
    Clear {
        query: QueryId,
    },
}

fn state_dir(dir: &Path) -> PathBuf {
    dir.join(DIR)
}

fn partial_path(dir: &Path, query: QueryId, task: usize) -> PathBuf {
    state_dir(dir)
        .join(PARTIALS)
        .join(format!("{query}-{task}.bin"))
}

/// Creates `coordinator/partials/` (0700).
fn make_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir(dir).join(PARTIALS))
}

/// The persistence thread's end of the queue.
pub(crate) struct Keeper {
    tx: Option<SyncSender<Write>>,
}

impl Keeper {
    /// A keeper writing into `dir`'s `coordinator/`; `None`: keeps nothing (tests).
    pub fn start(dir: Option<&ClusterDir>) -> Keeper {
        let Some(dir) = dir else {
            return Keeper { tx: None };
        };
        let root = dir.path().to_owned();
        if let Err(e) = make_dirs(&root) {
            warn!(
                "cannot create {}: {e}; a new coordinator could not take over the running query",
                state_dir(&root).display()
            );
            return Keeper { tx: None };
        }
        let (tx, rx) = sync_channel::<Write>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("persist".into())
            .spawn(move || {
                while let Ok(w) = rx.recv() {
                    if let Err(e) = write(&root, w) {
                        warn!("cannot keep the coordinator's state: {e}");
                    }
                }
            });
        match spawned {
            Ok(_) => Keeper { tx: Some(tx) },
            Err(e) => {
                warn!("cannot start the persistence thread: {e}");
                Keeper { tx: None }
            }
        }
    }

    fn send(&self, w: Write) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(w) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                warn!(
                    "the persistence queue is full; this write is dropped (a takeover would compute it again)"
                )
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    pub fn keep(&self, kept: Kept) {
        self.send(Write::Kept(Box::new(kept)));
    }

    pub fn partial(&self, query: QueryId, task: usize, parity: Parity, partial: Partial) {
        if self.tx.is_some() {
            self.send(Write::Partial {
                query,
                task,
                parity,
                partial: Box::new(partial),
            });
        }
    }

    pub fn clear(&self, query: QueryId) {
        self.send(Write::Clear { query });
    }

    /// Whether anything is kept (partials are cloned for it only then).
    pub fn active(&self) -> bool {
        self.tx.is_some()
    }
}

fn write(root: &Path, w: Write) -> Result<(), ClusterDirError> {
    match w {
        Write::Kept(k) => cluster_dir::write_json_atomic(&state_dir(root).join(QUERY_FILE), &*k),
        Write::Partial {
            query,
            task,
            parity,
            partial,
        } => {
            let path = partial_path(root, query, task);
            let bytes = postcard::to_stdvec(&KeptPartial {
                parity,
                partial: *partial,
            })
            .map_err(|e| ClusterDirError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
            write_atomic(&path, &bytes)
        }
        Write::Clear { query } => {
            let d = state_dir(root).join(PARTIALS);
            let prefix = format!("{query}-");
            if let Ok(entries) = std::fs::read_dir(&d) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with(&prefix) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            Ok(())
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClusterDirError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| ClusterDirError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// What an earlier coordinator of `dir` kept, if anything.
pub(crate) fn load(dir: &ClusterDir) -> Option<Found> {
    let root = dir.path();
    let kept: Kept = cluster_dir::read_json(&state_dir(root).join(QUERY_FILE)).ok()?;
    let mut partials = Vec::new();
    if let Some(run) = &kept.running {
        let prefix = format!("{}-", run.id);
        let d = state_dir(root).join(PARTIALS);
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(task) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".bin"))
                .and_then(|t| t.parse::<usize>().ok())
            else {
                continue;
            };
            match std::fs::read(e.path())
                .ok()
                .and_then(|b| postcard::from_bytes::<KeptPartial>(&b).ok())
            {
                Some(k) => partials.push((task, k.parity, k.partial)),
                // A torn or foreign file: that partition is computed again.
                None => warn!(
                    "cannot read the kept partial {}; it is computed again",
                    e.path().display()
                ),
            }
        }
        partials.sort_by_key(|(t, _, _)| *t);
        info!(
            query = run.id,
            partials = partials.len(),
            "found a query to resume"
        );
    }
    Some(Found { kept, partials })
}

/// The coordinator's certificate and key: the kept one, else a new one that is kept. So a
/// coordinator that takes over presents the certificate workers and clients pinned.
pub(crate) fn identity(
    dir: &ClusterDir,
) -> Result<crate::security::ServerIdentity, crate::coordinator::CoordinatorError> {
    let root = dir.path();
    let path = state_dir(root).join(IDENTITY_FILE);
    if let Ok(bytes) = std::fs::read(&path)
        && let Some(id) = crate::security::ServerIdentity::from_bytes(&bytes)
    {
        return Ok(id);
    }
    let id = crate::security::ServerIdentity::generate()?;
    make_dirs(root).map_err(|source| ClusterDirError::Io {
        path: state_dir(root),
        source,
    })?;
    write_atomic(&path, &id.to_bytes())?;
    Ok(id)
}
