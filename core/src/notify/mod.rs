//! Notifications: the cluster is ready, a job can never start, the walltime ends in N minutes,
//! a query finished, a node was lost — told once each, when it happens, even to a user who
//! is not looking at the screen.
//!
//! - here: [`Detector`] turns one look at a cluster (the backend's [`Observed`] and the
//!   coordinator's [`Snapshot`]) into [`Notice`]s, each with a key naming the event;
//!   [`claim`] makes a notice fire once per channel across processes and restarts (an
//!   `O_EXCL` file per key in `DIR/notified/CHANNEL/`: the TUI and the supervisor may both be
//!   watching, and whoever claims it first delivers it).
//! - [`terminal`]: a bell and the desktop-notification escapes (OSC 9 and OSC 777), which
//!   most terminal emulators show and forward over SSH.
//! - [`mail`]: mail through the site's `sendmail`/`mail` when `[notify] mail` is set.

pub mod mail;
pub mod terminal;

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backend::{Observed, State};
use crate::protocol::{Snapshot, WorkerState};
use crate::slurm::reason;

/// Where `DIR/notified/` keeps what was delivered.
pub const NOTIFIED_DIR: &str = "notified";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Ready,
    NeverStarts,
    WalltimeEnding,
    QueryFinished,
    QueryFailed,
    NodeLost,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Names the event (`ready:node1:4242`): the same event always has the same key.
    pub key: String,
    pub kind: Kind,
    pub cluster: String,
    /// Short: `corral: cluster c1 is ready`.
    pub title: String,
    /// One sentence more.
    pub body: String,
}

/// A channel a notice is delivered on (its own claim per channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Terminal,
    Mail,
}

impl Channel {
    fn dir_name(self) -> &'static str {
        match self {
            Channel::Terminal => "terminal",
            Channel::Mail => "mail",
        }
    }
}

/// Claims `notice` on `channel` for this process: true exactly once per cluster directory
/// (the first caller, whichever process it is), false ever after.
pub fn claim(cluster_dir: &Path, channel: Channel, notice: &Notice) -> io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = cluster_dir.join(NOTIFIED_DIR).join(channel.dir_name());
    std::fs::create_dir_all(&dir)?;
    // Keys hold node names and numbers; anything else becomes '_' so a key is one file name.
    let file: String = notice
        .key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(file))
    {
        Ok(mut f) => {
            use std::io::Write;
            let _ = writeln!(f, "{}", serde_json::to_string(notice).unwrap_or_default());
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remembers what it needs between looks (the query counters) and says what is new.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    /// (coordinator node, pid, done, failed) at the last look.
    queries: Option<(String, u32, u64, u64)>,
    /// Warn this long before the walltime ends.
    walltime_warn_secs: u64,
}

impl Detector {
    pub fn new(walltime_warn_minutes: u32) -> Detector {
        Detector {
            queries: None,
            walltime_warn_secs: u64::from(walltime_warn_minutes) * 60,
        }
    }

    /// What one look at cluster `name` shows. State-like events (ready, never starts,
    /// walltime, a lost node) come every time they hold, and [`claim`] keeps them to once;
    /// finished queries are counted from the first look, so a watcher that starts late does
    /// not announce old ones.
    pub fn detect(
        &mut self,
        name: &str,
        observed: Option<&Observed>,
        snapshot: Option<&Snapshot>,
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        let mut push = |key: String, kind, title: String, body: String| {
            out.push(Notice {
                key,
                kind,
                cluster: name.to_string(),
                title: format!("corral: {title}"),
                body,
            })
        };
        if let Some(o) = observed {
            for j in &o.jobs {
                if j.state == "PENDING" {
                    let why = reason::explain(&j.reason);
                    if why.never_starts {
                        push(
                            format!("never-starts:{}", j.id),
                            Kind::NeverStarts,
                            format!("job {} of cluster {name} can never start", j.id),
                            format!("{} (cancel it with `corral down {name}`)", why.sentence()),
                        );
                    }
                }
            }
            if o.state == State::Running
                && let Some(left) = o.left_secs
                && left <= self.walltime_warn_secs
            {
                let job = o
                    .jobs
                    .first()
                    .map_or_else(String::new, |j| j.id.to_string());
                let mins = left.div_ceil(60);
                push(
                    format!("walltime:{job}"),
                    Kind::WalltimeEnding,
                    format!(
                        "cluster {name} ends in {}",
                        crate::text::count(mins, "minute")
                    ),
                    format!(
                        "its walltime ends in about {}; save what you need",
                        crate::text::count(mins, "minute")
                    ),
                );
            }
        }
        let Some(s) = snapshot else {
            return out;
        };
        let live = s
            .live_workers()
            .filter(|w| w.state == WorkerState::Alive)
            .count();
        let asked = observed.map_or(0, |o| o.asked_workers as usize);
        if live > 0 && live >= asked {
            push(
                format!("ready:{}:{}", s.coordinator_node, s.coordinator_pid),
                Kind::Ready,
                format!("cluster {name} is ready"),
                format!(
                    "{} with {} connected",
                    crate::text::count(live as u64, "worker"),
                    crate::text::count(u64::from(s.cores), "core")
                ),
            );
        }
        for w in s.workers.iter().filter(|w| w.state == WorkerState::Dead) {
            push(
                format!("lost:{}:{}:{}", s.coordinator_node, s.coordinator_pid, w.id),
                Kind::NodeLost,
                format!("cluster {name} lost a worker on {}", w.node),
                format!(
                    "worker {} on node {} stopped answering; what it held is computed again elsewhere",
                    w.id, w.node
                ),
            );
        }
        let now = (
            s.coordinator_node.clone(),
            s.coordinator_pid,
            s.queries_done,
            s.queries_failed,
        );
        if let Some((node, pid, done, failed)) = &self.queries
            && *node == now.0
            && *pid == now.1
        {
            for n in *done + 1..=now.2 {
                push(
                    format!("query:{node}:{pid}:{n}"),
                    Kind::QueryFinished,
                    format!("a query finished on cluster {name}"),
                    format!("query {n} of this coordinator finished; its result is ready"),
                );
            }
            for n in *failed + 1..=now.3 {
                push(
                    format!("query-failed:{node}:{pid}:{n}"),
                    Kind::QueryFailed,
                    format!("a query failed on cluster {name}"),
                    format!("failed query {n} of this coordinator; `corral history` says why"),
                );
            }
        }
        self.queries = Some(now);
        out
    }
}

#[cfg(test)]
mod tests;
