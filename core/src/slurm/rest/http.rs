//! Requests to slurmrestd with reqwest, over its unix socket or HTTP(S): the credentials, the
//! timeout, and transport failures turned into [`SlurmError`]s that say what to do.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderValue};

use super::auth::TokenSource;
use super::endpoint::Endpoint;
use crate::slurm::SlurmError;

/// An answer: its HTTP status and its body (JSON when it parses, `Null` otherwise).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub json: serde_json::Value,
    pub text: String,
    /// Over HTTP, the user the request was made as (the token's).
    pub user: Option<String>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub struct Http {
    client: reqwest::Client,
    pub endpoint: Endpoint,
    timeout: Duration,
    tokens: TokenSource,
}

impl Http {
    pub fn new(endpoint: Endpoint, timeout: Duration, tokens: TokenSource) -> Result<Http, String> {
        // reqwest sets up TLS even for the socket; it gets corral's (ring) configuration.
        let builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .user_agent(concat!("corral/", env!("CARGO_PKG_VERSION")));
        let builder = match &endpoint {
            Endpoint::Unix(path) => builder.unix_socket(path.as_path()),
            Endpoint::Http(_) => builder,
        };
        let client = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Http {
            client,
            endpoint,
            timeout,
            tokens,
        })
    }

    pub fn uses_token(&self) -> bool {
        matches!(self.endpoint, Endpoint::Http(_))
    }

    /// `METHOD path` with `body` as JSON. Over HTTP a refused token from a command is renewed
    /// and the request made once more.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, SlurmError> {
        let first = self.send(method.clone(), path, body, false).await?;
        if matches!(first.status, 401 | 403) && self.tokens.renewable() {
            return self.send(method, path, body, true).await;
        }
        Ok(first)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        stale_token: bool,
    ) -> Result<Reply, SlurmError> {
        let command = format!("{method} {}", self.endpoint.url(path));
        let mut req = self.client.request(method, self.endpoint.url(path));
        let mut user = None;
        if self.uses_token() {
            let url = self.endpoint.to_string();
            let token = self.tokens.token(&url, stale_token).await?;
            let name = token
                .user
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .or_else(|| std::env::var("LOGNAME").ok())
                .unwrap_or_default();
            let header = |v: &str| {
                HeaderValue::from_str(v).map_err(|_| SlurmError::RestAuth {
                    url: url.clone(),
                    detail: "the token or user name contains characters HTTP cannot carry; check SLURM_JWT or [slurm] token_command".into(),
                })
            };
            req = req
                .header("X-SLURM-USER-NAME", header(&name)?)
                .header("X-SLURM-USER-TOKEN", header(&token.text)?);
            user = Some(name);
        }
        if let Some(b) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| self.transport(&command, &e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport(&command, &e))?;
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if matches!(status, 401 | 403) {
            return Err(SlurmError::RestAuth {
                url: self.endpoint.to_string(),
                detail: format!(
                    "HTTP {status} {}; get a new token (export SLURM_JWT=… from `scontrol token lifespan=…`) or set [slurm] token_command so corral renews it",
                    text.trim().lines().next().unwrap_or_default()
                ),
            });
        }
        Ok(Reply {
            status,
            json,
            text,
            user,
        })
    }

    fn transport(&self, command: &str, e: &reqwest::Error) -> SlurmError {
        if e.is_timeout() {
            return SlurmError::Timeout {
                command: command.to_string(),
                timeout: self.timeout,
            };
        }
        if let Endpoint::Unix(path) = &self.endpoint
            && !path.exists()
        {
            return SlurmError::RestNoSocket { path: path.clone() };
        }
        SlurmError::RestUnreachable {
            url: self.endpoint.to_string(),
            detail: innermost(e),
        }
    }
}

/// The root cause of a transport error, in its own words ("Connection refused …").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// rustls with the ring provider (as the rest of corral) and the system's roots.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map(|b| b.with_no_client_auth())
        .map_err(|e| format!("cannot set up TLS: {e}"))
}
