//! Adaptive scaling (`corral up --adapt MIN..MAX`, `corral scale NAME --adapt MIN..MAX|off`):
//! the cluster grows while queries queue work and shrinks after a stated idle time.
//!
//! - [`policy`]: the rules, a pure function of observations and time (hysteresis, a minimum
//!   time between decisions, MIN..MAX and the partition's limit; pending jobs never capacity).
//! - here: the [`Setting`] recorded in the cluster's spec, what one look at a cluster becomes
//!   as an [`Observation`], and [`Adapter`], which applies a decision through the cluster's
//!   backend and keeps the policy's memory in the cluster directory (so a restarted
//!   supervisor does not decide again at once). The loop that calls it is the login-side
//!   supervisor's (`crate::supervisor`): it runs while no `corral` is open.

pub mod policy;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use policy::{Decision, Direction, Memory, Observation, Policy, Range, RangeError, Tuning};

use crate::backend::{Backend, Cluster, Events};
use crate::cluster_dir::{self, ClusterDir};
use crate::model::JobId;
use crate::protocol::{Snapshot, WorkerState};
use crate::slurm::lifecycle::{ClusterJobs, JobView};

/// The policy's memory between ticks (`DIR/adapt-memory.json`).
pub const MEMORY_FILE: &str = "adapt-memory.json";

/// What `--adapt` recorded in the cluster's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub range: Range,
    /// The most workers of this size the partition holds at once (validation's figure) when
    /// it was set; `None` for clusters without such a limit (local ones).
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub tuning: Tuning,
}

/// Why a range cannot be used on this cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error(transparent)]
    Range(#[from] RangeError),
    #[error(
        "--adapt {range}: partition {partition} holds at most {limit} workers of {cores} cores at once; use --adapt {min}..{limit}"
    , min = range.min.min(*limit).max(1))]
    OverLimit {
        range: Range,
        partition: String,
        limit: u32,
        cores: u32,
    },
}

impl Setting {
    /// A range checked against the partition's limit (`None`: no limit known). `MAX` above the
    /// limit is refused with the range that fits: adaptive scaling would otherwise submit jobs
    /// that can never start.
    pub fn new(
        range: Range,
        limit: Option<(String, u64)>,
        cores: u32,
    ) -> Result<Setting, SettingError> {
        let limit = match limit {
            Some((partition, l)) => {
                let l = u32::try_from(l).unwrap_or(u32::MAX);
                if range.max > l {
                    return Err(SettingError::OverLimit {
                        range,
                        partition,
                        limit: l,
                        cores,
                    });
                }
                Some(l)
            }
            None => None,
        };
        Ok(Setting {
            range,
            limit,
            tuning: tuning_from_env(),
        })
    }
}

/// The tuning, with `CORRAL_ADAPT_UP_AFTER_SECS`, `CORRAL_ADAPT_IDLE_AFTER_SECS` and
/// `CORRAL_ADAPT_MIN_BETWEEN_SECS` overriding the defaults (tests use seconds, not minutes;
/// a value that is not a number is ignored and the default stays).
pub fn tuning_from_env() -> Tuning {
    let mut t = Tuning::default();
    let get = |var: &str| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
    };
    if let Some(d) = get("CORRAL_ADAPT_UP_AFTER_SECS") {
        t.up_after = d;
    }
    if let Some(d) = get("CORRAL_ADAPT_IDLE_AFTER_SECS") {
        t.idle_after = d;
    }
    if let Some(d) = get("CORRAL_ADAPT_MIN_BETWEEN_SECS") {
        t.min_between = d;
    }
    t
}

/// What one look at a cluster (its coordinator's snapshot, its jobs and SLURM's view of
/// them) says for the policy. No snapshot (the coordinator unreachable): nothing connected and
/// nothing known to be running, so the policy neither grows nor counts the cluster as idle
/// capacity it could shed.
pub fn observe(
    at_ms: u64,
    snapshot: Option<&Snapshot>,
    jobs: &ClusterJobs,
    views: &HashMap<JobId, JobView>,
    cores_per_worker: u32,
    limit: Option<u32>,
) -> Observation {
    let mut asked = 0u32;
    let mut pending = 0u32;
    // A job that has a replacement (keep-alive) counts through it, as in `asked_workers`.
    for j in jobs.jobs.iter().filter(|j| j.replaced_by.is_none()) {
        let Some(v) = views.get(&j.id).filter(|v| v.is_active()) else {
            continue;
        };
        let n = j.workers - j.retired.min(j.workers);
        asked += n;
        if v.state == "PENDING" {
            pending += n;
        }
    }
    let (query_running, queued_queries, waiting_tasks, connected) = match snapshot {
        Some(s) => (
            s.query.is_some(),
            s.queued_queries,
            s.query.as_ref().map_or(0, |q| q.tasks.queued),
            u32::try_from(
                s.live_workers()
                    .filter(|w| w.state == WorkerState::Alive)
                    .count(),
            )
            .unwrap_or(u32::MAX),
        ),
        // Unknown is not idle: say busy with nothing waiting, so nothing happens.
        None => (true, 0, 0, 0),
    };
    Observation {
        at_ms,
        query_running,
        queued_queries,
        waiting_tasks,
        connected,
        asked,
        pending,
        cores_per_worker,
        limit,
    }
}

/// One applied (or failed) decision, for the log and the TUI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    #[serde(flatten)]
    pub decision: Decision,
    /// What the backend did, in words, or why it could not.
    pub outcome: Result<String, String>,
}

impl Applied {
    /// One line: `up 2 → 4: 40 partitions waited 30 s with 2 workers connected`.
    pub fn words(&self) -> String {
        let d = &self.decision;
        let dir = match d.direction {
            Direction::Up => "up",
            Direction::Down => "down",
        };
        match &self.outcome {
            Ok(_) => format!("{dir} {} → {}: {}", d.from, d.to, d.reason),
            Err(e) => format!("{dir} {} → {} failed: {e} ({})", d.from, d.to, d.reason),
        }
    }
}

/// The policy of one cluster, its memory kept in the cluster directory.
pub struct Adapter {
    policy: Policy,
    memory_file: PathBuf,
}

impl Adapter {
    /// The adapter of `dir` with `setting`; the memory of an earlier supervisor is taken up
    /// (a missing or unreadable file is a fresh start).
    pub fn new(dir: &ClusterDir, setting: &Setting) -> Adapter {
        let memory_file = dir.path().join(MEMORY_FILE);
        let mut policy = Policy::new(setting.range, setting.tuning);
        if let Ok(m) = cluster_dir::read_json::<Memory>(&memory_file) {
            policy.memory = m;
        }
        Adapter {
            policy,
            memory_file,
        }
    }

    /// The setting changed (`corral scale --adapt`): same memory, new range.
    pub fn set(&mut self, setting: &Setting) {
        self.policy.range = setting.range;
        self.policy.tuning = setting.tuning;
    }

    pub fn range(&self) -> Range {
        self.policy.range
    }

    /// Feeds one observation to the policy; a decision is applied through `backend` and
    /// returned with its outcome (the caller logs it).
    pub async fn tick(
        &mut self,
        obs: &Observation,
        backend: &dyn Backend,
        cluster: &mut Cluster,
        events: &Events,
    ) -> Option<Applied> {
        let decision = self.policy.observe(obs);
        // Kept every tick: the waiting/idle clocks matter as much as the last decision.
        let _ = cluster_dir::write_json_atomic(&self.memory_file, &self.policy.memory);
        let decision = decision?;
        let to = decision.to;
        let outcome = backend
            .scale(cluster, &|_| to, events)
            .await
            .map_err(|e| e.to_string());
        Some(Applied { decision, outcome })
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod tests_support;
