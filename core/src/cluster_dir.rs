//! A cluster's directory: `$XDG_STATE_HOME/corral/clusters/<name>/`.
//!
//! `$HOME` is shared between the login node and the compute nodes, so this directory is the
//! rendezvous of a cluster: the TUI creates it with the spec and the secret, the coordinator
//! writes `coordinator.json` into it once it listens, workers and clients read both. Because it
//! holds the secret, corral creates it 0700 and refuses to use one that is group/world
//! accessible or owned by someone else — with a message that says how to fix it.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::security::{Fingerprint, SecurityError};

/// Longest cluster name: it ends up in SLURM job names and paths.
pub const MAX_NAME_LEN: usize = 64;

const SPEC_FILE: &str = "spec.json";
const SECRET_FILE: &str = "secret";
const COORDINATOR_FILE: &str = "coordinator.json";
const LOGS_DIR: &str = "logs";
const LEDGER_FILE: &str = "ledger.jsonl";

/// Everything that can go wrong with a cluster directory, each with the path involved.
#[derive(Debug, thiserror::Error)]
pub enum ClusterDirError {
    #[error("invalid cluster name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error(
        "a cluster named {name:?} already exists at {path}; choose another name (`corral ls` lists yours)"
    )]
    AlreadyExists { name: String, path: PathBuf },
    #[error("no cluster directory at {path}; `corral ls` lists your clusters")]
    NotFound { path: PathBuf },
    /// A name that is not one of the user's clusters, with the closest that is.
    #[error("no cluster named {name:?}; {}", known_hint(closest, known))]
    NoSuchCluster {
        name: String,
        /// The existing name closest to it, when it is close enough to be a typo.
        closest: Option<String>,
        /// The existing names (all of them, sorted).
        known: Vec<String>,
    },
    #[error("{path} is not a directory (corral does not follow symlinks here)")]
    NotADirectory { path: PathBuf },
    #[error(
        "cluster directory {path} is accessible by group or others (mode {mode:03o}); it holds \
         the cluster secret, so corral refuses it. Fix: chmod 700 {path}"
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error(
        "{path} belongs to uid {owner}, not to you (uid {uid}); corral only uses cluster \
         directories you own. If it is yours: chown $(id -u) {path}; otherwise create your own \
         cluster"
    )]
    WrongOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the coordinator of {path} has not started yet (no coordinator.json)")]
    CoordinatorNotStarted { path: PathBuf },
    /// The cluster was stopped (or found ended): nothing listens for it any more.
    #[error(
        "cluster {name} is down since {} ({how}); `corral up --name {name}` starts a new one",
        crate::coordinator::ledger::rfc3339(at_unix * 1000)
    )]
    Ended {
        name: String,
        at_unix: u64,
        how: String,
    },
    /// The secret file was refused or unreadable (the error names the file).
    #[error(transparent)]
    Security(#[from] SecurityError),
}

/// How many names an unknown-name error lists when none is close.
const NAMES_LISTED: usize = 5;

fn known_hint(closest: &Option<String>, known: &[String]) -> String {
    match closest {
        Some(c) => format!("did you mean {c:?}? (`corral ls` lists yours)"),
        None if known.is_empty() => "you have no clusters yet (`corral up` starts one)".into(),
        None if known.len() <= NAMES_LISTED => format!("yours are: {}", known.join(", ")),
        None => format!(
            "yours include {}, … ({} in all; `corral ls` lists them)",
            known[..NAMES_LISTED].join(", "),
            known.len()
        ),
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ClusterDirError + '_ {
    move |source| ClusterDirError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks a cluster name: 1–64 characters of `A-Z a-z 0-9 . _ -`, starting with a letter or a
/// digit. That keeps it one safe path component, a safe SLURM job name, and shell-inert.
pub fn validate_name(name: &str) -> Result<(), ClusterDirError> {
    let invalid = |reason| ClusterDirError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    let first = name.chars().next().ok_or_else(|| invalid("it is empty"))?;
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("it is longer than 64 characters"));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(invalid("it must start with a letter or a digit"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            "only letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

/// A validated cluster directory. Holding one means the directory existed, was a real
/// directory (not a symlink), was ours and was private when it was opened or created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDir {
    path: PathBuf,
}

impl ClusterDir {
    /// Creates the directory of a new cluster `name` under [`crate::paths::clusters_dir`].
    pub fn create(name: &str) -> Result<Self, ClusterDirError> {
        Self::create_in(&crate::paths::clusters_dir(), name)
    }

    /// Creates `parent/name` (0700, with `logs/`), creating `parent` 0700 if missing. Fails
    /// if the cluster already exists: two clusters must never share a secret by accident.
    pub fn create_in(parent: &Path, name: &str) -> Result<Self, ClusterDirError> {
        validate_name(name)?;
        // Intermediate directories get 0700 too: they reveal cluster names.
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io_err(parent))?;
        let path = parent.join(name);
        // Mode at creation, not chmod after, so there is no window where it is open. A
        // restrictive umask can only remove bits, and the check below catches a strange one.
        match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(ClusterDirError::AlreadyExists {
                    name: name.to_owned(),
                    path,
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        }
        let dir = Self::open_path(&path)?;
        let logs = dir.logs_dir();
        DirBuilder::new()
            .mode(0o700)
            .create(&logs)
            .map_err(io_err(&logs))?;
        Ok(dir)
    }

    /// Opens the existing cluster `name` under [`crate::paths::clusters_dir`].
    pub fn open(name: &str) -> Result<Self, ClusterDirError> {
        Self::open_in(&crate::paths::clusters_dir(), name)
    }

    /// Opens the existing cluster `name` under `parent`.
    pub fn open_in(parent: &Path, name: &str) -> Result<Self, ClusterDirError> {
        validate_name(name)?;
        match Self::open_path(&parent.join(name)) {
            Err(ClusterDirError::NotFound { .. }) => {
                let known = Self::list_in(parent).unwrap_or_default();
                Err(ClusterDirError::NoSuchCluster {
                    name: name.to_owned(),
                    closest: crate::aggregate::error::closest(name, &known).cloned(),
                    known,
                })
            }
            other => other,
        }
    }

    /// Opens the cluster directory at `path` (what `corral-agent --cluster DIR` gets) after
    /// checking it is a directory, owned by us, and not accessible by group or others.
    pub fn open_path(path: &Path) -> Result<Self, ClusterDirError> {
        // symlink_metadata: a symlink planted in place of the directory is refused, not followed.
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ClusterDirError::NotFound {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        if !meta.is_dir() {
            return Err(ClusterDirError::NotADirectory {
                path: path.to_owned(),
            });
        }
        let uid = current_uid().map_err(io_err(Path::new("/proc/self/status")))?;
        if meta.uid() != uid {
            return Err(ClusterDirError::WrongOwner {
                path: path.to_owned(),
                owner: meta.uid(),
                uid,
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(ClusterDirError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// The cluster directories under `parent` whose names are valid, sorted. Unvalidated:
    /// open each one before using it.
    pub fn list_in(parent: &Path) -> Result<Vec<String>, ClusterDirError> {
        let entries = match fs::read_dir(parent) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(parent)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(parent))?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            match entry.file_name().to_str() {
                Some(name) if is_dir && validate_name(name).is_ok() => names.push(name.to_owned()),
                _ => {}
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's last component (the cluster name when created by corral).
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The wizard's `ClusterSpec`, as JSON.
    pub fn spec_file(&self) -> PathBuf {
        self.path.join(SPEC_FILE)
    }

    /// The 32-byte cluster secret (0600). Use [`ClusterDir::create_secret`] /
    /// [`ClusterDir::load_secret`] rather than opening it yourself.
    pub fn secret_file(&self) -> PathBuf {
        self.path.join(SECRET_FILE)
    }

    /// Where the coordinator says where it listens.
    pub fn coordinator_file(&self) -> PathBuf {
        self.path.join(COORDINATOR_FILE)
    }

    /// Logs of the agents and of the TUI for this cluster.
    pub fn logs_dir(&self) -> PathBuf {
        self.path.join(LOGS_DIR)
    }

    /// One JSON line per finished query.
    pub fn ledger_file(&self) -> PathBuf {
        self.path.join(LEDGER_FILE)
    }

    /// Generates the cluster secret and writes it (0600, never overwriting one).
    pub fn create_secret(&self) -> Result<crate::security::Secret, ClusterDirError> {
        Ok(crate::security::Secret::create_file(&self.secret_file())?)
    }

    /// Reads the cluster secret, refusing a file that others could read or that is not ours.
    pub fn load_secret(&self) -> Result<crate::security::Secret, ClusterDirError> {
        Ok(crate::security::Secret::load(&self.secret_file())?)
    }

    /// Publishes where the coordinator listens, atomically: a reader sees the old file, no
    /// file, or the new one, never half of one.
    pub fn write_coordinator(&self, info: &CoordinatorInfo) -> Result<(), ClusterDirError> {
        write_json_atomic(&self.coordinator_file(), info)
    }

    /// Reads `coordinator.json`; [`ClusterDirError::CoordinatorNotStarted`] if it is absent.
    pub fn read_coordinator(&self) -> Result<CoordinatorInfo, ClusterDirError> {
        let path = self.coordinator_file();
        // Whoever wrote it is who the client will trust with its proof and its queries: a file
        // not ours (left by another user, or planted) is refused, not followed.
        if let Ok(meta) = fs::symlink_metadata(&path) {
            let uid = current_uid().map_err(io_err(Path::new("/proc/self/status")))?;
            if meta.uid() != uid {
                return Err(ClusterDirError::WrongOwner {
                    path,
                    owner: meta.uid(),
                    uid,
                });
            }
            if !meta.file_type().is_file() {
                return Err(ClusterDirError::Io {
                    path,
                    source: io::Error::other(
                        "not a regular file (corral does not follow symlinks here)",
                    ),
                });
            }
        }
        match read_json(&path) {
            Err(ClusterDirError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                // No coordinator.json: either not started yet, or removed when it ended.
                let stopped = crate::cluster_record::ClusterRecord::load(self)
                    .ok()
                    .and_then(|r| r.stopped);
                Err(match stopped {
                    Some(s) => ClusterDirError::Ended {
                        name: self.name(),
                        at_unix: s.at_unix,
                        how: s.how,
                    },
                    None => ClusterDirError::CoordinatorNotStarted {
                        path: self.path.clone(),
                    },
                })
            }
            other => other,
        }
    }

    /// Removes `coordinator.json` (the coordinator does this on a clean exit); absent is fine.
    pub fn remove_coordinator(&self) -> Result<(), ClusterDirError> {
        let path = self.coordinator_file();
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }
}

/// What the coordinator publishes in `coordinator.json` once it listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorInfo {
    /// The address clients connect to (the node's cluster address, not a wildcard).
    pub address: IpAddr,
    /// The UDP port the kernel chose.
    pub port: u16,
    /// SHA-256 of the coordinator's DER certificate, lowercase hex: what clients pin.
    pub cert_sha256: String,
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub started_at_unix: u64,
    pub hostname: String,
    /// The SLURM node it runs on (`SLURMD_NODENAME`; the host name outside SLURM): how SLURM's
    /// node lists name it.
    #[serde(default)]
    pub node: String,
    /// [`crate::protocol::PROTOCOL_VERSION`] of the coordinator, so a client of another
    /// version can say so before it connects.
    pub protocol_version: u32,
}

impl CoordinatorInfo {
    /// The record for this process listening on `addr` with certificate `fingerprint`.
    pub fn for_this_process(addr: SocketAddr, fingerprint: &Fingerprint) -> Self {
        Self {
            address: addr.ip(),
            port: addr.port(),
            cert_sha256: fingerprint.to_hex(),
            pid: std::process::id(),
            started_at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            hostname: hostname(),
            node: node_name(),
            protocol_version: crate::protocol::PROTOCOL_VERSION,
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }

    /// The pinned certificate fingerprint.
    pub fn fingerprint(&self) -> Result<Fingerprint, SecurityError> {
        Fingerprint::from_hex(&self.cert_sha256)
    }
}

/// Writes `value` as JSON to `path` atomically: a private temporary file in the same
/// directory, fsynced, renamed over `path`, then the directory fsynced. On any error the
/// temporary file is removed, so no partial file is ever left behind.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), ClusterDirError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| ClusterDirError::Json {
        path: path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The pid and a counter make the name unique among concurrent writers; the leading dot
    // keeps it out of listings.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.tmp.{}.{n}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(&bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))?;
        // Make the rename itself durable; NFS home directories may not support it.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a JSON file written by [`write_json_atomic`] (or anyone).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ClusterDirError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes).map_err(|source| ClusterDirError::Json {
        path: path.to_owned(),
        source,
    })
}

/// This machine's host name (from the kernel; `HOSTNAME` or `"unknown"` as fallbacks).
/// The node's name as SLURM knows it (`SLURMD_NODENAME`, which differs from the host name when
/// several emulated nodes share a host, and is what squeue shows), else the host name.
pub fn node_name() -> String {
    std::env::var("SLURMD_NODENAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(hostname)
}

pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// This process's effective uid, the owner of the files it creates. Read from
/// `/proc/self/status` because calling `getuid` needs `unsafe`, which the workspace keeps to
/// one module (corral targets Linux login and compute nodes).
pub fn current_uid() -> io::Result<u32> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        // Fields: real, effective, saved, filesystem.
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Uid line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coordinator_json_that_is_a_symlink_or_not_ours_is_refused() {
        let t = tempfile::tempdir().expect("tmp");
        let dir = ClusterDir::create_in(t.path(), "c").expect("dir");
        let elsewhere = t.path().join("planted.json");
        fs::write(&elsewhere, "{}").expect("write");
        std::os::unix::fs::symlink(&elsewhere, dir.coordinator_file()).expect("symlink");
        let err = dir.read_coordinator().expect_err("a symlink is refused");
        assert!(err.to_string().contains("symlink"), "{err}");
        fs::remove_file(dir.coordinator_file()).expect("rm");
        // Another user's file: only root can make one, so the test does when it can.
        if current_uid().expect("uid") == 0 {
            fs::write(dir.coordinator_file(), "{}").expect("write");
            std::os::unix::fs::chown(dir.coordinator_file(), Some(4242), None).expect("chown");
            let err = dir.read_coordinator().expect_err("not ours");
            assert!(
                matches!(err, ClusterDirError::WrongOwner { owner: 4242, .. }),
                "{err}"
            );
        }
    }
    use crate::security::{Secret, ServerIdentity};

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn names() {
        for ok in ["a", "demo", "my-cluster_2.x", "9lives", &"x".repeat(64)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-rf",
            "a/b",
            "a b",
            "é",
            "a;b",
            &"x".repeat(65),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_is_private_and_exclusive() {
        let t = tmp();
        let parent = t.path().join("state/clusters");
        let dir = ClusterDir::create_in(&parent, "c1").expect("create");
        let mode = fs::metadata(dir.path()).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let pmode = fs::metadata(&parent).expect("meta").permissions().mode() & 0o777;
        assert_eq!(pmode, 0o700);
        assert!(dir.logs_dir().is_dir());
        assert_eq!(dir.name(), "c1");
        assert!(matches!(
            ClusterDir::create_in(&parent, "c1"),
            Err(ClusterDirError::AlreadyExists { .. })
        ));
        assert_eq!(ClusterDir::list_in(&parent).expect("list"), vec!["c1"]);
        assert!(ClusterDir::create_in(&parent, "../escape").is_err());
    }

    #[test]
    fn group_readable_dir_is_refused_with_the_fix() {
        let t = tmp();
        let dir = ClusterDir::create_in(t.path(), "open").expect("create");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = ClusterDir::open_path(dir.path()).expect_err("0755 must be refused");
        let msg = err.to_string();
        assert!(matches!(
            err,
            ClusterDirError::InsecurePermissions { mode: 0o755, .. }
        ));
        assert!(
            msg.contains(&format!("chmod 700 {}", dir.path().display())),
            "{msg}"
        );
        assert!(msg.contains("755"), "{msg}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        ClusterDir::open_path(dir.path()).expect("0700 is fine");
    }

    #[test]
    fn symlink_and_missing_are_refused() {
        let t = tmp();
        let dir = ClusterDir::create_in(t.path(), "real").expect("create");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).expect("symlink");
        assert!(matches!(
            ClusterDir::open_path(&link),
            Err(ClusterDirError::NotADirectory { .. })
        ));
        assert!(matches!(
            ClusterDir::open_path(&t.path().join("nope")),
            Err(ClusterDirError::NotFound { .. })
        ));
    }

    #[test]
    fn an_unknown_name_says_the_closest_known_one() {
        let t = tmp();
        let none = ClusterDir::open_in(t.path(), "lab").expect_err("no clusters yet");
        assert_eq!(
            none.to_string(),
            "no cluster named \"lab\"; you have no clusters yet (`corral up` starts one)"
        );
        ClusterDir::create_in(t.path(), "taxi-8").expect("create");
        ClusterDir::create_in(t.path(), "lab").expect("create");
        let typo = ClusterDir::open_in(t.path(), "taxi8").expect_err("unknown");
        assert_eq!(
            typo.to_string(),
            "no cluster named \"taxi8\"; did you mean \"taxi-8\"? (`corral ls` lists yours)"
        );
        let far = ClusterDir::open_in(t.path(), "nosuch").expect_err("unknown");
        assert_eq!(
            far.to_string(),
            "no cluster named \"nosuch\"; yours are: lab, taxi-8"
        );
    }

    #[test]
    fn wrong_owner_message() {
        // Another uid's directory cannot be made without root; check the message instead.
        let err = ClusterDirError::WrongOwner {
            path: "/x".into(),
            owner: 1,
            uid: 2,
        };
        assert!(err.to_string().contains("uid 1"));
        assert!(current_uid().is_ok());
    }

    #[test]
    fn secret_through_the_dir() {
        let t = tmp();
        let dir = ClusterDir::create_in(t.path(), "s").expect("create");
        let a = dir.create_secret().expect("create secret");
        let b = dir.load_secret().expect("load secret");
        assert!(a.ct_eq(&b));
        assert!(dir.create_secret().is_err(), "never overwrite a secret");
        fs::set_permissions(dir.secret_file(), fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = dir.load_secret().expect_err("0644 refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn coordinator_json_round_trip() {
        let t = tmp();
        let dir = ClusterDir::create_in(t.path(), "c").expect("create");
        assert!(matches!(
            dir.read_coordinator(),
            Err(ClusterDirError::CoordinatorNotStarted { .. })
        ));
        let id = ServerIdentity::generate().expect("cert");
        let info = CoordinatorInfo::for_this_process(
            "10.1.2.3:45678".parse().expect("addr"),
            id.fingerprint(),
        );
        dir.write_coordinator(&info).expect("write");
        let back = dir.read_coordinator().expect("read");
        assert_eq!(back, info);
        assert_eq!(back.socket_addr(), "10.1.2.3:45678".parse().expect("addr"));
        assert_eq!(&back.fingerprint().expect("hex"), id.fingerprint());
        let mode = fs::metadata(dir.coordinator_file())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        dir.remove_coordinator().expect("remove");
        dir.remove_coordinator().expect("remove twice is fine");
    }

    fn entries(p: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(p)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn atomic_write_never_exposes_a_partial_file() {
        let t = tmp();
        let dir = ClusterDir::create_in(t.path(), "a").expect("create");
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let fp = Fingerprint::of_der(b"x");
        let path = dir.coordinator_file();
        let writer = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                for port in 1..300u16 {
                    let mut info = CoordinatorInfo::for_this_process(addr, &fp);
                    info.port = port;
                    // A long hostname makes a torn write likely if the write were not atomic.
                    info.hostname = "h".repeat(64 * 1024);
                    dir.write_coordinator(&info).expect("write");
                }
            })
        };
        let mut seen = 0;
        while !writer.is_finished() {
            match read_json::<CoordinatorInfo>(&path) {
                Ok(_) => seen += 1,
                Err(ClusterDirError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => panic!("reader saw a partial file: {e}"),
            }
        }
        writer.join().expect("writer");
        let _ = seen;
        assert_eq!(entries(dir.path()), vec!["coordinator.json", "logs"]);
    }

    #[test]
    fn failed_atomic_write_leaves_nothing() {
        let t = tmp();
        // Renaming a file over a non-empty directory fails after the temp file is written.
        let target = t.path().join("target");
        fs::create_dir(&target).expect("mkdir");
        fs::write(target.join("keep"), b"x").expect("write");
        let err = write_json_atomic(&target, &1u32).expect_err("rename must fail");
        assert!(err.to_string().contains("target"), "{err}");
        assert_eq!(entries(t.path()), vec!["target"]);
    }

    #[test]
    fn secret_debug_does_not_leak() {
        let s = Secret::generate().expect("random");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }
}
