//! Parsers of SLURM 22.05's text output: `scontrol show … -o` lines, our fixed `squeue -o`
//! format, and `sbatch --test-only`'s estimate. Text with explicit formats is the stable
//! interface; 22.05's `scontrol` has no `--json` at all.

use std::collections::HashMap;

use crate::model::{JobId, Walltime};

/// One `scontrol show <entity> -o` line as key → value.
///
/// Values may contain spaces (`OS=Linux 6.1 #1 SMP …`), so a token is a new key only when it
/// looks like `Key=`; anything else continues the previous value.
pub fn key_values(line: &str) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut last: Option<String> = None;
    for token in line.split(' ').filter(|t| !t.is_empty()) {
        match token.split_once('=') {
            Some((k, v)) if is_key(k) => {
                map.insert(k.to_string(), v.to_string());
                last = Some(k.to_string());
            }
            _ => {
                if let Some(value) = last.as_ref().and_then(|k| map.get_mut(k)) {
                    value.push(' ');
                    value.push_str(token);
                }
            }
        }
    }
    map
}

fn is_key(k: &str) -> bool {
    k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '/' | '.'))
}

/// A limit that SLURM prints as a number or as `UNLIMITED`/`INFINITE`/`NONE`/`N/A`.
pub fn limit_u64(v: Option<&String>) -> Option<u64> {
    v.and_then(|s| s.parse::<u64>().ok())
}

/// A time limit as SLURM prints it; `None` for UNLIMITED/INFINITE/NONE/N/A.
pub fn limit_time(v: Option<&String>) -> Option<Walltime> {
    let s = v?;
    match s.as_str() {
        "UNLIMITED" | "INFINITE" | "NONE" | "N/A" | "Partition_Limit" => None,
        _ => s.parse().ok(),
    }
}

/// A partition, from `scontrol show partition -o`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Partition {
    pub name: String,
    pub is_default: bool,
    /// `UP`, `DOWN`, `DRAIN`, `INACTIVE`.
    pub state: String,
    pub max_time: Option<Walltime>,
    pub max_nodes: Option<u64>,
    pub max_cpus_per_node: Option<u64>,
    pub def_mem_per_cpu_mb: Option<u64>,
    pub def_mem_per_node_mb: Option<u64>,
    pub max_mem_per_node_mb: Option<u64>,
    /// Hostlist expression, e.g. `n[1-4]`.
    pub nodes: String,
    pub total_cpus: u64,
    pub total_nodes: u64,
}

impl Partition {
    pub fn from_line(line: &str) -> Option<Partition> {
        let kv = key_values(line);
        let name = kv.get("PartitionName")?.clone();
        Some(Partition {
            name,
            is_default: kv.get("Default").is_some_and(|v| v == "YES"),
            state: kv.get("State").cloned().unwrap_or_default(),
            max_time: limit_time(kv.get("MaxTime")),
            max_nodes: limit_u64(kv.get("MaxNodes")),
            max_cpus_per_node: limit_u64(kv.get("MaxCPUsPerNode")),
            def_mem_per_cpu_mb: limit_u64(kv.get("DefMemPerCPU")),
            def_mem_per_node_mb: limit_u64(kv.get("DefMemPerNode")),
            max_mem_per_node_mb: limit_u64(kv.get("MaxMemPerNode")),
            nodes: kv.get("Nodes").cloned().unwrap_or_default(),
            total_cpus: limit_u64(kv.get("TotalCPUs")).unwrap_or(0),
            total_nodes: limit_u64(kv.get("TotalNodes")).unwrap_or(0),
        })
    }
}

/// A node, from `scontrol show node -o`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    pub name: String,
    pub cpus: u64,
    pub alloc_cpus: u64,
    pub real_memory_mb: u64,
    pub alloc_memory_mb: u64,
    /// `IDLE`, `MIXED`, `ALLOCATED`, `DOWN*`, `IDLE+DRAIN`, …
    pub state: String,
    pub partitions: Vec<String>,
}

impl Node {
    pub fn from_line(line: &str) -> Option<Node> {
        let kv = key_values(line);
        let num = |k: &str| limit_u64(kv.get(k)).unwrap_or(0);
        Some(Node {
            name: kv.get("NodeName")?.clone(),
            // CPUEfctv excludes specialised cores; older output lacks it.
            cpus: limit_u64(kv.get("CPUEfctv")).unwrap_or_else(|| num("CPUTot")),
            alloc_cpus: num("CPUAlloc"),
            real_memory_mb: num("RealMemory"),
            alloc_memory_mb: num("AllocMem"),
            state: kv.get("State").cloned().unwrap_or_default(),
            partitions: kv
                .get("Partitions")
                .map(|p| {
                    p.split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Whether the scheduler can place work here at all (not down, drained or failing).
    pub fn usable(&self) -> bool {
        let s = self.state.to_ascii_uppercase();
        !(s.contains("DOWN")
            || s.contains("DRAIN")
            || s.contains("FAIL")
            || s.contains("NOT_RESPONDING")
            || s.ends_with('*')
            || s.contains("INVAL"))
    }
}

/// A job as `scontrol show job -o` describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobDetail {
    pub id: JobId,
    pub name: String,
    pub state: String,
    pub reason: String,
    pub num_cpus: u64,
    pub num_tasks: u64,
    pub cpus_per_task: u64,
    pub node_list: String,
    pub batch_host: String,
    pub partition: String,
    pub time_limit: Option<Walltime>,
    /// `RunTime` in seconds.
    pub run_seconds: u64,
    pub std_out: String,
    pub std_err: String,
    pub exit_code: String,
    pub start_time: String,
    pub end_time: String,
}

impl JobDetail {
    pub fn from_line(line: &str) -> Option<JobDetail> {
        let kv = key_values(line);
        let get = |k: &str| kv.get(k).cloned().unwrap_or_default();
        let num = |k: &str| limit_u64(kv.get(k)).unwrap_or(0);
        Some(JobDetail {
            id: kv.get("JobId")?.parse().ok()?,
            name: get("JobName"),
            state: get("JobState"),
            reason: get("Reason"),
            num_cpus: num("NumCPUs"),
            num_tasks: num("NumTasks"),
            cpus_per_task: num("CPUs/Task"),
            node_list: get("NodeList"),
            batch_host: get("BatchHost"),
            partition: get("Partition"),
            time_limit: limit_time(kv.get("TimeLimit")),
            run_seconds: parse_elapsed_secs(&get("RunTime")).unwrap_or(0),
            std_out: get("StdOut"),
            std_err: get("StdErr"),
            exit_code: get("ExitCode"),
            start_time: get("StartTime"),
            end_time: get("EndTime"),
        })
    }
}

/// Whether SLURM's host list `list` (`n1,n[3-5],gpu[01-02]`) names `host`.
pub fn hostlist_contains(list: &str, host: &str) -> bool {
    // Split at commas outside brackets.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in list.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts.into_iter().any(|p| match p.split_once('[') {
        None => p == host,
        Some((prefix, rest)) => {
            let Some(ranges) = rest.strip_suffix(']') else {
                return false;
            };
            let Some(num) = host.strip_prefix(prefix) else {
                return false;
            };
            let Ok(n) = num.parse::<u64>() else {
                return false;
            };
            ranges.split(',').any(|r| match r.split_once('-') {
                // Zero-padded ranges (`01-04`) name hosts with that many digits.
                Some((a, b)) => {
                    a.len() == num.len().min(a.len())
                        && (a.len() == b.len() || !a.starts_with('0'))
                        && (!a.starts_with('0') || num.len() == a.len())
                        && a.parse::<u64>().is_ok_and(|a| a <= n)
                        && b.parse::<u64>().is_ok_and(|b| n <= b)
                }
                None => r == num,
            })
        }
    })
}

/// `[D-]HH:MM:SS` / `MM:SS` elapsed times (squeue `%M`, `%L`, scontrol `RunTime`) in seconds.
pub fn parse_elapsed_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let (days, clock) = match s.split_once('-') {
        Some((d, c)) => (d.parse::<u64>().ok()?, c),
        None => (0, s),
    };
    let mut secs = 0u64;
    for part in clock.split(':') {
        secs = secs * 60 + part.parse::<u64>().ok()?;
    }
    Some(days * 86_400 + secs)
}

/// The `squeue -o` format corral uses: fixed fields, `|`-separated, name last (it is the only
/// free-text field, so a `|` inside a job name cannot shift the columns).
pub const SQUEUE_FORMAT: &str = "%i|%T|%r|%M|%L|%l|%D|%C|%P|%N|%j";

/// One row of `squeue -h -o SQUEUE_FORMAT`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueuedJob {
    pub id: JobId,
    pub state: String,
    pub reason: String,
    pub elapsed_secs: u64,
    /// `None` when SLURM prints `INVALID`/`NOT_SET`/`UNLIMITED`.
    pub left_secs: Option<u64>,
    pub time_limit: Option<Walltime>,
    pub nodes: u64,
    pub cpus: u64,
    pub partition: String,
    pub node_list: String,
    pub name: String,
}

impl QueuedJob {
    pub fn from_line(line: &str) -> Option<QueuedJob> {
        let f: Vec<&str> = line.splitn(11, '|').collect();
        let [
            id,
            state,
            reason,
            elapsed,
            left,
            limit,
            nodes,
            cpus,
            partition,
            node_list,
            name,
        ] = f.as_slice()
        else {
            return None;
        };
        Some(QueuedJob {
            id: id.parse().ok()?,
            state: state.to_string(),
            reason: reason.to_string(),
            elapsed_secs: parse_elapsed_secs(elapsed).unwrap_or(0),
            left_secs: parse_elapsed_secs(left),
            time_limit: limit_time(Some(&limit.to_string())),
            nodes: nodes.parse().unwrap_or(0),
            cpus: cpus.parse().unwrap_or(0),
            partition: partition.to_string(),
            node_list: node_list.to_string(),
            name: name.to_string(),
        })
    }
}

/// The estimate of `sbatch --test-only` (printed on stderr):
/// `sbatch: Job 3 to start at 2026-11-25T23:09:07 using 32 processors on nodes n[1-2] in partition debug`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StartEstimate {
    pub start: String,
    pub processors: u64,
    pub nodes: String,
    pub partition: String,
}

impl StartEstimate {
    pub fn from_output(text: &str) -> Option<StartEstimate> {
        let line = text.lines().find(|l| l.contains(" to start at "))?;
        let after = |marker: &str| {
            line.split_once(marker)
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .map(str::to_string)
        };
        Some(StartEstimate {
            start: after(" to start at ")?,
            processors: after(" using ")?.parse().ok()?,
            nodes: after(" on nodes ").unwrap_or_default(),
            partition: after(" in partition ").unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real 22.05.8 output, captured on the test bed (SLURM 22.05.8 on Debian 12).
    const JOB: &str = "JobId=1 JobName=grabtest UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 Nice=0 Account=(null) QOS=(null) JobState=RUNNING Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:02 TimeLimit=1-00:00:00 TimeMin=N/A SubmitTime=2026-11-25T23:09:06 EligibleTime=2026-11-25T23:09:06 AccrueTime=2026-11-25T23:09:06 StartTime=2026-11-25T23:09:07 EndTime=2026-11-26T23:09:07 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-25T23:09:07 Scheduler=Backfill Partition=debug AllocNode:Sid=localhost:2140 ReqNodeList=(null) ExcNodeList=(null) NodeList=n[1-2] BatchHost=n1 NumNodes=2 NumCPUs=32 NumTasks=16 CPUs/Task=2 ReqB:S:C:T=0:0:*:* TRES=cpu=32,node=2,billing=32 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=2 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=(null) WorkDir=/tmp StdErr=/tmp/1.out StdIn=/dev/null StdOut=/tmp/1.out Power= ";
    const NODE: &str = "NodeName=n1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=16 CPUEfctv=16 CPUTot=16 CPULoad=1.59 AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=127.0.0.1 NodeHostName=vm Port=16828 Version=22.05.8 OS=Linux 6.18.44-fc-v769 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=4000 AllocMem=0 FreeMem=19571 Sockets=16 Boards=1 State=ALLOCATED ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=debug,small  BootTime=2026-11-25T22:55:09 SlurmdStartTime=2026-11-25T23:09:05 LastBusyTime=2026-11-25T23:09:06 CfgTRES=cpu=16,mem=4000M,billing=16 AllocTRES=cpu=16 CapWatts=n/a CurrentWatts=0 AveWatts=0 ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s";

    #[test]
    fn job_line() {
        let j = JobDetail::from_line(JOB).expect("parses");
        assert_eq!(j.id, JobId(1));
        assert_eq!(j.state, "RUNNING");
        assert_eq!((j.num_cpus, j.num_tasks, j.cpus_per_task), (32, 16, 2));
        assert_eq!(j.time_limit, Some(Walltime::from_days(1)));
        assert_eq!(j.node_list, "n[1-2]");
        assert_eq!(j.batch_host, "n1");
        assert_eq!(j.run_seconds, 2);
        assert_eq!(j.std_out, "/tmp/1.out");
    }

    #[test]
    fn node_line_with_spaces_in_values() {
        let n = Node::from_line(NODE).expect("parses");
        assert_eq!(n.name, "n1");
        assert_eq!((n.cpus, n.alloc_cpus, n.real_memory_mb), (16, 16, 4000));
        assert_eq!(n.partitions, vec!["debug", "small"]);
        assert!(n.usable());
        let kv = key_values(NODE);
        assert_eq!(kv["OS"], "Linux 6.18.44-fc-v769 #1 SMP PREEMPT_DYNAMIC @0");
    }

    #[test]
    fn squeue_row_with_pipe_in_name() {
        let q = QueuedJob::from_line(
            "7|PENDING|Resources|0:00|1-00:00:00|1-00:00:00|2|32|debug||corral-a|b",
        )
        .expect("parses");
        assert_eq!(q.id, JobId(7));
        assert_eq!(q.reason, "Resources");
        assert_eq!(q.left_secs, Some(86_400));
        assert_eq!(q.name, "corral-a|b");
        assert_eq!(q.cpus, 32);
    }

    #[test]
    fn test_only_estimate() {
        let e = StartEstimate::from_output(
            "sbatch: Job 3 to start at 2026-11-25T23:09:07 using 32 processors on nodes n[1-2] in partition debug\n",
        )
        .expect("parses");
        assert_eq!(e.start, "2026-11-25T23:09:07");
        assert_eq!(e.processors, 32);
        assert_eq!(e.partition, "debug");
    }

    #[test]
    fn host_lists() {
        assert!(hostlist_contains("n[1-2]", "n2"));
        assert!(hostlist_contains("n1,n[3-5]", "n4"));
        assert!(!hostlist_contains("n1,n[3-5]", "n2"));
        assert!(hostlist_contains("n2", "n2"));
        assert!(!hostlist_contains("n2", "n1"));
        assert!(hostlist_contains("gpu[01-04]", "gpu03"));
        assert!(!hostlist_contains("gpu[01-04]", "gpu3"));
        assert!(hostlist_contains("n[1,3,7-9]", "n8"));
        assert!(!hostlist_contains("", "n1"));
    }

    #[test]
    fn elapsed_times() {
        assert_eq!(parse_elapsed_secs("1-02:03:04"), Some(93_784));
        assert_eq!(parse_elapsed_secs("5:07"), Some(307));
        assert_eq!(parse_elapsed_secs("INVALID"), None);
    }
}
