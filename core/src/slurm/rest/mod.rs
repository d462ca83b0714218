//! [`Slurm`] over slurmrestd: the same questions as the command-line client, asked over
//! HTTP/1.1 with reqwest, with the same typed errors.
//!
//! - [`endpoint`]: `unix:///path` or `http(s)://host:port`.
//! - [`auth`]: the JWT for HTTP(S) (`SLURM_JWT` or `[slurm] token_command`, renewed).
//! - `http`: requests, credentials, transport failures in words.
//! - [`versions`]: which API versions corral knows, and the newest one the server offers.
//! - [`request`]: `#SBATCH` lines and sbatch options → a job description.
//! - [`decode`]: responses of either shape → corral's SLURM types, tolerantly.

pub mod auth;
pub mod decode;
pub mod endpoint;
mod http;
pub mod request;
pub mod versions;

use std::time::Duration;

use reqwest::Method;
use tokio::sync::OnceCell;

use self::auth::TokenSource;
use self::decode::{Envelope, Owner};
use self::endpoint::Endpoint;
use self::http::{Http, Reply};
use self::request::JobRequest;
use self::versions::{ApiVersion, Family};
use super::parse::{JobDetail, Node, Partition, QueuedJob, StartEstimate};
use super::{Slurm, SlurmError, SubmitOptions};
use crate::config::SlurmConfig;
use crate::model::JobId;

/// SLURM's "Invalid job id specified" and "Job/step already completing or completed".
const INVALID_JOB_ID: i64 = 2017;
const ALREADY_DONE: i64 = 2021;

/// slurmrestd as configured for this site.
pub struct SlurmRest {
    /// A configuration that cannot work is reported by every call (local clusters, which
    /// never ask SLURM, are not blocked by it).
    http: Result<Http, String>,
    qos: Option<String>,
    version: OnceCell<ApiVersion>,
}

impl SlurmRest {
    pub fn new(config: &SlurmConfig) -> SlurmRest {
        SlurmRest::with_env_token(config, std::env::var("SLURM_JWT").ok())
    }

    /// `env_token`: what `SLURM_JWT` holds (tests pass their own).
    pub fn with_env_token(config: &SlurmConfig, env_token: Option<String>) -> SlurmRest {
        let timeout = Duration::from_secs(config.command_timeout_secs.max(1));
        let http = if config.rest_url.trim().is_empty() {
            Err("rest_url is not set; set it (or CORRAL_SLURM_REST_URL) to unix:///path/slurmrestd.sock or http(s)://host:port".to_string())
        } else if !config.extra_args.is_empty() {
            Err(format!(
                "extra_args {:?} are command-line flags and mean nothing to slurmrestd; remove them or use api = \"cli\"",
                config.extra_args
            ))
        } else {
            Endpoint::parse(&config.rest_url).and_then(|endpoint| {
                let tokens = TokenSource::new(&config.token_command, env_token, timeout);
                Http::new(endpoint, timeout, tokens)
            })
        };
        SlurmRest {
            http,
            qos: (!config.qos.is_empty()).then(|| config.qos.clone()),
            version: OnceCell::new(),
        }
    }

    fn http(&self) -> Result<&Http, SlurmError> {
        self.http.as_ref().map_err(|detail| SlurmError::RestConfig {
            detail: detail.clone(),
        })
    }

    /// The API version in use: the newest one the server offers that corral knows, asked
    /// once per process.
    pub async fn version(&self) -> Result<ApiVersion, SlurmError> {
        let http = self.http()?;
        self.version
            .get_or_try_init(|| async {
                let mut offered = Vec::new();
                for path in ["/openapi/v3", "/openapi"] {
                    let reply = http.call(Method::GET, path, None).await?;
                    if reply.ok() {
                        offered = versions::offered(&reply.json);
                        break;
                    }
                }
                versions::choose(&offered).ok_or_else(|| SlurmError::RestNoVersion {
                    url: http.endpoint.to_string(),
                    offered: if offered.is_empty() {
                        "none (its OpenAPI document lists no /slurm/ paths)".into()
                    } else {
                        offered
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    known: versions::known_range(),
                })
            })
            .await
            .copied()
    }

    fn where_and_which(&self) -> String {
        match (&self.http, self.version.get()) {
            (Ok(h), Some(v)) => format!("slurmrestd {} ({v})", h.endpoint),
            (Ok(h), None) => format!("slurmrestd {}", h.endpoint),
            (Err(_), _) => "slurmrestd (not configured)".into(),
        }
    }

    /// `GET`/`POST`/`DELETE` of `rel` under the version's prefix. data_parser versions
    /// name their collections with a trailing slash.
    async fn call(
        &self,
        method: Method,
        rel: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(Reply, ApiVersion, String), SlurmError> {
        let version = self.version().await?;
        let collection = matches!(rel, "jobs" | "nodes" | "partitions");
        let slash = if collection && version.family() == Family::DataParser {
            "/"
        } else {
            ""
        };
        let path = format!("{}/{rel}{slash}", version.prefix());
        let command = format!("{method} {path}");
        let reply = self.http()?.call(method, &path, body).await?;
        Ok((reply, version, command))
    }

    /// A document that decodes, or the error slurmrestd reported instead.
    fn answer<'r>(
        &self,
        reply: &'r Reply,
        command: &str,
    ) -> Result<&'r serde_json::Value, SlurmError> {
        if reply.ok() && reply.json.is_object() {
            Ok(&reply.json)
        } else {
            Err(self.failure(reply, command))
        }
    }

    /// slurmrestd's `errors` as the typed error the command-line client would give.
    fn failure(&self, reply: &Reply, command: &str) -> SlurmError {
        let envelope: Envelope = serde::Deserialize::deserialize(&reply.json).unwrap_or_default();
        let errors = &envelope.errors;
        if errors.is_empty() {
            if reply.ok() {
                return SlurmError::Parse {
                    command: command.to_string(),
                    output: reply.text.chars().take(400).collect(),
                };
            }
            return SlurmError::Failed {
                command: command.to_string(),
                code: i32::from(reply.status),
                stderr: reply.text.trim().chars().take(400).collect(),
            };
        }
        let words = errors
            .iter()
            .map(|e| e.words())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let numbers: Vec<i64> = errors.iter().filter_map(|e| e.error_number).collect();
        if super::cli::is_controller_down(&words)
            || numbers.iter().any(|n| (1000..2000).contains(n))
        {
            return SlurmError::ControllerDown {
                command: command.to_string(),
                stderr: words,
            };
        }
        let uses_token = self.http.as_ref().is_ok_and(Http::uses_token);
        if uses_token && numbers.iter().all(|n| *n == -1) && words.contains("Unspecified error") {
            // 22.05 answers a token slurmctld rejects (expired, wrong key) with exactly this.
            return SlurmError::RestAuth {
                url: self
                    .http
                    .as_ref()
                    .map(|h| h.endpoint.to_string())
                    .unwrap_or_default(),
                detail: format!(
                    "`{command}` was refused without a reason ({words}), which is how SLURM 22.05 answers a token slurmctld does not accept; get a new one (export SLURM_JWT=… from `scontrol token lifespan=…`) or set [slurm] token_command"
                ),
            };
        }
        SlurmError::Failed {
            command: command.to_string(),
            code: numbers
                .first()
                .and_then(|n| i32::try_from(*n).ok())
                .unwrap_or(i32::from(reply.status)),
            stderr: words,
        }
    }

    fn decoded<T>(result: Result<T, String>, command: &str) -> Result<T, SlurmError> {
        result.map_err(|e| SlurmError::Parse {
            command: command.to_string(),
            output: e,
        })
    }

    fn has_error(reply: &Reply, number: i64, text: &str) -> bool {
        let envelope: Envelope = serde::Deserialize::deserialize(&reply.json).unwrap_or_default();
        envelope
            .errors
            .iter()
            .any(|e| e.error_number == Some(number) || e.words().contains(text))
    }
}

#[async_trait::async_trait]
impl Slurm for SlurmRest {
    async fn partitions(&self) -> Result<Vec<Partition>, SlurmError> {
        let (reply, version, command) = self.call(Method::GET, "partitions", None).await?;
        let doc = self.answer(&reply, &command)?;
        Self::decoded(decode::partitions(doc, version.family()), &command)
    }

    async fn nodes(&self) -> Result<Vec<Node>, SlurmError> {
        let (reply, _, command) = self.call(Method::GET, "nodes", None).await?;
        let doc = self.answer(&reply, &command)?;
        Self::decoded(decode::nodes(doc), &command)
    }

    async fn submit(&self, script: &str, opts: &SubmitOptions) -> Result<JobId, SlurmError> {
        let req = JobRequest::from_sbatch(script, opts, self.qos.as_deref())?;
        let version = self.version().await?;
        let workdir = match &opts.workdir {
            Some(d) => d.clone(),
            None => std::env::current_dir().map_err(|source| SlurmError::Spawn {
                command: "submit (working directory)".into(),
                source,
            })?,
        };
        let body = req.body(
            script,
            version,
            &workdir,
            &request::job_environment(&workdir),
        );
        let (reply, _, command) = self.call(Method::POST, "job/submit", Some(&body)).await?;
        // A job that was accepted may come with errors that are notes (a held job's).
        match decode::submitted(&reply.json) {
            Some(id) if reply.ok() => Ok(id),
            _ => Err(self.failure(&reply, &command)),
        }
    }

    async fn estimate(&self, _: &str, _: &SubmitOptions) -> Result<StartEstimate, SlurmError> {
        Err(SlurmError::RestUnsupported {
            what: "a start estimate (sbatch --test-only): slurmrestd has no such call".into(),
        })
    }

    async fn my_jobs(&self) -> Result<Vec<QueuedJob>, SlurmError> {
        let (reply, _, command) = self.call(Method::GET, "jobs", None).await?;
        let doc = self.answer(&reply, &command)?;
        let owner = match &reply.user {
            Some(name) => Owner::Name(name.clone()),
            None => Owner::Uid(rustix::process::geteuid().as_raw()),
        };
        Self::decoded(decode::my_jobs(doc, &owner), &command)
    }

    async fn job(&self, id: JobId) -> Result<Option<JobDetail>, SlurmError> {
        let (reply, _, command) = self.call(Method::GET, &format!("job/{id}"), None).await?;
        if !reply.ok() && Self::has_error(&reply, INVALID_JOB_ID, "Invalid job id") {
            return Ok(None);
        }
        let doc = self.answer(&reply, &command)?;
        Self::decoded(decode::job(doc, id), &command)
    }

    async fn cancel(&self, ids: &[JobId], signal: Option<&str>) -> Result<(), SlurmError> {
        if ids.is_empty() {
            return Ok(());
        }
        let version = self.version().await?;
        let query = match signal {
            None => String::new(),
            Some(s) => match (s.strip_prefix("B:"), version.family()) {
                (None, _) => format!("?signal={}", plain_signal(s)?),
                (Some(sig), Family::DataParser) => {
                    format!("?signal={}&flags=BATCH_JOB", plain_signal(sig)?)
                }
                (Some(_), Family::Plugin) => {
                    return Err(SlurmError::RestUnsupported {
                        what: format!(
                            "signalling only the batch shell ({s}) with slurmrestd {version}"
                        ),
                    });
                }
            },
        };
        for id in ids {
            let (reply, _, command) = self
                .call(Method::DELETE, &format!("job/{id}{query}"), None)
                .await?;
            if reply.ok()
                || Self::has_error(&reply, INVALID_JOB_ID, "Invalid job id")
                || Self::has_error(&reply, ALREADY_DONE, "already completing or completed")
            {
                continue;
            }
            return Err(self.failure(&reply, &command));
        }
        Ok(())
    }

    /// Where slurmrestd is and which API version is in use.
    fn describe(&self) -> String {
        self.where_and_which()
    }
}

/// A signal name or number that can go into a query string as is.
fn plain_signal(s: &str) -> Result<&str, SlurmError> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(s)
    } else {
        Err(SlurmError::RestUnsupported {
            what: format!("signal {s:?}: use a name such as USR1 or a number"),
        })
    }
}

#[cfg(test)]
mod tests;
