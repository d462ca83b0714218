//! SLURM's pending-reason codes in plain words, with what would make the job start.
//!
//! grabdask printed `Job N pending, reason: Resources` and left the user to guess. The table
//! below is the one place that knows what each code means; unknown codes are shown raw.

/// What a pending reason means for the user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explained {
    pub code: String,
    /// Plain words; for an unknown code, the code itself.
    pub meaning: String,
    /// What the user could change, if anything.
    pub suggestion: Option<String>,
    /// The job can never start as submitted; it should be cancelled and resubmitted.
    pub never_starts: bool,
}

/// `(code, meaning, suggestion, never_starts)`. Codes are SLURM 22.05's `job_reason_string`s.
const TABLE: &[(&str, &str, &str, bool)] = &[
    (
        "None",
        "just submitted; the scheduler has not looked at it yet",
        "",
        false,
    ),
    (
        "Resources",
        "waiting for CPUs: the nodes it needs are busy with other jobs",
        "ask for fewer workers or cores to fit what is free now",
        false,
    ),
    (
        "Priority",
        "other jobs with higher priority are queued ahead of it",
        "wait, or ask for less time: short jobs can be backfilled sooner",
        false,
    ),
    (
        "Dependency",
        "waiting for another job it depends on",
        "",
        false,
    ),
    (
        "DependencyNeverSatisfied",
        "the job it depends on failed, so it can never start",
        "cancel it and resubmit without the dependency",
        true,
    ),
    ("BeginTime", "its start time is in the future", "", false),
    (
        "JobHeldUser",
        "held by you (scontrol hold)",
        "release it with `scontrol release <job>`",
        false,
    ),
    (
        "JobHeldAdmin",
        "held by an administrator",
        "ask your site's support",
        false,
    ),
    (
        "PartitionConfig",
        "the request exceeds the partition's limits (CPUs, nodes or time) and will never start",
        "cancel it and ask for less, or use another partition",
        true,
    ),
    (
        "PartitionTimeLimit",
        "the time limit is longer than the partition allows",
        "cancel it and ask for a shorter time, or use another partition",
        true,
    ),
    (
        "PartitionNodeLimit",
        "more nodes than the partition allows",
        "cancel it and ask for fewer workers, or use another partition",
        true,
    ),
    (
        "PartitionDown",
        "the partition is down",
        "wait for the site to bring it up, or use another partition",
        false,
    ),
    (
        "PartitionInactive",
        "the partition is inactive",
        "use another partition",
        true,
    ),
    (
        "NodeDown",
        "a node it needs is down",
        "wait, or resubmit to avoid the node",
        false,
    ),
    (
        "BadConstraints",
        "its constraints can never be satisfied",
        "cancel it and change the request",
        true,
    ),
    (
        "ReqNodeNotAvail",
        "a node it needs is unavailable (down, drained or reserved)",
        "wait, or use another partition",
        false,
    ),
    (
        "Reservation",
        "waiting for its reservation to start",
        "",
        false,
    ),
    (
        "AssocGrpCpuLimit",
        "your account's group CPU limit is in use",
        "wait for your other jobs, or ask for fewer cores",
        false,
    ),
    (
        "AssocMaxJobsLimit",
        "your account already runs as many jobs as it may",
        "wait for your other jobs to finish",
        false,
    ),
    (
        "AssocGrpNodeLimit",
        "your account's group node limit is in use",
        "wait, or ask for fewer workers",
        false,
    ),
    (
        "AssocMaxCpuPerJobLimit",
        "more CPUs than your account may use in one job",
        "cancel it and ask for fewer workers or cores",
        true,
    ),
    (
        "AssocMaxWallDurationPerJobLimit",
        "a longer time than your account may ask for",
        "cancel it and ask for less time",
        true,
    ),
    (
        "QOSMaxCpuPerJobLimit",
        "more CPUs than the QOS allows per job",
        "cancel it and ask for fewer workers or cores",
        true,
    ),
    (
        "QOSMaxWallDurationPerJobLimit",
        "a longer time than the QOS allows",
        "cancel it and ask for less time",
        true,
    ),
    (
        "QOSMaxNodePerJobLimit",
        "more nodes than the QOS allows per job",
        "cancel it and ask for fewer workers",
        true,
    ),
    (
        "QOSGrpCpuLimit",
        "the QOS's group CPU limit is in use",
        "wait, or ask for fewer cores",
        false,
    ),
    (
        "QOSMaxJobsPerUserLimit",
        "you already run as many jobs as the QOS allows",
        "wait for your other jobs to finish",
        false,
    ),
    (
        "InvalidAccount",
        "the account is not valid",
        "cancel it and resubmit with a valid --account",
        true,
    ),
    (
        "InvalidQOS",
        "the QOS is not valid",
        "cancel it and resubmit with a valid QOS",
        true,
    ),
    ("Licenses", "waiting for licenses", "", false),
    (
        "launch_failed_requeued_held",
        "its launch failed and it was held",
        "look at the job's error file, then cancel and resubmit",
        true,
    ),
];

/// Explains a reason code as squeue `%r` or scontrol `Reason=` shows it.
pub fn explain(code: &str) -> Explained {
    let code = code.trim();
    match TABLE.iter().find(|(c, ..)| *c == code) {
        Some((c, meaning, suggestion, never)) => Explained {
            code: (*c).to_string(),
            meaning: (*meaning).to_string(),
            suggestion: (!suggestion.is_empty()).then(|| (*suggestion).to_string()),
            never_starts: *never,
        },
        None => Explained {
            code: code.to_string(),
            meaning: code.to_string(),
            suggestion: None,
            never_starts: false,
        },
    }
}

impl Explained {
    /// `Resources — waiting for CPUs …; ask for fewer workers …`.
    pub fn sentence(&self) -> String {
        if self.meaning == self.code {
            return self.code.clone();
        }
        match &self.suggestion {
            Some(s) => format!("{} — {}; {}", self.code, self.meaning, s),
            None => format!("{} — {}", self.code, self.meaning),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_codes() {
        let r = explain("Resources");
        assert!(r.sentence().starts_with("Resources — waiting for CPUs"));
        assert!(!r.never_starts);
        assert!(explain("PartitionConfig").never_starts);
        let u = explain("SomethingNew");
        assert_eq!(u.sentence(), "SomethingNew");
    }
}
