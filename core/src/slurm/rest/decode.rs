//! slurmrestd's documents → corral's SLURM types, tolerantly: unknown fields are ignored,
//! absent ones take their defaults, and every number or state is read in whichever shape
//! either family of API versions uses (see [`super::versions`]).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::versions::Family;
use crate::model::{JobId, Walltime};
use crate::slurm::parse::{JobDetail, Node, Partition, QueuedJob};

/// A count, limit or time in any shape slurmrestd writes it: an integer (22.05: `-1` or
/// SLURM's NO_VAL/INFINITE sentinels for "none"), `null`, a numeric string, or data_parser's
/// `{"set": bool, "infinite": bool, "number": n}`. `None`: unset or unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Num(pub Option<u64>);

/// SLURM's "no value" and "infinite" for 32- and 64-bit fields.
const SENTINELS: [u64; 4] = [0xffff_fffe, 0xffff_ffff, u64::MAX - 1, u64::MAX];

impl Num {
    fn from_value(v: &serde_json::Value) -> Num {
        use serde_json::Value;
        let n = match v {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            Value::Object(o) => {
                let flag = |k: &str| o.get(k).and_then(Value::as_bool);
                if flag("infinite") == Some(true) || flag("set") == Some(false) {
                    None
                } else {
                    o.get("number").and_then(|n| Num::from_value(n).0)
                }
            }
            _ => None,
        };
        Num(n.filter(|n| !SENTINELS.contains(n)))
    }

    pub fn or0(self) -> u64 {
        self.0.unwrap_or(0)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        Ok(Num::from_value(&serde_json::Value::deserialize(d)?))
    }
}

/// Words in any shape: one string (22.05's `"job_state": "PENDING"`), a list of strings
/// (data_parser's `["PENDING"]`), a comma-separated string, or `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Words(pub Vec<String>);

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Words, D::Error> {
        use serde_json::Value;
        let words = match Value::deserialize(d)? {
            Value::String(s) => s
                .split(',')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Words(words))
    }
}

impl Words {
    fn has(&self, word: &str) -> bool {
        self.0.iter().any(|w| w.eq_ignore_ascii_case(word))
    }
}

/// A string that may be `null` or absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        use serde_json::Value;
        Ok(Text(match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        }))
    }
}

/// One entry of a response's `errors`: 22.05 names the number `error_number`, `error_code`
/// or `errno` depending on the call.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ApiError {
    pub error: Text,
    pub description: Text,
    pub source: Text,
    #[serde(alias = "error_code", alias = "errno")]
    pub error_number: Option<i64>,
}

impl ApiError {
    /// `error: description` as one line.
    pub fn words(&self) -> String {
        match (self.error.0.trim(), self.description.0.trim()) {
            (e, "") => e.to_string(),
            ("", d) => d.to_string(),
            (e, d) if d.contains(e) => d.to_string(),
            (e, d) => format!("{e}: {d}"),
        }
    }
}

/// The part every response has.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Envelope {
    pub errors: Vec<ApiError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JobsDoc {
    jobs: Vec<Job>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Job {
    job_id: Num,
    name: Text,
    job_state: Words,
    state_reason: Text,
    cpus: Num,
    tasks: Num,
    cpus_per_task: Num,
    node_count: Num,
    nodes: Text,
    batch_host: Text,
    partition: Text,
    /// Minutes.
    time_limit: Num,
    start_time: Num,
    end_time: Num,
    standard_output: Text,
    standard_error: Text,
    exit_code: serde_json::Value,
    user_id: Num,
    user_name: Text,
}

/// Whose jobs `my_jobs` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The local user (over the unix socket).
    Uid(u32),
    /// The token's user (over HTTP).
    Name(String),
}

impl Job {
    /// squeue's single state: the base state, unless a flag squeue shows instead is set
    /// (data_parser lists `["RUNNING", "COMPLETING"]`).
    fn state(&self) -> String {
        const SHOWN_FLAGS: [&str; 3] = ["COMPLETING", "CONFIGURING", "RESIZING"];
        let words = &self.job_state.0;
        SHOWN_FLAGS
            .iter()
            .find(|f| words.iter().skip(1).any(|w| w.eq_ignore_ascii_case(f)))
            .map(|f| f.to_string())
            .or_else(|| words.first().map(|w| w.to_ascii_uppercase()))
            .unwrap_or_default()
    }

    fn owned_by(&self, owner: &Owner) -> bool {
        match owner {
            Owner::Uid(uid) => self.user_id.0 == Some(u64::from(*uid)),
            Owner::Name(name) => &self.user_name.0 == name,
        }
    }

    /// Seconds it has run (to its end, once ended).
    fn run_seconds(&self, now: u64) -> u64 {
        match self.start_time.0.filter(|s| *s > 0 && *s <= now) {
            None => 0,
            Some(start) => {
                let end = self.end_time.0.filter(|e| *e >= start && *e <= now);
                match self.state().as_str() {
                    "PENDING" => 0,
                    "RUNNING" | "COMPLETING" | "CONFIGURING" | "SUSPENDED" | "RESIZING" => {
                        now - start
                    }
                    _ => end.unwrap_or(now) - start,
                }
            }
        }
    }

    fn time_limit(&self) -> Option<Walltime> {
        self.time_limit.0.map(|minutes| Walltime { minutes })
    }

    fn reason(&self) -> String {
        match self.state_reason.0.as_str() {
            "" => "None".into(),
            r => r.into(),
        }
    }

    fn queued(&self, now: u64) -> Option<QueuedJob> {
        let elapsed = self.run_seconds(now);
        Some(QueuedJob {
            id: JobId(self.job_id.0?),
            state: self.state(),
            reason: self.reason(),
            elapsed_secs: elapsed,
            left_secs: self.time_limit.0.map(|m| (m * 60).saturating_sub(elapsed)),
            time_limit: self.time_limit(),
            nodes: self.node_count.or0(),
            cpus: self.cpus.or0(),
            partition: self.partition.0.clone(),
            node_list: self.nodes.0.clone(),
            name: self.name.0.clone(),
        })
    }

    fn detail(&self, now: u64) -> Option<JobDetail> {
        Some(JobDetail {
            id: JobId(self.job_id.0?),
            name: self.name.0.clone(),
            state: self.state(),
            reason: self.reason(),
            num_cpus: self.cpus.or0(),
            num_tasks: self.tasks.or0(),
            // 16-bit "no value" (0xfffe) when the job did not ask.
            cpus_per_task: self.cpus_per_task.0.filter(|c| *c < 0xfffe).unwrap_or(1),
            node_list: self.nodes.0.clone(),
            batch_host: self.batch_host.0.clone(),
            partition: self.partition.0.clone(),
            time_limit: self.time_limit(),
            run_seconds: self.run_seconds(now),
            std_out: self.standard_output.0.clone(),
            std_err: self.standard_error.0.clone(),
            exit_code: exit_code(&self.exit_code),
            start_time: timestamp(self.start_time),
            end_time: timestamp(self.end_time),
        })
    }
}

/// `rc:signal` as scontrol prints it.
fn exit_code(v: &serde_json::Value) -> String {
    if let Some(n) = Num::from_value(v).0.filter(|_| v.is_number()) {
        // 22.05 gives the wait status.
        return format!("{}:{}", (n >> 8) & 0xff, n & 0x7f);
    }
    let rc = v
        .get("return_code")
        .map(Num::from_value)
        .unwrap_or_default();
    let sig = v
        .get("signal")
        .and_then(|s| s.get("id"))
        .map(Num::from_value)
        .unwrap_or_default();
    format!("{}:{}", rc.or0(), sig.or0())
}

/// `2026-11-25T23:09:07` (UTC), or `Unknown` as scontrol says for a time not set.
fn timestamp(t: Num) -> String {
    let Some(secs) = t.0.filter(|s| *s > 0) else {
        return "Unknown".into();
    };
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = crate::aggregate::expr::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn doc<T: for<'de> Deserialize<'de> + Default>(v: &serde_json::Value) -> Result<T, String> {
    T::deserialize(v).map_err(|e| e.to_string())
}

/// States squeue does not list by default (the job is over; `GET …/job/{id}` still tells).
const FINISHED: [&str; 9] = [
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
];

/// `GET …/jobs`: the jobs of `owner` that squeue would list (slurmrestd also returns those
/// that ended within MinJobAge).
pub fn my_jobs(v: &serde_json::Value, owner: &Owner) -> Result<Vec<QueuedJob>, String> {
    my_jobs_at(v, owner, now())
}

pub fn my_jobs_at(
    v: &serde_json::Value,
    owner: &Owner,
    now: u64,
) -> Result<Vec<QueuedJob>, String> {
    let d: JobsDoc = doc(v)?;
    Ok(d.jobs
        .iter()
        .filter(|j| j.owned_by(owner))
        .filter(|j| !FINISHED.contains(&j.state().as_str()))
        .filter_map(|j| j.queued(now))
        .collect())
}

/// `GET …/job/{id}`: that job, when the document has it.
pub fn job(v: &serde_json::Value, id: JobId) -> Result<Option<JobDetail>, String> {
    job_at(v, id, now())
}

pub fn job_at(v: &serde_json::Value, id: JobId, now: u64) -> Result<Option<JobDetail>, String> {
    let d: JobsDoc = doc(v)?;
    Ok(d.jobs
        .iter()
        .filter(|j| j.job_id.0 == Some(id.0))
        .find_map(|j| j.detail(now)))
}

/// `POST …/job/submit`: the new job's id (v0.0.40 also nests it in `result`).
pub fn submitted(v: &serde_json::Value) -> Option<JobId> {
    let id = |v: &serde_json::Value| Num::from_value(v.get("job_id")?).0.filter(|i| *i > 0);
    id(v).or_else(|| v.get("result").and_then(id)).map(JobId)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NodesDoc {
    nodes: Vec<RestNode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RestNode {
    name: Text,
    cpus: Num,
    effective_cpus: Num,
    alloc_cpus: Num,
    real_memory: Num,
    alloc_memory: Num,
    state: Words,
    state_flags: Words,
    partitions: Words,
}

/// `GET …/nodes`.
pub fn nodes(v: &serde_json::Value) -> Result<Vec<Node>, String> {
    let d: NodesDoc = doc(v)?;
    Ok(d.nodes
        .into_iter()
        .filter(|n| !n.name.0.is_empty())
        .map(|n| {
            // scontrol's spelling: `IDLE+DRAIN`.
            let state = n
                .state
                .0
                .iter()
                .chain(n.state_flags.0.iter())
                .map(|w| w.to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join("+");
            Node {
                name: n.name.0,
                cpus: n.effective_cpus.0.unwrap_or(n.cpus.or0()),
                alloc_cpus: n.alloc_cpus.or0(),
                real_memory_mb: n.real_memory.or0(),
                alloc_memory_mb: n.alloc_memory.or0(),
                state,
                partitions: n.partitions.0,
            }
        })
        .collect())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PartitionsDoc<P> {
    partitions: Vec<P>,
}

/// A partition as v0.0.36–v0.0.38 describe it (flat; v0.0.36 has no state).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PluginPartition {
    name: Text,
    flags: Words,
    state: Text,
    max_time_limit: Num,
    maximum_nodes_per_job: Num,
    maximum_cpus_per_node: Num,
    default_memory_per_cpu: Num,
    default_memory_per_node: Num,
    maximum_memory_per_node: Num,
    nodes: Text,
    total_cpus: Num,
    total_nodes: Num,
}

/// A partition as data_parser describes it (v0.0.39+: limits nested by kind).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ParsedPartition {
    name: Text,
    /// Absent before v0.0.45; read when a server sends it.
    flags: Words,
    partition: PartitionState,
    maximums: Maximums,
    defaults: Defaults,
    nodes: PartitionNodes,
    cpus: PartitionCpus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PartitionState {
    state: Words,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Maximums {
    time: Num,
    nodes: Num,
    cpus_per_node: Num,
    partition_memory_per_node: Num,
    memory_per_cpu: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Defaults {
    partition_memory_per_cpu: Num,
    partition_memory_per_node: Num,
    memory_per_cpu: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PartitionNodes {
    configured: Text,
    total: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PartitionCpus {
    total: Num,
}

/// `GET …/partitions`.
pub fn partitions(v: &serde_json::Value, family: Family) -> Result<Vec<Partition>, String> {
    let minutes = |n: Num| n.0.map(|minutes| Walltime { minutes });
    match family {
        Family::Plugin => {
            let d: PartitionsDoc<PluginPartition> = doc(v)?;
            Ok(d.partitions
                .into_iter()
                .map(|p| Partition {
                    name: p.name.0,
                    is_default: p.flags.has("default"),
                    // v0.0.36 does not say; slurmctld refuses a submit to a down partition.
                    state: match p.state.0.to_ascii_uppercase() {
                        s if s.is_empty() => "UP".into(),
                        s => s,
                    },
                    max_time: minutes(p.max_time_limit),
                    max_nodes: p.maximum_nodes_per_job.0,
                    max_cpus_per_node: p.maximum_cpus_per_node.0,
                    def_mem_per_cpu_mb: p.default_memory_per_cpu.0,
                    def_mem_per_node_mb: p.default_memory_per_node.0,
                    max_mem_per_node_mb: p.maximum_memory_per_node.0,
                    nodes: p.nodes.0,
                    total_cpus: p.total_cpus.or0(),
                    total_nodes: p.total_nodes.or0(),
                })
                .collect())
        }
        Family::DataParser => {
            let d: PartitionsDoc<ParsedPartition> = doc(v)?;
            Ok(d.partitions
                .into_iter()
                .map(|p| Partition {
                    name: p.name.0,
                    is_default: p.flags.has("default"),
                    state: p
                        .partition
                        .state
                        .0
                        .first()
                        .map(|s| s.to_ascii_uppercase())
                        .unwrap_or_else(|| "UP".into()),
                    max_time: minutes(p.maximums.time),
                    max_nodes: p.maximums.nodes.0,
                    max_cpus_per_node: p.maximums.cpus_per_node.0,
                    def_mem_per_cpu_mb: p.defaults.partition_memory_per_cpu.0.or(p
                        .defaults
                        .memory_per_cpu
                        .0
                        .filter(|m| *m > 0 && *m < 1 << 62)),
                    def_mem_per_node_mb: p.defaults.partition_memory_per_node.0,
                    max_mem_per_node_mb: p.maximums.partition_memory_per_node.0,
                    nodes: p.nodes.configured.0,
                    total_cpus: p.cpus.total.or0(),
                    total_nodes: p.nodes.total.or0(),
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests;
