//! Renders `assets/cluster.sbatch`, the one template for every job corral submits: the head job
//! (coordinator + workers) and scale-up worker jobs.

use std::path::Path;

use crate::model::ClusterSpec;

/// The template, compiled in so the binary works wherever it is installed.
pub const TEMPLATE: &str = include_str!("../../../assets/cluster.sbatch");

/// Which job of a cluster this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobRole {
    /// The first job: runs the coordinator in its batch step and `workers` workers.
    Head,
    /// A scale-up job: only workers, joining the head job's coordinator.
    Workers,
}

impl JobRole {
    pub fn as_str(self) -> &'static str {
        match self {
            JobRole::Head => "head",
            JobRole::Workers => "workers",
        }
    }
}

/// A value that cannot be put into a job script safely.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "{what} {value:?} contains whitespace or a quote, which #SBATCH lines cannot carry; use a path or name without them"
    )]
    Unsafe { what: &'static str, value: String },
}

/// Renders the job script for `workers` workers of `spec` in cluster directory `dir`, running
/// the agent command `agent` (a program and the words before the role, e.g.
/// `["/opt/corral/bin/corral-agent"]` or `["/usr/bin/corral", "agent"]`).
pub fn render(
    spec: &ClusterSpec,
    role: JobRole,
    workers: u32,
    dir: &Path,
    agent: &[String],
) -> Result<String, TemplateError> {
    let dir_s = plain("cluster directory", &dir.display().to_string())?;
    let agent_s = agent
        .iter()
        .map(|w| plain("agent command", w))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ");
    let mut extra = Vec::new();
    if let Some(p) = &spec.partition {
        extra.push(format!("#SBATCH --partition={}", plain("partition", p)?));
    }
    if let Some(a) = &spec.account {
        extra.push(format!("#SBATCH --account={}", plain("account", a)?));
    }
    if let Some(mem) = spec.mem_per_worker_mb {
        // Memory is asked per CPU so that it scales with the task's cores on every node.
        let per_cpu = mem.div_ceil(u64::from(spec.cores_per_worker.max(1)));
        extra.push(format!("#SBATCH --mem-per-cpu={per_cpu}M"));
    }
    Ok(TEMPLATE
        .replace("{{NAME}}", &spec.name)
        .replace("{{WORKERS}}", &workers.to_string())
        .replace("{{CORES}}", &spec.cores_per_worker.to_string())
        .replace("{{TIME}}", &spec.walltime.to_sbatch())
        .replace("{{ROLE}}", role.as_str())
        .replace("{{DIR}}", &dir_s)
        .replace("{{AGENT}}", &agent_s)
        .replace("{{SBATCH_EXTRA}}", &extra.join("\n")))
}

fn plain(what: &'static str, value: &str) -> Result<String, TemplateError> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '$' | '`'))
    {
        return Err(TemplateError::Unsafe {
            what,
            value: value.to_string(),
        });
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Walltime;

    fn spec() -> ClusterSpec {
        ClusterSpec {
            name: "taxi".into(),
            workers: 16,
            cores_per_worker: 2,
            mem_per_worker_mb: Some(4096),
            walltime: Walltime::from_days(1),
            partition: Some("debug".into()),
            account: None,
        }
    }

    #[test]
    fn head_job_has_the_shape_that_never_over_asks() {
        let s = render(
            &spec(),
            JobRole::Head,
            16,
            Path::new("/h/c/taxi"),
            &["/bin/corral".to_string(), "agent".to_string()],
        )
        .expect("renders");
        assert!(s.contains("#SBATCH --job-name=corral-taxi"));
        assert!(s.contains("#SBATCH --ntasks=16\n#SBATCH --cpus-per-task=2\n#SBATCH --time=1-0\n"));
        assert!(s.contains("#SBATCH --signal=B:USR1@300"));
        assert!(s.contains("#SBATCH --partition=debug"));
        assert!(s.contains("#SBATCH --mem-per-cpu=2048M"));
        assert!(s.contains("srun --ntasks=\"$SLURM_NTASKS\" --cpus-per-task=2"));
        assert!(s.contains("#SBATCH --output=/h/c/taxi/logs/head-%j.out"));
        assert!(s.contains("agent=(/bin/corral agent)"));
        assert!(!s.contains("{{"), "unrendered placeholder:\n{s}");
        let check = std::process::Command::new("bash")
            .arg("-n")
            .arg("-c")
            .arg(&s)
            .status()
            .expect("bash runs");
        assert!(check.success(), "rendered script is not valid bash");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let err = render(
            &spec(),
            JobRole::Workers,
            2,
            Path::new("/home/a b/c"),
            &["/bin/a".to_string()],
        )
        .expect_err("space refused")
        .to_string();
        assert!(err.contains("/home/a b/c"), "{err}");
    }
}
