//! The words corral's pieces share: job ids, walltimes and what a user asks for (`ClusterSpec`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A SLURM job id (`12345`; array and het-job suffixes are not used by corral).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for JobId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `sbatch --parsable` prints `id` or `id;cluster` on multi-cluster sites.
        let id = s.trim().split(';').next().unwrap_or_default();
        id.parse::<u64>()
            .map(JobId)
            .map_err(|_| format!("not a SLURM job id: {s:?}"))
    }
}

/// A wall-clock limit in whole minutes, SLURM's own granularity for `--time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Walltime {
    pub minutes: u64,
}

impl Walltime {
    pub const fn from_days(days: u64) -> Self {
        Self {
            minutes: days * 24 * 60,
        }
    }

    /// The `--time` value: whole days as `D-0` (grabdask wrote `D:0`, which SLURM reads as
    /// D minutes), anything else as `D-HH:MM:00`.
    pub fn to_sbatch(self) -> String {
        let days = self.minutes / (24 * 60);
        let rest = self.minutes % (24 * 60);
        if rest == 0 {
            format!("{days}-0")
        } else {
            format!("{days}-{:02}:{:02}:00", rest / 60, rest % 60)
        }
    }
}

impl fmt::Display for Walltime {
    /// As SLURM prints limits: `1-00:00:00`, `12:00:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.minutes / (24 * 60);
        let h = (self.minutes / 60) % 24;
        let m = self.minutes % 60;
        if days > 0 {
            write!(f, "{days}-{h:02}:{m:02}:00")
        } else {
            write!(f, "{h:02}:{m:02}:00")
        }
    }
}

impl FromStr for Walltime {
    type Err = String;

    /// SLURM's time formats: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
    /// Seconds round up to a whole minute, as SLURM does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "not a time limit: {s:?} (use minutes, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, e.g. 1-0 for one day)"
            )
        };
        let s = s.trim();
        let num = |p: &str| p.parse::<u64>().map_err(|_| bad());
        let (days, clock) = match s.split_once('-') {
            Some((d, rest)) => (Some(num(d)?), rest),
            None => (None, s),
        };
        let parts: Vec<&str> = clock.split(':').collect();
        let secs = match (days, parts.as_slice()) {
            (None, [m]) => num(m)? * 60,
            (None, [m, sec]) => num(m)? * 60 + num(sec)?,
            (None, [h, m, sec]) => num(h)? * 3600 + num(m)? * 60 + num(sec)?,
            (Some(_), [h]) => num(h)? * 3600,
            (Some(_), [h, m]) => num(h)? * 3600 + num(m)? * 60,
            (Some(_), [h, m, sec]) => num(h)? * 3600 + num(m)? * 60 + num(sec)?,
            _ => return Err(bad()),
        };
        let total = days.unwrap_or(0) * 86_400 + secs;
        if total == 0 {
            return Err(format!(
                "time limit {s:?} is zero; ask for at least one minute"
            ));
        }
        Ok(Walltime {
            minutes: total.div_ceil(60),
        })
    }
}

/// What a user asks for: W workers × C cores for a walltime, on a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    pub workers: u32,
    pub cores_per_worker: u32,
    /// Memory per worker in MiB; `None`: the partition's default.
    pub mem_per_worker_mb: Option<u64>,
    pub walltime: Walltime,
    /// `None`: SLURM's default partition.
    pub partition: Option<String>,
    pub account: Option<String>,
    /// What the login-side supervisor does for this cluster while nobody watches (see
    /// [`crate::supervisor`]); nothing by default.
    #[serde(default, skip_serializing_if = "Supervise::is_off")]
    pub supervise: Supervise,
    /// Dask mode: the allocation also runs a Dask scheduler and workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dask: Option<crate::dask::DaskSpec>,
}

/// What a cluster's supervisor (a detached login-side process, [`crate::supervisor`]) does.
/// One struct for every policy so a new one is a field here, not a new spec field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervise {
    /// `--keep-alive`: every job is replaced before its walltime ends (a new job of the
    /// same role and size submitted `replace_lead_secs` ahead); the old one's workers drain
    /// when SLURM signals them, `signal_lead_secs` ahead of the end.
    #[serde(default)]
    pub keep_alive: bool,
    /// Seconds before a job's end at which SLURM signals it (`--signal=B:USR1@N`); `None`:
    /// [`DEFAULT_SIGNAL_LEAD_SECS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_lead_secs: Option<u64>,
    /// Seconds before a job's end at which its replacement is submitted; `None`: twice the
    /// signal lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_lead_secs: Option<u64>,
    /// `--adapt MIN..MAX` (or `corral scale NAME --adapt`): the cluster grows and shrinks with
    /// its work, see [`crate::adapt`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapt: Option<crate::adapt::Setting>,
    /// Mail notifications (`[notify] mail` was set when the cluster started): the
    /// supervisor mails them while nobody watches, see [`crate::notify`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mail: bool,
}

/// SLURM signals a job this long before its walltime ends, unless the spec says otherwise.
pub const DEFAULT_SIGNAL_LEAD_SECS: u64 = 300;

impl Supervise {
    /// Nothing to supervise: no supervisor process is started.
    pub fn is_off(&self) -> bool {
        *self == Supervise::default()
    }

    /// Whether a supervisor process is needed.
    pub fn needs_supervisor(&self) -> bool {
        self.keep_alive || self.adapt.is_some() || self.mail
    }

    pub fn signal_lead_secs(&self) -> u64 {
        self.signal_lead_secs.unwrap_or(DEFAULT_SIGNAL_LEAD_SECS)
    }

    pub fn replace_lead_secs(&self) -> u64 {
        self.replace_lead_secs
            .unwrap_or(2 * self.signal_lead_secs())
            .max(self.signal_lead_secs())
    }
}

impl ClusterSpec {
    pub fn total_cores(&self) -> u64 {
        u64::from(self.workers) * u64::from(self.cores_per_worker)
    }
}

/// Parses a wait bound: `90s`, `5m`, `2h`, or SLURM's elapsed forms (`MM:SS`, `HH:MM:SS`,
/// `D-HH:MM:SS`); a bare number is minutes, as for `--time`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let bad = || format!("not a duration: {s:?} (use e.g. 90s, 5m, 2h or 10:00)");
    let secs = if let Some(n) = t.strip_suffix('s') {
        n.parse::<u64>().map_err(|_| bad())?
    } else if let Some(n) = t.strip_suffix('m') {
        n.parse::<u64>().map_err(|_| bad())? * 60
    } else if let Some(n) = t.strip_suffix('h') {
        n.parse::<u64>().map_err(|_| bad())? * 3600
    } else if let Ok(minutes) = t.parse::<u64>() {
        minutes * 60
    } else {
        crate::slurm::parse::parse_elapsed_secs(t).ok_or_else(bad)?
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Parses a SLURM memory size (`4000`, `4000M`, `4G`, `1T`) into MiB.
pub fn parse_mem_mb(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || format!("not a memory size: {s:?} (use e.g. 4000M or 4G)");
    let (digits, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => {
                    return s[..i]
                        .parse::<u64>()
                        .map(|k| k.div_ceil(1024))
                        .map_err(|_| bad());
                }
                'M' => 1,
                'G' => 1024,
                'T' => 1024 * 1024,
                _ => return Err(bad()),
            };
            (&s[..i], mult)
        }
        _ => (s, 1),
    };
    digits.parse::<u64>().map(|n| n * mult).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_d_dash_0_not_minutes() {
        assert_eq!(Walltime::from_days(1).to_sbatch(), "1-0");
        assert_eq!(Walltime::from_days(3).to_string(), "3-00:00:00");
        assert_eq!("1-0".parse::<Walltime>(), Ok(Walltime::from_days(1)));
    }

    #[test]
    fn slurm_time_formats_parse() {
        let m = |s: &str| s.parse::<Walltime>().map(|w| w.minutes);
        assert_eq!(m("30"), Ok(30));
        assert_eq!(m("12:00:00"), Ok(720));
        assert_eq!(m("1-12"), Ok(36 * 60));
        assert_eq!(m("2-01:30"), Ok(2 * 1440 + 90));
        assert_eq!(m("0:30"), Ok(1));
        assert!(m("0").is_err());
        assert!(m("abc").is_err());
        assert!(m("1-2:3:4:5").is_err());
        assert_eq!(Walltime { minutes: 720 }.to_sbatch(), "0-12:00:00");
    }

    #[test]
    fn wait_bounds() {
        let d = |s: &str| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(d("8s"), Ok(8));
        assert_eq!(d("5m"), Ok(300));
        assert_eq!(d("10:00"), Ok(600));
        assert_eq!(d("2"), Ok(120));
        assert!(d("soon").is_err());
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem_mb("4G"), Ok(4096));
        assert_eq!(parse_mem_mb("4000"), Ok(4000));
        assert_eq!(parse_mem_mb("512m"), Ok(512));
        assert!(parse_mem_mb("lots").is_err());
    }

    #[test]
    fn job_ids_from_parsable_output() {
        assert_eq!("42\n".parse::<JobId>(), Ok(JobId(42)));
        assert_eq!("42;cluster2".parse::<JobId>(), Ok(JobId(42)));
        assert!("Submitted".parse::<JobId>().is_err());
    }
}
