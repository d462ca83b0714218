//! The JWT that identifies the user to slurmrestd over HTTP(S): from `SLURM_JWT`, or from a
//! configured command (`scontrol token lifespan=3600`), run again before the token expires.
//! Over the unix socket nothing is needed: slurmrestd authenticates the connecting process.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::process::Command;
use tokio::sync::Mutex;

use crate::slurm::SlurmError;

/// What the token says about itself (its payload is not secret, only its signature is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    /// `sun`: the user the token was issued to.
    pub user: Option<String>,
    /// `exp` and `iat`, Unix seconds.
    pub expires: Option<u64>,
    pub issued: Option<u64>,
}

impl Token {
    /// Reads a JWT's claims. A token whose payload cannot be read is still sent as is: the
    /// server is the judge of it.
    pub fn parse(text: &str) -> Token {
        let text = text.trim().to_string();
        let claims = text
            .split('.')
            .nth(1)
            .and_then(base64url)
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        let num = |k: &str| claims.as_ref().and_then(|c| c.get(k)?.as_u64());
        Token {
            user: claims
                .as_ref()
                .and_then(|c| c.get("sun")?.as_str().map(String::from)),
            expires: num("exp"),
            issued: num("iat"),
            text,
        }
    }

    /// Whether the token should be replaced now: expired, or within a tenth of its lifetime
    /// (at least 30 s) of expiring, so a request never races its expiry.
    pub fn needs_renewal(&self, now: u64) -> bool {
        let Some(exp) = self.expires else {
            return false;
        };
        let lifetime = self.issued.map_or(0, |iat| exp.saturating_sub(iat));
        let margin = (lifetime / 10).max(30);
        now + margin >= exp
    }
}

/// Where tokens come from.
#[derive(Debug)]
pub enum TokenSource {
    /// `SLURM_JWT`, read once: when it expires the user must get a new one.
    Fixed(Token),
    /// A shell command printing `SLURM_JWT=…` (or the bare token), run when needed.
    Command {
        command: String,
        timeout: Duration,
        current: Mutex<Option<Token>>,
    },
    /// Neither: over HTTP(S) every call says how to provide one.
    Missing,
}

impl TokenSource {
    /// The configured command wins over `SLURM_JWT`: it can renew.
    pub fn new(command: &str, env_token: Option<String>, timeout: Duration) -> TokenSource {
        if !command.trim().is_empty() {
            TokenSource::Command {
                command: command.trim().to_string(),
                timeout,
                current: Mutex::new(None),
            }
        } else if let Some(t) = env_token.filter(|t| !t.trim().is_empty()) {
            TokenSource::Fixed(Token::parse(&t))
        } else {
            TokenSource::Missing
        }
    }

    /// A token good for the next request. `stale`: the server refused the last one.
    pub async fn token(&self, url: &str, stale: bool) -> Result<Token, SlurmError> {
        match self {
            TokenSource::Missing => Err(SlurmError::RestAuth {
                url: url.to_string(),
                detail: "no token: export SLURM_JWT=… (from `scontrol token lifespan=…`) or set [slurm] token_command".into(),
            }),
            TokenSource::Fixed(token) => {
                if token.expires.is_some_and(|e| e <= now()) {
                    return Err(SlurmError::RestAuth {
                        url: url.to_string(),
                        detail: format!(
                            "the token in SLURM_JWT expired {} s ago: get a new one (scontrol token lifespan=…) or set [slurm] token_command so corral renews it",
                            now().saturating_sub(token.expires.unwrap_or_default())
                        ),
                    });
                }
                Ok(token.clone())
            }
            TokenSource::Command {
                command,
                timeout,
                current,
            } => {
                let mut held = current.lock().await;
                if let Some(t) = held.as_ref().filter(|t| !stale && !t.needs_renewal(now())) {
                    return Ok(t.clone());
                }
                let fresh = run_token_command(command, *timeout, url).await?;
                *held = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    pub fn renewable(&self) -> bool {
        matches!(self, TokenSource::Command { .. })
    }
}

async fn run_token_command(
    command: &str,
    timeout: Duration,
    url: &str,
) -> Result<Token, SlurmError> {
    let failed = |detail: String| SlurmError::RestAuth {
        url: url.to_string(),
        detail: format!("[slurm] token_command `{command}` {detail}"),
    };
    let run = Command::new("sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(timeout, run).await {
        Err(_) => return Err(failed(format!("did not finish within {timeout:?}"))),
        Ok(Err(e)) => return Err(failed(format!("could not run: {e}"))),
        Ok(Ok(out)) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(failed(format!(
            "failed ({}): {}",
            out.status,
            stderr.trim()
        )));
    }
    let text = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("SLURM_JWT="))
        .map(str::to_string)
        .or_else(|| {
            stdout
                .lines()
                .map(str::trim)
                .find(|l| l.split('.').count() == 3)
                .map(str::to_string)
        });
    match text {
        Some(t) if !t.is_empty() => Ok(Token::parse(&t)),
        _ => Err(failed(format!(
            "printed no token (expected SLURM_JWT=… or the token itself): {:?}",
            stdout.trim()
        ))),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// base64url without padding (RFC 7515), as JWT segments are written.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issued by the test bed's `scontrol token lifespan=60` (SLURM 22.05.8).
    const BED_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3OTYxMDc5MzQsImlhdCI6MTc5NjEwNzg3NCwic3VuIjoicm9vdCJ9.uaqhdj_50gAQB3dSTyBUk0u2zx-LocIreEfhWFI5luo";

    #[test]
    fn claims_of_a_real_token() {
        let t = Token::parse(BED_TOKEN);
        assert_eq!(t.user.as_deref(), Some("root"));
        assert_eq!(t.issued, Some(1_796_107_874));
        assert_eq!(t.expires, Some(1_796_107_934));
        // 60 s of life: renewed in its last 30 s.
        assert!(!t.needs_renewal(1_796_107_874));
        assert!(t.needs_renewal(1_796_107_904));
        assert!(t.needs_renewal(1_796_108_000));
    }

    #[test]
    fn a_token_without_readable_claims_is_sent_as_is() {
        let t = Token::parse("opaque");
        assert_eq!((t.user, t.expires), (None, None));
        assert!(!Token::parse("opaque").needs_renewal(u64::MAX / 2));
    }

    #[tokio::test]
    async fn an_expired_slurm_jwt_says_how_to_get_a_new_one() {
        let source = TokenSource::new("", Some(BED_TOKEN.into()), Duration::from_secs(5));
        let err = source
            .token("http://h:1", false)
            .await
            .expect_err("expired long ago")
            .to_string();
        assert!(
            err.contains("expired") && err.contains("scontrol token"),
            "{err}"
        );
        let missing = TokenSource::new("", None, Duration::from_secs(5))
            .token("http://h:1", false)
            .await
            .expect_err("none")
            .to_string();
        assert!(
            missing.contains("SLURM_JWT") && missing.contains("token_command"),
            "{missing}"
        );
    }

    #[tokio::test]
    async fn a_token_command_is_run_again_when_the_server_refused_its_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let count = dir.path().join("count");
        // Prints a distinct token each run (its payload names the run).
        let cmd = format!(
            "echo x >> {c}; n=$(wc -l < {c}); echo SLURM_JWT=h.$(printf '{{\"sun\":\"u%s\"}}' $n | base64 | tr -d '=\\n' | tr '+/' '-_').s",
            c = count.display()
        );
        let source = TokenSource::new(&cmd, Some("ignored".into()), Duration::from_secs(10));
        assert!(source.renewable());
        let first = source.token("http://h:1", false).await.expect("runs");
        assert_eq!(first.user.as_deref(), Some("u1"));
        let again = source.token("http://h:1", false).await.expect("cached");
        assert_eq!(again, first, "a token without exp is kept until refused");
        let renewed = source.token("http://h:1", true).await.expect("runs again");
        assert_eq!(renewed.user.as_deref(), Some("u2"));
    }

    #[tokio::test]
    async fn a_failing_token_command_is_named() {
        let source = TokenSource::new("echo nope >&2; exit 3", None, Duration::from_secs(10));
        let err = source
            .token("http://h:1", false)
            .await
            .expect_err("fails")
            .to_string();
        assert!(
            err.contains("token_command") && err.contains("nope"),
            "{err}"
        );
    }
}
