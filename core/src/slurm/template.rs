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
        "{what} {value:?} contains a character a job script cannot carry safely ({why}); use \
         a path or name without it"
    )]
    Unsafe {
        what: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Renders the job script for `workers` workers of `spec` in cluster directory `dir`, running
/// the agent command `agent` (a program and the words before the role, e.g.
/// `["/opt/corral/bin/corral-agent"]` or `["/usr/bin/corral", "agent"]`).
///
/// Every interpolated value is either a number corral made, an allowlisted word (name,
/// partition, account), or quoted for where it goes: shell-quoted in the script's body,
/// double-quoted (with `%` doubled: sbatch's filename patterns) on `#SBATCH` lines. So a
/// cluster directory with spaces works, and no value can add a line or a command.
pub fn render(
    spec: &ClusterSpec,
    role: JobRole,
    workers: u32,
    dir: &Path,
    agent: &[String],
) -> Result<String, TemplateError> {
    let dir_text = dir.to_str().ok_or_else(|| TemplateError::Unsafe {
        what: "cluster directory",
        value: dir.display().to_string(),
        why: "not UTF-8",
    })?;
    printable("cluster directory", dir_text)?;
    let log = |ext: &str| -> Result<String, TemplateError> {
        sbatch_path(
            "cluster directory",
            &format!("{dir_text}/logs/{}-%j.{ext}", role.as_str()),
        )
    };
    let agent_s = agent
        .iter()
        .map(|w| printable("agent command", w).map(|()| shell_quote(w)))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ");
    let mut extra = Vec::new();
    if let Some(p) = &spec.partition {
        extra.push(format!("#SBATCH --partition={}", word("partition", p)?));
    }
    if let Some(a) = &spec.account {
        extra.push(format!("#SBATCH --account={}", word("account", a)?));
    }
    if let Some(mem) = spec.mem_per_worker_mb {
        // Memory is asked per CPU so that it scales with the task's cores on every node.
        let per_cpu = mem.div_ceil(u64::from(spec.cores_per_worker.max(1)));
        extra.push(format!("#SBATCH --mem-per-cpu={per_cpu}M"));
    }
    Ok(TEMPLATE
        .replace("{{NAME}}", &word("cluster name", &spec.name)?)
        .replace("{{WORKERS}}", &workers.to_string())
        .replace("{{CORES}}", &spec.cores_per_worker.to_string())
        .replace("{{TIME}}", &spec.walltime.to_sbatch())
        .replace(
            "{{SIGNAL_LEAD}}",
            &spec.supervise.signal_lead_secs().to_string(),
        )
        .replace("{{ROLE}}", role.as_str())
        .replace("{{LOG_OUT}}", &log("out")?)
        .replace("{{LOG_ERR}}", &log("err")?)
        .replace("{{DIR}}", &shell_quote(dir_text))
        .replace("{{AGENT}}", &agent_s)
        .replace("{{SBATCH_EXTRA}}", &extra.join("\n")))
}

/// No control characters (a newline would start a new script line).
fn printable(what: &'static str, value: &str) -> Result<(), TemplateError> {
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(TemplateError::Unsafe {
            what,
            value: value.to_string(),
            why: "empty, or a control character such as a newline",
        });
    }
    Ok(())
}

/// A SLURM name (partition, account, cluster): letters, digits and `-_.+@`, nothing to quote.
fn word(what: &'static str, value: &str) -> Result<String, TemplateError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '@'));
    if !ok {
        return Err(TemplateError::Unsafe {
            what,
            value: value.to_string(),
            why: "only letters, digits and - _ . + @ are allowed",
        });
    }
    Ok(value.to_string())
}

/// `value` as one shell word: single quotes, a quote inside as `'\''`.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// A path for an `#SBATCH` filename option: double-quoted (sbatch reads quoted arguments on
/// `#SBATCH` lines); a `"` or `\` cannot be carried there. `%` is doubled except in `%j`,
/// the one pattern corral means.
fn sbatch_path(what: &'static str, value: &str) -> Result<String, TemplateError> {
    if value.contains(['"', '\\']) {
        return Err(TemplateError::Unsafe {
            what,
            value: value.to_string(),
            why: "a double quote or backslash",
        });
    }
    let escaped = value.replace('%', "%%").replace("%%j.", "%j.");
    Ok(format!("\"{escaped}\""))
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
            supervise: Default::default(),
            dask: None,
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
        assert!(s.contains("#SBATCH --output=\"/h/c/taxi/logs/head-%j.out\""));
        assert!(s.contains("agent=('/bin/corral' 'agent')"));
        assert!(!s.contains("{{"), "unrendered placeholder:\n{s}");
        let check = std::process::Command::new("bash")
            .arg("-n")
            .arg("-c")
            .arg(&s)
            .status()
            .expect("bash runs");
        assert!(check.success(), "rendered script is not valid bash");
    }

    /// What bash makes of the rendered `cluster=` and `agent=(…)` lines.
    fn shell_values(script: &str) -> (String, Vec<String>) {
        let lines: Vec<&str> = script
            .lines()
            .filter(|l| l.starts_with("cluster=") || l.starts_with("agent=("))
            .collect();
        let prog = format!(
            "{}\nprintf '%s\\n' \"$cluster\"; printf '%s\\n' \"${{agent[@]}}\"",
            lines.join("\n")
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(prog)
            .output()
            .expect("bash runs");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let mut words = text.lines().map(str::to_owned);
        let cluster = words.next().expect("cluster");
        (cluster, words.collect())
    }

    #[test]
    fn a_cluster_path_with_spaces_and_quotes_is_carried_exactly() {
        let dir = "/home/a b/it's $HOME `x` 100%/taxi";
        let agent = vec!["/opt/my tools/corral".to_string(), "agent".to_string()];
        let s = render(&spec(), JobRole::Head, 4, Path::new(dir), &agent).expect("renders");
        let (cluster, words) = shell_values(&s);
        assert_eq!(cluster, dir);
        assert_eq!(words, agent);
        assert!(
            s.contains("#SBATCH --output=\"/home/a b/it's $HOME `x` 100%%/taxi/logs/head-%j.out\""),
            "{s}"
        );
        let check = std::process::Command::new("bash")
            .arg("-n")
            .arg("-c")
            .arg(&s)
            .status()
            .expect("bash runs");
        assert!(check.success(), "rendered script is not valid bash");
    }

    #[test]
    fn values_that_could_add_lines_or_options_are_refused() {
        let err = render(
            &spec(),
            JobRole::Workers,
            2,
            Path::new("/home/a\n#SBATCH --x/c"),
            &["/bin/a".to_string()],
        )
        .expect_err("newline refused")
        .to_string();
        assert!(err.contains("control character"), "{err}");
        let err = render(
            &spec(),
            JobRole::Workers,
            2,
            Path::new("/home/a\"b/c"),
            &["/bin/a".to_string()],
        )
        .expect_err("double quote refused")
        .to_string();
        assert!(err.contains("double quote"), "{err}");
        let mut bad = spec();
        bad.partition = Some("debug --uid=0".into());
        let err = render(
            &bad,
            JobRole::Head,
            2,
            Path::new("/h"),
            &["/bin/a".to_string()],
        )
        .expect_err("partition refused")
        .to_string();
        assert!(err.contains("partition"), "{err}");
    }
}
