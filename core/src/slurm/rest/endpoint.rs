//! Where slurmrestd listens: `unix:///path/slurmrestd.sock` (local authentication: slurmrestd
//! runs the request as the user who connected) or `http(s)://host:port` (a JWT identifies the
//! user).

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// The base URL without a trailing slash.
    Http(String),
}

impl Endpoint {
    /// Reads `[slurm] rest_url`; the error says what a valid one looks like.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let url = url.trim();
        let usage = "use unix:///path/to/slurmrestd.sock or http(s)://host:port";
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "rest_url {url:?}: a socket path must be absolute ({usage})"
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        {
            let host = rest.split('/').next().unwrap_or_default();
            if host.is_empty() || rest.contains(char::is_whitespace) {
                return Err(format!("rest_url {url:?} names no host ({usage})"));
            }
            return Ok(Endpoint::Http(url.trim_end_matches('/').to_string()));
        }
        Err(format!(
            "rest_url {url:?} is not a slurmrestd address ({usage})"
        ))
    }

    /// The URL of `path` (which starts with `/`); over the socket the host is a placeholder.
    pub fn url(&self, path: &str) -> String {
        match self {
            Endpoint::Unix(_) => format!("http://slurmrestd{path}"),
            Endpoint::Http(base) => format!("{base}{path}"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Http(u) => f.write_str(u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_of_reaching_slurmrestd() {
        assert_eq!(
            Endpoint::parse("unix:///run/slurmrestd.sock"),
            Ok(Endpoint::Unix("/run/slurmrestd.sock".into()))
        );
        let http = Endpoint::parse("https://rest.example:6820/").expect("parses");
        assert_eq!(http, Endpoint::Http("https://rest.example:6820".into()));
        assert_eq!(
            http.url("/openapi/v3"),
            "https://rest.example:6820/openapi/v3"
        );
        assert_eq!(http.to_string(), "https://rest.example:6820");
    }

    #[test]
    fn what_is_not_an_address_says_what_is() {
        for bad in ["unix://relative.sock", "ftp://x", "http://", "rest:6820"] {
            let err = Endpoint::parse(bad).expect_err(bad);
            assert!(err.contains("unix:///") && err.contains(bad), "{err}");
        }
    }
}
