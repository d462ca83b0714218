//! Checks a [`ClusterSpec`] against the partition's real limits before anything is submitted,
//! with a verdict per field and the nearest request that would fit.
//!
//! This is where grabdask's `More processors requested than permitted` is answered: the request
//! is compared with what the partition can actually hold (nodes × CPUs per node, capped by
//! `MaxCPUsPerNode` and `MaxNodes`), so the user learns the limit and a fix before submitting.

use serde::{Deserialize, Serialize};

use crate::model::ClusterSpec;
use crate::slurm::parse::{Node, Partition};

/// The field of a request a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Name,
    Workers,
    Cores,
    Memory,
    Walltime,
    Partition,
}

/// One problem with a request, said plainly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub field: Field,
    pub message: String,
}

/// The outcome of checking a request: problems per field, the partition it resolved to, and the
/// nearest request that would fit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub problems: Vec<Problem>,
    /// The partition the request would run on (the default one when none was named).
    pub partition: Option<String>,
    /// The most workers of this many cores the partition can hold at once.
    pub max_workers: Option<u64>,
    pub nearest: Option<ClusterSpec>,
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn problem(&self, field: Field) -> Option<&str> {
        self.problems
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.message.as_str())
    }
}

/// How much of a request a partition can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// CPUs usable per node, largest first (node CPUs capped by MaxCPUsPerNode).
    pub cpus_per_node: Vec<u64>,
    pub max_nodes: Option<u64>,
}

impl Capacity {
    pub fn of(partition: &Partition, nodes: &[Node]) -> Capacity {
        let mut cpus_per_node: Vec<u64> = nodes
            .iter()
            .filter(|n| n.partitions.iter().any(|p| p == &partition.name) && n.usable())
            .map(|n| match partition.max_cpus_per_node {
                Some(cap) => n.cpus.min(cap),
                None => n.cpus,
            })
            .collect();
        cpus_per_node.sort_unstable_by(|a, b| b.cmp(a));
        Capacity {
            cpus_per_node,
            max_nodes: partition.max_nodes,
        }
    }

    /// Workers of `cores` CPUs that fit at once: per node ⌊cpus/cores⌋, over the best nodes the
    /// partition lets one job use.
    pub fn max_workers(&self, cores: u64) -> u64 {
        if cores == 0 {
            return 0;
        }
        let usable_nodes = self.max_nodes.map_or(self.cpus_per_node.len(), |m| {
            m.min(self.cpus_per_node.len() as u64) as usize
        });
        self.cpus_per_node[..usable_nodes]
            .iter()
            .map(|c| c / cores)
            .sum()
    }

    /// What is free right now: per usable node, its CPUs (capped as above) minus those
    /// already allocated.
    pub fn free_now(partition: &Partition, nodes: &[Node]) -> Capacity {
        let busy: Vec<Node> = nodes
            .iter()
            .map(|n| Node {
                cpus: n.cpus.saturating_sub(n.alloc_cpus),
                ..n.clone()
            })
            .collect();
        let mut cap = Capacity::of(partition, &busy);
        cap.cpus_per_node.retain(|c| *c > 0);
        cap
    }

    pub fn largest_node(&self) -> u64 {
        self.cpus_per_node.first().copied().unwrap_or(0)
    }
}

/// Checks the name's syntax (whether it is in use is the caller's business); the rule itself
/// lives with the cluster directory, which the name becomes.
pub fn check_name(name: &str) -> Option<String> {
    crate::cluster_dir::validate_name(name)
        .err()
        .map(|e| e.to_string())
}

/// What is wrong with `spec` whatever the cluster: the name, zero workers or cores. Worth
/// saying before asking SLURM anything.
pub fn basic_problems(spec: &ClusterSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(message) = check_name(&spec.name) {
        problems.push(Problem {
            field: Field::Name,
            message,
        });
    }
    if spec.workers == 0 {
        problems.push(Problem {
            field: Field::Workers,
            message: "ask for at least 1 worker".into(),
        });
    }
    if spec.cores_per_worker == 0 {
        problems.push(Problem {
            field: Field::Cores,
            message: "each worker needs at least 1 core".into(),
        });
    }
    problems
}

/// Checks `spec` against the live partitions and nodes.
pub fn validate(spec: &ClusterSpec, partitions: &[Partition], nodes: &[Node]) -> Verdict {
    let mut problems = basic_problems(spec);
    let mut push = |field, message: String| problems.push(Problem { field, message });

    let partition = match &spec.partition {
        Some(name) => partitions.iter().find(|p| &p.name == name),
        None => partitions.iter().find(|p| p.is_default),
    };
    let Some(partition) = partition else {
        let names: Vec<&str> = partitions.iter().map(|p| p.name.as_str()).collect();
        let message = match &spec.partition {
            Some(name) => format!(
                "unknown partition {name:?}; this cluster has: {}",
                names.join(", ")
            ),
            None => format!(
                "this cluster has no default partition; choose one of: {}",
                names.join(", ")
            ),
        };
        push(Field::Partition, message);
        return Verdict {
            problems,
            partition: None,
            max_workers: None,
            nearest: None,
        };
    };
    if partition.state != "UP" {
        push(
            Field::Partition,
            format!(
                "partition {} is {}: jobs there will not start{}",
                partition.name,
                partition.state,
                alternative(spec, partitions, nodes, &partition.name)
                    .map(|a| format!("; use partition {a}"))
                    .unwrap_or_default()
            ),
        );
    }

    let cap = Capacity::of(partition, nodes);
    let cores = u64::from(spec.cores_per_worker);
    let max_workers = cap.max_workers(cores);
    let or_else = || {
        alternative(spec, partitions, nodes, &partition.name)
            .map(|a| format!(", or use partition {a}"))
            .unwrap_or_default()
    };
    if cap.cpus_per_node.is_empty() {
        push(
            Field::Partition,
            format!(
                "partition {} has no usable nodes (all down or drained){}",
                partition.name,
                or_else()
            ),
        );
    } else if cores > cap.largest_node() {
        push(
            Field::Cores,
            format!(
                "{} allows at most {} per node: at most {} per worker there{}",
                partition.name,
                crate::text::count(cap.largest_node(), "CPU"),
                crate::text::count(cap.largest_node(), "core"),
                or_else()
            ),
        );
    } else if u64::from(spec.workers) > max_workers && cores > 0 {
        push(
            Field::Workers,
            format!(
                "{}: at most {} × {} there{}",
                describe_shape(partition, &cap),
                crate::text::count(max_workers, "worker"),
                crate::text::count(cores, "core"),
                or_else()
            ),
        );
    }

    if let Some(max) = partition.max_time
        && spec.walltime > max
    {
        push(
            Field::Walltime,
            format!(
                "{} allows at most {max} per job (MaxTime): ask for --time {}{}",
                partition.name,
                max.to_sbatch(),
                or_else()
            ),
        );
    }

    let mut mem_limit = None;
    if let Some(mem) = spec.mem_per_worker_mb {
        let node_mem = nodes
            .iter()
            .filter(|n| n.partitions.iter().any(|p| p == &partition.name))
            .map(|n| n.real_memory_mb)
            .max()
            .unwrap_or(0);
        let limit = partition
            .max_mem_per_node_mb
            .map_or(node_mem, |m| m.min(node_mem));
        mem_limit = (limit > 0).then_some(limit);
        if mem == 0 {
            push(
                Field::Memory,
                "memory per worker must be more than 0".into(),
            );
        } else if limit > 0 && mem > limit {
            push(
                Field::Memory,
                format!(
                    "nodes of {} have at most {limit} MiB: ask for at most {limit}M per worker",
                    partition.name
                ),
            );
        }
    }

    let nearest = (!problems.is_empty()).then(|| {
        let mut n = spec.clone();
        n.partition = Some(partition.name.clone());
        n.workers = n.workers.max(1);
        n.cores_per_worker =
            (n.cores_per_worker.max(1) as u64).min(cap.largest_node().max(1)) as u32;
        let fit = cap.max_workers(u64::from(n.cores_per_worker));
        n.workers = (u64::from(n.workers).min(fit.max(1))) as u32;
        if let Some(max) = partition.max_time {
            n.walltime = n.walltime.min(max);
        }
        if let (Some(mem), Some(limit)) = (n.mem_per_worker_mb, mem_limit) {
            n.mem_per_worker_mb = Some(mem.clamp(1, limit));
        }
        n
    });
    Verdict {
        problems,
        partition: Some(partition.name.clone()),
        max_workers: Some(max_workers),
        nearest,
    }
}

/// "small allows 8 CPUs per node and 1 node" / "debug has 4 nodes of 16 CPUs".
fn describe_shape(p: &Partition, cap: &Capacity) -> String {
    let plural = |n: u64, word: &str| crate::text::count(n, word);
    match (p.max_cpus_per_node, p.max_nodes) {
        (Some(cpn), Some(mn)) => format!(
            "{} allows {} per node and {}",
            p.name,
            plural(cpn, "CPU"),
            plural(mn, "node")
        ),
        (Some(cpn), None) => format!(
            "{} allows {} per node on {}",
            p.name,
            plural(cpn, "CPU"),
            plural(cap.cpus_per_node.len() as u64, "node")
        ),
        (None, Some(mn)) => format!(
            "{} allows {} of {} CPUs",
            p.name,
            plural(mn, "node"),
            cap.largest_node()
        ),
        (None, None) => format!(
            "{} has {} of {} CPUs",
            p.name,
            plural(cap.cpus_per_node.len() as u64, "usable node"),
            cap.largest_node()
        ),
    }
}

/// Another partition where the whole request fits, if any (the default one first).
fn alternative(
    spec: &ClusterSpec,
    partitions: &[Partition],
    nodes: &[Node],
    except: &str,
) -> Option<String> {
    let mut candidates: Vec<&Partition> = partitions
        .iter()
        .filter(|p| p.name != except && p.state == "UP")
        .collect();
    candidates.sort_by_key(|p| !p.is_default);
    candidates
        .into_iter()
        .find(|p| {
            let cap = Capacity::of(p, nodes);
            cap.max_workers(u64::from(spec.cores_per_worker)) >= u64::from(spec.workers)
                && p.max_time.is_none_or(|m| spec.walltime <= m)
        })
        .map(|p| p.name.clone())
}

/// Minutes in a walltime, for callers that show core-hours.
pub fn core_hours(cores: u64, seconds: u64) -> f64 {
    cores as f64 * seconds as f64 / 3600.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Walltime;

    fn test_bed() -> (Vec<Partition>, Vec<Node>) {
        // What `scontrol show partition -o` says on the project's test bed (4 nodes × 16 CPUs).
        let debug = Partition::from_line("PartitionName=debug AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED MaxTime=UNLIMITED MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=n[1-4] PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=64 TotalNodes=4 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED").expect("debug");
        let small = Partition::from_line("PartitionName=small AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=N/A DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=1 MaxTime=12:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=8 Nodes=n1 PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=16 TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED").expect("small");
        let nodes = (1..=4)
            .map(|i| Node {
                name: format!("n{i}"),
                cpus: 16,
                alloc_cpus: 0,
                real_memory_mb: 4000,
                alloc_memory_mb: 0,
                state: "IDLE".into(),
                partitions: if i == 1 {
                    vec!["debug".into(), "small".into()]
                } else {
                    vec!["debug".into()]
                },
            })
            .collect();
        (vec![debug, small], nodes)
    }

    fn spec(workers: u32, cores: u32, days: u64, partition: Option<&str>) -> ClusterSpec {
        ClusterSpec {
            name: "t".into(),
            workers,
            cores_per_worker: cores,
            mem_per_worker_mb: None,
            walltime: Walltime::from_days(days),
            partition: partition.map(String::from),
            account: None,
            supervise: Default::default(),
            dask: None,
        }
    }

    #[test]
    fn sixteen_by_two_on_small_is_refused_with_the_fix() {
        let (p, n) = test_bed();
        let v = validate(&spec(16, 2, 0, Some("small")).with_minutes(60), &p, &n);
        assert_eq!(
            v.problem(Field::Workers),
            Some(
                "small allows 8 CPUs per node and 1 node: at most 4 workers × 2 cores there, or use partition debug"
            )
        );
        let nearest = v.nearest.expect("a nearest request");
        assert_eq!((nearest.workers, nearest.cores_per_worker), (4, 2));
    }

    #[test]
    fn too_much_memory_is_refused_with_a_nearest_request_that_fits() {
        let (p, n) = test_bed();
        let mut s = spec(2, 1, 1, None);
        s.mem_per_worker_mb = Some(100 * 1024);
        let v = validate(&s, &p, &n);
        assert!(v.problem(Field::Memory).expect("memory").contains("4000"));
        assert_eq!(v.nearest.expect("nearest").mem_per_worker_mb, Some(4000));
    }

    #[test]
    fn sixteen_by_two_on_debug_fits() {
        let (p, n) = test_bed();
        let v = validate(&spec(16, 2, 1, None), &p, &n);
        assert!(v.is_clean(), "{:?}", v.problems);
        assert_eq!(v.partition.as_deref(), Some("debug"));
        assert_eq!(v.max_workers, Some(32));
    }

    #[test]
    fn a_day_on_a_twelve_hour_partition_is_refused() {
        let (p, n) = test_bed();
        let v = validate(&spec(2, 2, 1, Some("small")), &p, &n);
        let m = v.problem(Field::Walltime).expect("walltime problem");
        assert!(
            m.contains("12:00:00") && m.contains("partition debug"),
            "{m}"
        );
    }

    #[test]
    fn bad_input_is_named() {
        let (p, n) = test_bed();
        let v = validate(&spec(0, 2, 1, Some("nosuch")), &p, &n);
        assert!(v.problem(Field::Workers).is_some());
        let m = v.problem(Field::Partition).expect("partition problem");
        assert!(m.contains("nosuch") && m.contains("debug, small"), "{m}");
        let v = validate(&spec(1, 32, 1, None), &p, &n);
        assert!(
            v.problem(Field::Cores)
                .expect("cores")
                .contains("at most 16 cores")
        );
        assert!(check_name("a b").is_some() && check_name("ok-1_x").is_none());
    }

    #[test]
    fn drained_nodes_do_not_count() {
        let (p, mut n) = test_bed();
        for node in n.iter_mut().skip(1) {
            node.state = "IDLE+DRAIN".into();
        }
        let v = validate(&spec(16, 2, 1, None), &p, &n);
        assert!(
            v.problem(Field::Workers)
                .expect("too many")
                .contains("at most 8 workers")
        );
    }

    impl ClusterSpec {
        fn with_minutes(mut self, m: u64) -> Self {
            self.walltime = Walltime { minutes: m };
            self
        }
    }
}
