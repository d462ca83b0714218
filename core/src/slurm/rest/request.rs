//! A job for slurmrestd from what `sbatch` would have been given: the script's `#SBATCH`
//! lines and the command-line options. slurmrestd does not read `#SBATCH` lines, so they are
//! read here into the job description, in the shape of the API version in use. An option
//! corral cannot express over REST is refused with its name, never dropped.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::versions::{ApiVersion, Family};
use crate::model::Walltime;
use crate::slurm::{SlurmError, SubmitOptions};

/// The sbatch options corral's jobs use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobRequest {
    pub name: Option<String>,
    pub tasks: Option<u64>,
    pub cpus_per_task: Option<u64>,
    pub time_minutes: Option<u64>,
    pub output: Option<String>,
    pub error: Option<String>,
    /// `--signal=[B:]SIG@SECS`.
    pub warning: Option<Warning>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub mem_per_cpu_mb: Option<u64>,
    pub mem_per_node_mb: Option<u64>,
    /// `--no-kill`: a node's failure does not end the job.
    pub no_kill: bool,
    /// `--no-requeue`.
    pub no_requeue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `B:`: only the batch shell is signalled.
    pub batch_only: bool,
    pub signal: String,
    pub secs: u64,
}

impl JobRequest {
    /// Reads `#SBATCH` lines (up to the first command, as sbatch does), then `opts.args`
    /// (which override them, as on sbatch's command line), then the site's `qos`.
    pub fn from_sbatch(
        script: &str,
        opts: &SubmitOptions,
        qos: Option<&str>,
    ) -> Result<JobRequest, SlurmError> {
        let mut req = JobRequest::default();
        for line in script.lines().skip_while(|l| l.starts_with("#!")) {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some(rest) = line.strip_prefix('#') else {
                break;
            };
            if let Some(option) = rest.strip_prefix("SBATCH") {
                for word in sbatch_words(option) {
                    req.apply(&word, None)?;
                }
            }
        }
        let mut args = opts.args.iter().peekable();
        while let Some(arg) = args.next() {
            let flag = matches!(arg.as_str(), "--no-kill" | "-k" | "--no-requeue");
            let takes_value = !flag && !arg.contains('=');
            let value = if takes_value { args.next() } else { None };
            req.apply(arg, value.map(String::as_str))?;
        }
        if let Some(q) = qos {
            req.qos = Some(q.to_string());
        }
        Ok(req)
    }

    fn apply(&mut self, word: &str, next: Option<&str>) -> Result<(), SlurmError> {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, next),
        };
        let unsupported = |why: &str| SlurmError::RestUnsupported {
            what: format!("sbatch option {word}: {why}"),
        };
        match key {
            "--no-kill" | "-k" => {
                self.no_kill = true;
                return Ok(());
            }
            "--no-requeue" => {
                self.no_requeue = true;
                return Ok(());
            }
            _ => {}
        }
        let value = value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| unsupported("it needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| unsupported("not a whole number"))
        };
        match key {
            "--job-name" | "-J" => self.name = Some(value.into()),
            "--ntasks" | "-n" => self.tasks = Some(num(value)?),
            "--cpus-per-task" | "-c" => self.cpus_per_task = Some(num(value)?),
            "--time" | "-t" => {
                let w: Walltime = value.parse().map_err(|e: String| unsupported(&e))?;
                self.time_minutes = Some(w.minutes);
            }
            "--output" | "-o" => self.output = Some(value.into()),
            "--error" | "-e" => self.error = Some(value.into()),
            "--signal" => {
                self.warning =
                    Some(warning(value).ok_or_else(|| unsupported("use [B:]SIGNAL@SECONDS"))?)
            }
            "--partition" | "-p" => self.partition = Some(value.into()),
            "--account" | "-A" => self.account = Some(value.into()),
            "--qos" | "-q" => self.qos = Some(value.into()),
            "--mem-per-cpu" => {
                self.mem_per_cpu_mb = Some(
                    megabytes(value)
                        .ok_or_else(|| unsupported("use a size such as 2048M or 4G"))?,
                )
            }
            "--mem" => {
                self.mem_per_node_mb = Some(
                    megabytes(value)
                        .ok_or_else(|| unsupported("use a size such as 2048M or 4G"))?,
                )
            }
            _ => {
                return Err(unsupported(
                    "corral does not pass it to slurmrestd; use api = \"cli\" for it",
                ));
            }
        }
        Ok(())
    }

    /// The `POST …/job/submit` body for `version`. `env`: the job's environment (sbatch's
    /// default is the submitter's whole environment; slurmrestd requires one).
    pub fn body(
        &self,
        script: &str,
        version: ApiVersion,
        workdir: &Path,
        env: &[(String, String)],
    ) -> Value {
        let family = version.family();
        let mut job = Map::new();
        let mut put = |k: &str, v: Value| {
            job.insert(k.to_string(), v);
        };
        // data_parser's optional numbers are {"set", "infinite", "number"}.
        let limit = |n: u64| match family {
            Family::Plugin => json!(n),
            Family::DataParser => json!({"set": true, "infinite": false, "number": n}),
        };
        if let Some(n) = &self.name {
            put("name", json!(n));
        }
        if let Some(n) = self.tasks {
            put("tasks", json!(n));
        }
        if let Some(n) = self.cpus_per_task {
            put("cpus_per_task", json!(n));
        }
        if let Some(m) = self.time_minutes {
            put("time_limit", limit(m));
        }
        // v0.0.36 spelled these `standard_out`/`standard_in`.
        let (out_key, err_key) = if version.0 <= 36 {
            ("standard_out", "standard_error")
        } else {
            ("standard_output", "standard_error")
        };
        if let Some(o) = &self.output {
            put(out_key, json!(o));
        }
        if let Some(e) = &self.error {
            put(err_key, json!(e));
        }
        for (key, value) in [
            ("partition", &self.partition),
            ("account", &self.account),
            ("qos", &self.qos),
        ] {
            if let Some(v) = value {
                put(key, json!(v));
            }
        }
        if let Some(m) = self.mem_per_cpu_mb {
            put("memory_per_cpu", limit(m));
        }
        if let Some(m) = self.mem_per_node_mb {
            put("memory_per_node", limit(m));
        }
        if let Some(w) = &self.warning {
            match family {
                Family::DataParser => {
                    if w.batch_only {
                        put("kill_warning_flags", json!(["BATCH_JOB"]));
                    }
                    put("kill_warning_signal", json!(w.signal));
                    put("kill_warning_delay", limit(w.secs));
                }
                // 22.05's slurmrestd honours `B:` only when it is sbatch (it is not), so a
                // batch-shell warning cannot be asked for; signalling the job's steps
                // instead would reach the workers, not the coordinator. The job runs
                // without the warning (its walltime is still known from time_limit).
                Family::Plugin if w.batch_only => {}
                Family::Plugin => put("signal", json!(format!("{}@{}", w.signal, w.secs))),
            }
        }
        // 22.05 reads these as sbatch's options: `no_kill` takes "set" (a boolean is
        // refused), and its `requeue` key turns requeueing on whatever its value, so
        // `no_requeue` is what turns it off.
        if self.no_kill {
            match family {
                Family::Plugin => put("no_kill", json!("set")),
                Family::DataParser => put("kill_on_node_fail", json!(false)),
            }
        }
        if self.no_requeue {
            match family {
                Family::Plugin => put("no_requeue", json!(true)),
                Family::DataParser => put("requeue", json!(false)),
            }
        }
        put(
            "current_working_directory",
            json!(workdir.display().to_string()),
        );
        put(
            "environment",
            match family {
                Family::Plugin => {
                    Value::Object(env.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
                }
                Family::DataParser => {
                    json!(
                        env.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                    )
                }
            },
        );
        json!({"script": script, "job": Value::Object(job)})
    }
}

/// The words of an `#SBATCH` line as sbatch reads them: split at blanks outside quotes, the
/// quotes removed, up to a `#` that starts a comment.
fn sbatch_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn warning(v: &str) -> Option<Warning> {
    let (batch_only, rest) = match v.strip_prefix("B:") {
        Some(r) => (true, r),
        None => (false, v),
    };
    let (sig, secs) = rest.split_once('@').unwrap_or((rest, "60"));
    let signal = sig.trim_start_matches("SIG");
    if signal.is_empty() || !signal.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(Warning {
        batch_only,
        signal: signal.to_string(),
        secs: secs.parse().ok()?,
    })
}

/// `2048M`, `4G`, `1T`, `512` (megabytes, sbatch's default unit) → megabytes.
fn megabytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = digits.parse().ok()?;
    match unit.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" => Some(n),
        "G" | "GB" => n.checked_mul(1024),
        "T" | "TB" => n.checked_mul(1024 * 1024),
        "K" | "KB" => Some(n.div_ceil(1024)),
        _ => None,
    }
}

/// The job's environment: this process's, as sbatch exports it by default, without
/// `SLURM_JWT` (a credential that has no business in a job), and with what sbatch adds:
/// `SLURM_SUBMIT_DIR` and `SLURM_SUBMIT_HOST` (the coordinator picks the address that
/// reaches the submitting host, where clients are).
pub fn job_environment(workdir: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "SLURM_JWT" | "SLURM_SUBMIT_DIR" | "SLURM_SUBMIT_HOST"
            )
        })
        .collect();
    env.push(("SLURM_SUBMIT_DIR".into(), workdir.display().to_string()));
    env.push(("SLURM_SUBMIT_HOST".into(), crate::cluster_dir::hostname()));
    env.sort();
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClusterSpec;
    use crate::slurm::template::{self, JobRole};

    fn spec() -> ClusterSpec {
        ClusterSpec {
            name: "taxi".into(),
            workers: 4,
            cores_per_worker: 2,
            mem_per_worker_mb: Some(4096),
            walltime: Walltime::from_days(1),
            partition: Some("debug".into()),
            account: Some("lab".into()),
            supervise: Default::default(),
            dask: None,
        }
    }

    fn rendered() -> String {
        template::render(
            &spec(),
            JobRole::Head,
            4,
            Path::new("/h/c/taxi"),
            &["/bin/corral-agent".to_string()],
        )
        .expect("renders")
    }

    #[test]
    fn the_rendered_template_becomes_a_job_description() {
        let req = JobRequest::from_sbatch(&rendered(), &SubmitOptions::default(), Some("long"))
            .expect("every option of the template is known");
        assert_eq!(req.name.as_deref(), Some("corral-taxi"));
        assert_eq!((req.tasks, req.cpus_per_task), (Some(4), Some(2)));
        assert_eq!(req.time_minutes, Some(24 * 60));
        assert_eq!(req.output.as_deref(), Some("/h/c/taxi/logs/head-%j.out"));
        assert_eq!(req.error.as_deref(), Some("/h/c/taxi/logs/head-%j.err"));
        assert_eq!(
            req.warning,
            Some(Warning {
                batch_only: true,
                signal: "USR1".into(),
                secs: 300
            })
        );
        assert_eq!(req.partition.as_deref(), Some("debug"));
        assert_eq!(req.account.as_deref(), Some("lab"));
        assert_eq!(req.qos.as_deref(), Some("long"));
        assert_eq!(req.mem_per_cpu_mb, Some(2048));
        assert!(req.no_kill && req.no_requeue);
    }

    #[test]
    fn quoted_paths_keep_their_spaces() {
        let script = template::render(
            &spec(),
            JobRole::Workers,
            2,
            Path::new("/home/a b/c"),
            &["/bin/corral-agent".to_string()],
        )
        .expect("renders");
        let req = JobRequest::from_sbatch(&script, &SubmitOptions::default(), None).expect("known");
        assert_eq!(
            req.output.as_deref(),
            Some("/home/a b/c/logs/workers-%j.out")
        );
        assert_eq!(
            sbatch_words(r#" --output="/a b/%%x" --x='y z'  # a comment"#),
            vec!["--output=/a b/%%x", "--x=y z"]
        );
    }

    #[test]
    fn command_line_options_override_the_script() {
        let opts = SubmitOptions {
            args: vec!["--partition".into(), "small".into(), "--time=30".into()],
            workdir: None,
        };
        let req = JobRequest::from_sbatch(&rendered(), &opts, None).expect("known");
        assert_eq!(req.partition.as_deref(), Some("small"));
        assert_eq!(req.time_minutes, Some(30));
    }

    #[test]
    fn an_option_rest_cannot_carry_is_refused_by_name() {
        let err = JobRequest::from_sbatch(
            "#!/bin/sh\n#SBATCH --gres=gpu:1\ntrue\n",
            &SubmitOptions::default(),
            None,
        )
        .expect_err("refused")
        .to_string();
        assert!(
            err.contains("--gres=gpu:1") && err.contains("api = \"cli\""),
            "{err}"
        );
        // A `#SBATCH` after the first command is a comment to sbatch, and here.
        let req = JobRequest::from_sbatch(
            "#!/bin/sh\ntrue\n#SBATCH --gres=gpu:1\n",
            &SubmitOptions::default(),
            None,
        )
        .expect("ignored like sbatch");
        assert_eq!(req, JobRequest::default());
    }

    #[test]
    fn bodies_in_each_shape() {
        let req =
            JobRequest::from_sbatch(&rendered(), &SubmitOptions::default(), None).expect("known");
        let env = vec![("PATH".to_string(), "/usr/bin".to_string())];
        let old = req.body("S", ApiVersion(38), Path::new("/h/c/taxi"), &env);
        assert_eq!(old["script"], "S");
        assert_eq!(old["job"]["time_limit"], 1440);
        assert_eq!(old["job"]["environment"], json!({"PATH": "/usr/bin"}));
        assert_eq!(old["job"]["memory_per_cpu"], 2048);
        assert_eq!(old["job"]["current_working_directory"], "/h/c/taxi");
        assert!(
            old["job"].get("signal").is_none(),
            "22.05 cannot signal the batch shell"
        );
        let new = req.body("S", ApiVersion(42), Path::new("/h/c/taxi"), &env);
        assert_eq!(
            new["job"]["time_limit"],
            json!({"set": true, "infinite": false, "number": 1440})
        );
        assert_eq!(new["job"]["environment"], json!(["PATH=/usr/bin"]));
        assert_eq!(new["job"]["kill_warning_flags"], json!(["BATCH_JOB"]));
        assert_eq!(new["job"]["kill_warning_signal"], "USR1");
        assert_eq!(new["job"]["kill_warning_delay"]["number"], 300);
        assert_eq!(new["job"]["standard_output"], "/h/c/taxi/logs/head-%j.out");
        assert_eq!(
            (&new["job"]["kill_on_node_fail"], &new["job"]["requeue"]),
            (&json!(false), &json!(false))
        );
        let oldest = req.body("S", ApiVersion(36), Path::new("/x"), &env);
        assert_eq!(oldest["job"]["standard_out"], "/h/c/taxi/logs/head-%j.out");
    }

    #[test]
    fn sizes_and_signals() {
        assert_eq!(megabytes("4G"), Some(4096));
        assert_eq!(megabytes("512"), Some(512));
        assert_eq!(megabytes("x"), None);
        assert_eq!(
            warning("USR1@30").map(|w| (w.batch_only, w.secs)),
            Some((false, 30))
        );
        assert_eq!(
            warning("B:SIGUSR1@300").map(|w| w.signal),
            Some("USR1".into())
        );
        let env = job_environment(Path::new("/w"));
        assert!(env.iter().all(|(k, _)| k != "SLURM_JWT"));
        assert!(env.contains(&("SLURM_SUBMIT_DIR".into(), "/w".into())));
        assert!(
            env.iter()
                .any(|(k, v)| k == "SLURM_SUBMIT_HOST" && !v.is_empty())
        );
    }
}
