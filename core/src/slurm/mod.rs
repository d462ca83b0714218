//! corral's SLURM client: a trait, and its implementations over the command-line tools and
//! over slurmrestd.
//!
//! - [`parse`]: parsers of 22.05's `scontrol -o`, our `squeue -o` format, `sbatch --test-only`.
//! - [`validate`]: a request checked against the partition's real limits, per field.
//! - [`reason`]: pending-reason codes in plain words.
//! - [`template`]: the job script every corral job is rendered from (`assets/cluster.sbatch`).
//! - [`lifecycle`]: check, submit, follow and cancel a cluster's jobs (`jobs.json` records them).
//! - [`cli`]: [`Slurm`] over `sbatch`, `squeue`, `scontrol`, `sinfo`, `scancel`, each with a
//!   timeout and a typed error carrying the command's stderr.
//! - [`rest`]: [`Slurm`] over slurmrestd (reqwest; a unix socket or HTTP(S) with a JWT), the
//!   API version chosen from what the server offers.
//! - [`client`]: which of the two this process uses (`[slurm] api`).
//! - `fake` (feature `testing`): an in-memory SLURM for unit tests of what drives it.

pub mod cli;
pub mod client;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod lifecycle;
pub mod parse;
pub mod reason;
pub mod rest;
pub mod template;
pub mod validate;

use std::time::Duration;

pub use cli::SlurmCli;
pub use parse::{JobDetail, Node, Partition, QueuedJob, StartEstimate};
pub use rest::SlurmRest;

use crate::model::JobId;

/// A SLURM command that did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(
        "{program} not found (is SLURM installed here? set [slurm] bin_dir in ~/.config/corral/config.toml)"
    )]
    NotFound { program: String },
    #[error(
        "`{command}` did not answer within {timeout:?}; the SLURM controller may be overloaded"
    )]
    Timeout { command: String, timeout: Duration },
    #[error(
        "the SLURM controller is not reachable (`{command}`: {stderr}); try again in a minute, or ask your site whether slurmctld is up"
    )]
    ControllerDown { command: String, stderr: String },
    #[error(
        "SLURM is not configured for this shell (`{command}`: {stderr}); run corral on a login node, set SLURM_CONF, or use --local for a cluster on this machine"
    )]
    NotConfigured { command: String, stderr: String },
    #[error("`{command}` failed (exit {code}): {stderr}")]
    Failed {
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("`{command}` printed something corral cannot read: {output:?}")]
    Parse { command: String, output: String },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error(
        "slurmrestd's socket {path} does not exist; start slurmrestd there (or ask your site where it listens) and set [slurm] rest_url (CORRAL_SLURM_REST_URL) to unix://PATH, or use api = \"cli\""
    )]
    RestNoSocket { path: std::path::PathBuf },
    #[error(
        "slurmrestd at {url} is not reachable ({detail}); check that it runs and that [slurm] rest_url (CORRAL_SLURM_REST_URL) names it"
    )]
    RestUnreachable { url: String, detail: String },
    #[error("slurmrestd at {url} did not accept corral's credentials: {detail}")]
    RestAuth { url: String, detail: String },
    #[error(
        "slurmrestd at {url} offers API versions {offered}, none of which corral knows ({known}); ask your site to enable one (slurmrestd -s), or use api = \"cli\""
    )]
    RestNoVersion {
        url: String,
        offered: String,
        known: String,
    },
    #[error("not possible over slurmrestd: {what}")]
    RestUnsupported { what: String },
    #[error("[slurm] configuration for slurmrestd: {detail}")]
    RestConfig { detail: String },
}

impl SlurmError {
    /// Worth retrying with backoff (the controller may come back), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SlurmError::Timeout { .. }
                | SlurmError::ControllerDown { .. }
                | SlurmError::RestUnreachable { .. }
        )
    }
}

/// Extra `sbatch` options besides the script itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// Options given on the command line (they override `#SBATCH` lines of the script).
    pub args: Vec<String>,
    /// Working directory of the job (and of sbatch).
    pub workdir: Option<std::path::PathBuf>,
}

/// What corral needs from SLURM. One implementation talks to the real command-line tools; a
/// second one (slurmrestd) plugs in here without touching the backends above it, and tests
/// use fakes to drive the lifecycle without a cluster. Every call is async and bounded by
/// the implementation's timeout.
#[async_trait::async_trait]
pub trait Slurm: Send + Sync {
    async fn partitions(&self) -> Result<Vec<Partition>, SlurmError>;
    async fn nodes(&self) -> Result<Vec<Node>, SlurmError>;
    /// `sbatch --parsable`, the script on stdin.
    async fn submit(&self, script: &str, opts: &SubmitOptions) -> Result<JobId, SlurmError>;
    /// `sbatch --test-only`: when the job would start, without submitting it.
    async fn estimate(
        &self,
        script: &str,
        opts: &SubmitOptions,
    ) -> Result<StartEstimate, SlurmError>;
    /// This user's jobs (`squeue --me`), one call for all of the user's clusters.
    async fn my_jobs(&self) -> Result<Vec<QueuedJob>, SlurmError>;
    /// `scontrol show job -o`; `None` once SLURM has forgotten the job (after MinJobAge).
    async fn job(&self, id: JobId) -> Result<Option<JobDetail>, SlurmError>;
    /// `scancel` (with `--signal` when given). Cancelling a finished job is not an error.
    async fn cancel(&self, ids: &[JobId], signal: Option<&str>) -> Result<(), SlurmError>;
    /// How this client reaches SLURM, in words (`corral status`, the TUI's header).
    fn describe(&self) -> String {
        "SLURM's command-line tools".into()
    }
}
