//! The new-cluster wizard as plain data: what the user typed, which field has focus, and the
//! per-field verdict computed from it. Checking is pure (`corral_core::slurm::validate` over
//! the partitions and nodes fetched earlier), so the verdict updates on every keystroke without
//! asking SLURM; only the start estimate (`sbatch --test-only`) is an effect.

use corral_core::config::Defaults;
use corral_core::model::{ClusterSpec, Walltime, parse_mem_mb};
use corral_core::slurm::Partition;
use corral_core::slurm::validate::{self, Capacity, Field, Problem};

use super::view::{Backend, Limits};

/// The wizard's rows, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WizField {
    Workers,
    Cores,
    Memory,
    Days,
    Partition,
    Name,
    Backend,
    Submit,
}

pub const FIELDS: [WizField; 8] = [
    WizField::Workers,
    WizField::Cores,
    WizField::Memory,
    WizField::Days,
    WizField::Partition,
    WizField::Name,
    WizField::Backend,
    WizField::Submit,
];

impl WizField {
    pub fn label(self) -> &'static str {
        match self {
            WizField::Workers => "Workers",
            WizField::Cores => "Cores per worker",
            WizField::Memory => "Memory per worker",
            WizField::Days => "Days",
            WizField::Partition => "Partition",
            WizField::Name => "Name",
            WizField::Backend => "Run on",
            WizField::Submit => "Submit",
        }
    }

    /// The validation field a problem about this row is filed under.
    pub fn verdict_field(self) -> Option<Field> {
        match self {
            WizField::Workers => Some(Field::Workers),
            WizField::Cores => Some(Field::Cores),
            WizField::Memory => Some(Field::Memory),
            WizField::Days => Some(Field::Walltime),
            WizField::Partition => Some(Field::Partition),
            WizField::Name => Some(Field::Name),
            WizField::Backend | WizField::Submit => None,
        }
    }

    pub fn is_text(self) -> bool {
        matches!(
            self,
            WizField::Workers
                | WizField::Cores
                | WizField::Memory
                | WizField::Days
                | WizField::Name
        )
    }
}

/// What SLURM availability looks like to the wizard.
#[derive(Debug, Clone, PartialEq)]
pub enum SlurmReach {
    Loading,
    Ready,
    /// SLURM could not be asked (no SLURM here, controller down): local clusters only.
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Wizard {
    pub focus: usize,
    pub workers: String,
    pub cores: String,
    pub memory: String,
    pub days: String,
    pub name: String,
    /// `None`: the partition SLURM marks default.
    pub partition: Option<String>,
    pub backend: Backend,
    pub slurm: SlurmReach,
    /// The spec the last estimate was asked for, and its answer once it came.
    pub estimate_for: Option<ClusterSpec>,
    pub estimate: Option<Result<String, String>>,
    pub submitting: bool,
    pub error: Option<String>,
}

/// The wizard's verdict: problems per field, plus what the ranges shown next to fields need.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checked {
    pub spec: Option<ClusterSpec>,
    pub problems: Vec<Problem>,
    pub partition: Option<String>,
    pub max_workers: Option<u64>,
}

impl Checked {
    pub fn problem(&self, field: Field) -> Option<&str> {
        self.problems
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.message.as_str())
    }

    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.spec.is_some()
    }
}

impl Wizard {
    /// A fresh wizard with the configured defaults (grabdask's 8 workers, 1 day) and a name
    /// not yet taken.
    pub fn new(defaults: &Defaults, taken: &[String]) -> Wizard {
        let name = (1..)
            .map(|i| format!("cluster-{i}"))
            .find(|n| !taken.contains(n))
            .unwrap_or_else(|| "cluster".into());
        Wizard {
            focus: 0,
            workers: defaults.workers.to_string(),
            cores: defaults.cores.to_string(),
            memory: defaults.mem.clone(),
            days: defaults.days.to_string(),
            name,
            partition: (!defaults.partition.is_empty()).then(|| defaults.partition.clone()),
            backend: Backend::Slurm,
            slurm: SlurmReach::Loading,
            estimate_for: None,
            estimate: None,
            submitting: false,
            error: None,
        }
    }

    pub fn field(&self) -> WizField {
        FIELDS[self.focus.min(FIELDS.len() - 1)]
    }

    pub fn text_mut(&mut self) -> Option<&mut String> {
        match self.field() {
            WizField::Workers => Some(&mut self.workers),
            WizField::Cores => Some(&mut self.cores),
            WizField::Memory => Some(&mut self.memory),
            WizField::Days => Some(&mut self.days),
            WizField::Name => Some(&mut self.name),
            _ => None,
        }
    }

    /// Whether `c` may be typed into the focused field (digits for numbers; the name's
    /// alphabet; memory and time units).
    pub fn accepts(&self, c: char) -> bool {
        match self.field() {
            WizField::Workers | WizField::Cores => c.is_ascii_digit(),
            WizField::Memory => c.is_ascii_digit() || "kKmMgGtT".contains(c),
            WizField::Days => c.is_ascii_digit() || c == '-' || c == ':',
            WizField::Name => c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
            _ => false,
        }
    }

    /// Moves the partition choice by `step` through `[default, p1, p2, …]`.
    pub fn cycle_partition(&mut self, limits: Option<&Limits>, step: i32) {
        let Some(limits) = limits else { return };
        let names: Vec<Option<String>> = std::iter::once(None)
            .chain(limits.partitions.iter().map(|p| Some(p.name.clone())))
            .collect();
        let cur = names.iter().position(|n| *n == self.partition).unwrap_or(0) as i32;
        let len = names.len() as i32;
        let next = (cur + step).rem_euclid(len) as usize;
        self.partition = names[next].clone();
    }

    pub fn toggle_backend(&mut self) {
        self.backend = match self.backend {
            Backend::Local => Backend::Slurm,
            Backend::Slurm => Backend::Local,
        };
    }

    /// Parses the fields and checks them: syntax here, limits via `validate`, the name against
    /// clusters that exist.
    pub fn check(&self, limits: Option<&Limits>, taken: &[String]) -> Checked {
        let mut problems = Vec::new();
        let mut num = |text: &str, field, what: &str| match text.trim().parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push(Problem {
                    field,
                    message: format!("{what} must be a whole number"),
                });
                None
            }
        };
        let workers = num(&self.workers, Field::Workers, "workers");
        let cores = num(&self.cores, Field::Cores, "cores per worker");
        let mem = if self.memory.trim().is_empty() {
            Some(None)
        } else {
            match parse_mem_mb(&self.memory) {
                Ok(m) => Some(Some(m)),
                Err(message) => {
                    problems.push(Problem {
                        field: Field::Memory,
                        message,
                    });
                    None
                }
            }
        };
        let walltime = match parse_days(&self.days) {
            Ok(w) => Some(w),
            Err(message) => {
                problems.push(Problem {
                    field: Field::Walltime,
                    message,
                });
                None
            }
        };
        if taken.iter().any(|t| t == &self.name) {
            problems.push(Problem {
                field: Field::Name,
                message: format!(
                    "a cluster named {:?} exists; choose another name",
                    self.name
                ),
            });
        }
        let (Some(workers), Some(cores), Some(mem), Some(walltime)) =
            (workers, cores, mem, walltime)
        else {
            if let Some(m) = validate::check_name(&self.name) {
                problems.push(Problem {
                    field: Field::Name,
                    message: m,
                });
            }
            return Checked {
                spec: None,
                problems,
                partition: None,
                max_workers: None,
            };
        };
        let spec = ClusterSpec {
            name: self.name.clone(),
            workers,
            cores_per_worker: cores,
            mem_per_worker_mb: mem,
            walltime,
            partition: self.partition.clone(),
            account: None,
            supervise: Default::default(),
            dask: None,
        };
        let (mut verdict_problems, partition, max_workers) = match (self.backend, limits) {
            (Backend::Slurm, Some(l)) => {
                let v = validate::validate(&spec, &l.partitions, &l.nodes);
                (v.problems, v.partition, v.max_workers)
            }
            _ => {
                let mut p = Vec::new();
                if let Some(m) = validate::check_name(&spec.name) {
                    p.push(Problem {
                        field: Field::Name,
                        message: m,
                    });
                }
                if workers == 0 {
                    p.push(Problem {
                        field: Field::Workers,
                        message: "ask for at least 1 worker".into(),
                    });
                }
                if cores == 0 {
                    p.push(Problem {
                        field: Field::Cores,
                        message: "each worker needs at least 1 core".into(),
                    });
                }
                if self.backend == Backend::Slurm {
                    let why = match &self.slurm {
                        SlurmReach::Unavailable(e) => format!("SLURM is not reachable: {e}"),
                        _ => "waiting for SLURM's partitions…".into(),
                    };
                    p.push(Problem {
                        field: Field::Partition,
                        message: why,
                    });
                }
                (p, None, None)
            }
        };
        problems.append(&mut verdict_problems);
        // One problem per field is enough to show; keep the first (syntax before limits).
        let mut seen = Vec::new();
        problems.retain(|p| {
            let fresh = !seen.contains(&p.field);
            seen.push(p.field);
            fresh
        });
        Checked {
            spec: Some(spec),
            problems,
            partition,
            max_workers,
        }
    }

    /// The allowed range shown next to a field.
    pub fn range(&self, field: WizField, limits: Option<&Limits>, checked: &Checked) -> String {
        let local = self.backend == Backend::Local;
        let partition = limits.and_then(|l| self.partition_of(l));
        match field {
            WizField::Workers => match checked.max_workers {
                Some(m) if !local => format!("1–{m}"),
                _ => "≥ 1".into(),
            },
            WizField::Cores => match (partition, limits) {
                (Some(p), Some(l)) if !local => {
                    let cap = Capacity::of(p, &l.nodes);
                    format!("1–{}", cap.largest_node().max(1))
                }
                _ => "≥ 1".into(),
            },
            WizField::Memory => match (partition, limits) {
                (Some(p), Some(l)) if !local => {
                    let node_mem = l
                        .nodes
                        .iter()
                        .filter(|n| n.partitions.iter().any(|q| q == &p.name))
                        .map(|n| n.real_memory_mb)
                        .max()
                        .unwrap_or(0);
                    let max = p.max_mem_per_node_mb.map_or(node_mem, |m| m.min(node_mem));
                    format!("empty = default; ≤ {max}M")
                }
                _ => "empty = partition default".into(),
            },
            WizField::Days => match partition.and_then(|p| p.max_time) {
                Some(t) if !local => format!("≤ {t} (or D-HH)"),
                _ if local => "runs until cancelled".into(),
                _ => "1 = one day, or D-HH".into(),
            },
            WizField::Partition => {
                if local {
                    "not used locally".into()
                } else {
                    "←/→ or Enter: list".into()
                }
            }
            WizField::Name => format!(
                "a-z 0-9 . _ -, ≤ {}",
                corral_core::cluster_dir::MAX_NAME_LEN
            ),
            WizField::Backend => "←/→: local or SLURM".into(),
            WizField::Submit => String::new(),
        }
    }

    /// The partition the request would use (the named one, else the default).
    pub fn partition_of<'l>(&self, limits: &'l Limits) -> Option<&'l Partition> {
        match &self.partition {
            Some(n) => limits.partitions.iter().find(|p| &p.name == n),
            None => limits.partitions.iter().find(|p| p.is_default),
        }
    }

    /// The row's value as shown.
    pub fn value(&self, field: WizField, limits: Option<&Limits>) -> String {
        match field {
            WizField::Workers => self.workers.clone(),
            WizField::Cores => self.cores.clone(),
            WizField::Memory => self.memory.clone(),
            WizField::Days => self.days.clone(),
            WizField::Name => self.name.clone(),
            WizField::Partition => match (&self.partition, limits) {
                (Some(p), _) => p.clone(),
                (None, Some(l)) => match l.partitions.iter().find(|p| p.is_default) {
                    Some(p) => format!("{} (default)", p.name),
                    None => "(none is default)".into(),
                },
                (None, None) => "(default)".into(),
            },
            WizField::Backend => match self.backend {
                Backend::Local => "local (this machine)".into(),
                Backend::Slurm => "SLURM".into(),
            },
            WizField::Submit => "[ Submit ]".into(),
        }
    }
}

/// `1` → one day; a SLURM time (`0-12`, `12:00:00`) is accepted too.
pub fn parse_days(text: &str) -> Result<Walltime, String> {
    let t = text.trim();
    match t.parse::<u64>() {
        Ok(0) => Err("ask for at least 1 day, or a time such as 0-12".into()),
        Ok(d) => Ok(Walltime::from_days(d)),
        Err(_) => t.parse::<Walltime>(),
    }
}

/// One line about a partition for the picker: `debug (default) UP · 4 nodes · 64 CPUs · max time 1-00:00:00`.
pub fn describe_partition(p: &Partition) -> String {
    let mut s = format!(
        "{}{} {}",
        p.name,
        if p.is_default { "*" } else { "" },
        p.state
    );
    s.push_str(&format!(
        " · {} · {}",
        corral_core::text::count(p.total_nodes, "node"),
        corral_core::text::count(p.total_cpus, "CPU")
    ));
    if let Some(c) = p.max_cpus_per_node {
        s.push_str(&format!(
            " · ≤ {c} CPU{}/node",
            if c == 1 { "" } else { "s" }
        ));
    }
    if let Some(n) = p.max_nodes {
        s.push_str(&format!(
            " · ≤ {n} node{}/job",
            if n == 1 { "" } else { "s" }
        ));
    }
    match p.max_time {
        Some(t) => s.push_str(&format!(" · max time {t}")),
        None => s.push_str(" · no time limit"),
    }
    s
}
