//! The adaptive-scaling policy as a pure function of what is observed and when: no clock, no
//! SLURM, no network, so every rule is tested with simulated time.
//!
//! The rules, and why (dask-jobqueue's adaptive mode is the cautionary tale):
//! - **Capacity is connected workers only.** Workers of jobs still pending in SLURM's queue are
//!   *in flight*: they keep the policy from asking twice for the same need, but they are never
//!   counted as capacity, and an idle cluster sheds them first (the newest jobs go first).
//! - **Up** only after work has waited ([`Tuning::up_after`]) without a break, by at most
//!   doubling the connected workers per decision, towards what the waiting partitions need.
//! - **Down** only after the cluster has been idle (no query running or queued) for
//!   [`Tuning::idle_after`] without a break, straight to MIN.
//! - **Never two decisions closer than [`Tuning::min_between`]**, and never up while idle nor
//!   down while busy: the two hysteresis bands cannot overlap, so it cannot flap.
//! - Always within MIN..MAX and the partition's limit (what validation computed).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `--adapt MIN..MAX`: the worker counts adaptive scaling stays within.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub min: u32,
    pub max: u32,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.min, self.max)
    }
}

/// `MIN..MAX` that cannot be used, said so the user knows what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--adapt {given:?}: {why}; write MIN..MAX with 1 ≤ MIN ≤ MAX, e.g. --adapt 1..8 (or --adapt off)"
)]
pub struct RangeError {
    pub given: String,
    pub why: String,
}

impl FromStr for Range {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Range, RangeError> {
        let err = |why: &str| RangeError {
            given: s.to_string(),
            why: why.to_string(),
        };
        let (a, b) = s
            .trim()
            .split_once("..")
            .ok_or_else(|| err("no `..` between the two counts"))?;
        let num = |t: &str, which: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| err(&format!("{which} {:?} is not a whole number", t.trim())))
        };
        let (min, max) = (num(a, "MIN")?, num(b, "MAX")?);
        if min == 0 {
            return Err(err(
                "MIN must be at least 1 (a cluster's coordinator runs with its workers)",
            ));
        }
        if min > max {
            return Err(err("MIN is larger than MAX"));
        }
        Ok(Range { min, max })
    }
}

/// How patient the policy is. The defaults suit interactive work on a shared cluster; tests
/// shorten them (`CORRAL_ADAPT_*`, see `adapt::tuning_from_env`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuning {
    /// Work must have waited this long, without a break, before the cluster grows.
    #[serde(with = "secs")]
    pub up_after: Duration,
    /// The cluster must have been idle this long, without a break, before it shrinks.
    #[serde(with = "secs")]
    pub idle_after: Duration,
    /// No two decisions closer than this.
    #[serde(with = "secs")]
    pub min_between: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            up_after: Duration::from_secs(30),
            idle_after: Duration::from_secs(10 * 60),
            min_between: Duration::from_secs(2 * 60),
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

/// One look at the cluster, as the policy needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// Milliseconds on any clock that does not go backwards (the Unix clock in production,
    /// simulated in tests).
    pub at_ms: u64,
    /// A query is being computed.
    pub query_running: bool,
    /// Queries waiting behind it.
    pub queued_queries: u32,
    /// Partitions of the running query not handed to any worker yet.
    pub waiting_tasks: u64,
    /// Workers connected to the coordinator (not draining): the capacity.
    pub connected: u32,
    /// Workers of the cluster's active SLURM jobs, running or pending: what is asked for now.
    pub asked: u32,
    /// Of `asked`, those in jobs SLURM has not started: in flight, never capacity.
    pub pending: u32,
    /// Cores of one worker (how many partitions it computes at once).
    pub cores_per_worker: u32,
    /// The most workers the partition can hold at once (validation's figure), if known.
    pub limit: Option<u32>,
}

impl Observation {
    /// Work is waiting or being done.
    pub fn busy(&self) -> bool {
        self.query_running || self.queued_queries > 0
    }

    /// Workers the waiting work could use on top of those connected.
    fn demand(&self) -> u32 {
        let per = u64::from(self.cores_per_worker.max(1));
        let for_tasks = self.waiting_tasks.div_ceil(per);
        let for_queue = u64::from(self.queued_queries > 0);
        u32::try_from(for_tasks.max(for_queue)).unwrap_or(u32::MAX)
    }
}

/// Grow or shrink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

/// What the policy decided, and why, in words a user reads in the log and the TUI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub at_ms: u64,
    pub direction: Direction,
    /// Workers asked for before (running and pending).
    pub from: u32,
    /// Workers to ask for.
    pub to: u32,
    /// Connected workers at the time (the capacity).
    pub connected: u32,
    pub reason: String,
}

/// The policy's memory between observations. Serializable so a restarted supervisor keeps
/// the last decision's time (and does not decide again at once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    pub last_decision_ms: Option<u64>,
    /// Since when work has waited without a break.
    pub waiting_since_ms: Option<u64>,
    /// Since when the cluster has been idle without a break.
    pub idle_since_ms: Option<u64>,
}

/// The adaptive policy of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub range: Range,
    pub tuning: Tuning,
    pub memory: Memory,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn secs_words(d_ms: u64) -> String {
    format!("{} s", d_ms / 1000)
}

impl Policy {
    pub fn new(range: Range, tuning: Tuning) -> Policy {
        Policy {
            range,
            tuning,
            memory: Memory::default(),
        }
    }

    /// The most workers it may ask for: MAX, or the partition's limit when lower (never
    /// below MIN: a limit under MIN is refused before adapting starts).
    pub fn ceiling(&self, limit: Option<u32>) -> u32 {
        limit.map_or(self.range.max, |l| {
            self.range.max.min(l).max(self.range.min)
        })
    }

    /// Looks at `obs` and decides, or not. Call it at any rate: the rules are in time, not
    /// in calls.
    pub fn observe(&mut self, obs: &Observation) -> Option<Decision> {
        let now = obs.at_ms;
        let ceiling = self.ceiling(obs.limit);
        let waiting = obs.busy() && (obs.waiting_tasks > 0 || obs.queued_queries > 0);
        let tuning = self.tuning;
        let range = self.range;
        let m = &mut self.memory;
        m.waiting_since_ms = if waiting {
            Some(m.waiting_since_ms.unwrap_or(now))
        } else {
            None
        };
        m.idle_since_ms = if obs.busy() {
            None
        } else {
            Some(m.idle_since_ms.unwrap_or(now))
        };
        if m.last_decision_ms
            .is_some_and(|last| now < last.saturating_add(ms(tuning.min_between)))
        {
            return None;
        }
        let decide = |direction, to: u32, reason: String| Decision {
            at_ms: now,
            direction,
            from: obs.asked,
            to,
            connected: obs.connected,
            reason,
        };
        let decision = if obs.asked < range.min {
            Some(decide(
                Direction::Up,
                range.min,
                format!("{} asked for, below the minimum {}", obs.asked, range.min),
            ))
        } else if obs.asked > ceiling {
            let why = if ceiling < range.max {
                format!("the partition holds at most {ceiling}")
            } else {
                format!("the maximum is {ceiling}")
            };
            Some(decide(
                Direction::Down,
                ceiling,
                format!("{} asked for and {why}", obs.asked),
            ))
        } else if let Some(since) = m.waiting_since_ms
            && now.saturating_sub(since) >= ms(tuning.up_after)
        {
            let want = obs
                .connected
                .saturating_add(obs.demand().clamp(1, obs.connected.max(1)))
                .min(ceiling);
            (want > obs.asked).then(|| {
                let what = if obs.waiting_tasks > 0 {
                    crate::text::count(obs.waiting_tasks, "partition")
                } else {
                    crate::text::count(obs.queued_queries, "queued query")
                };
                let pending = if obs.pending > 0 {
                    format!(
                        " ({} pending in SLURM's queue, not counted)",
                        crate::text::count(obs.pending, "worker")
                    )
                } else {
                    String::new()
                };
                decide(
                    Direction::Up,
                    want,
                    format!(
                        "{what} waited {} with {} connected{pending}",
                        secs_words(now - since),
                        crate::text::count(obs.connected, "worker")
                    ),
                )
            })
        } else if let Some(since) = m.idle_since_ms
            && now.saturating_sub(since) >= ms(tuning.idle_after)
            && obs.asked > range.min
        {
            Some(decide(
                Direction::Down,
                range.min,
                format!(
                    "idle for {} (no query running or queued)",
                    secs_words(now - since)
                ),
            ))
        } else {
            None
        };
        if let Some(d) = &decision {
            m.last_decision_ms = Some(d.at_ms);
            // A decision starts the patience over: the next one needs fresh evidence.
            m.waiting_since_ms = m.waiting_since_ms.map(|_| now);
            m.idle_since_ms = m.idle_since_ms.map(|_| now);
        }
        decision
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
