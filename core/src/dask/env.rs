//! What a user's process needs in its environment so that an unchanged
//! `Client("tls://…")` — or a bare `Client()` — connects to a corral Dask cluster: Dask's own
//! configuration variables (measured to be enough, see the shared reference on Dask over
//! TLS) pointing at the cluster's CA and client certificate, and the scheduler's address.

use super::DaskFiles;
use super::certs::Role;

/// Read by dask's config as `distributed.comm.require-encryption`.
pub const REQUIRE_ENCRYPTION: &str = "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION";
pub const CA_FILE: &str = "DASK_DISTRIBUTED__COMM__TLS__CA_FILE";
pub const CLIENT_CERT: &str = "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT";
pub const CLIENT_KEY: &str = "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY";
/// Dask's `scheduler-address`: what `Client()` without an address connects to.
pub const SCHEDULER_ADDRESS: &str = "DASK_SCHEDULER_ADDRESS";

/// The variables, in the order they are printed.
pub fn vars(files: &DaskFiles, address: &str) -> Vec<(&'static str, String)> {
    let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    vec![
        (REQUIRE_ENCRYPTION, "True".to_string()),
        (CA_FILE, path(files.ca())),
        (CLIENT_CERT, path(files.cert(Role::Client))),
        (CLIENT_KEY, path(files.key(Role::Client))),
        (SCHEDULER_ADDRESS, address.to_string()),
    ]
}

/// `s` quoted for a POSIX shell (single quotes; a quote inside becomes `'\''`), left bare when
/// it needs no quoting.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:+=,@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `export NAME=value` lines for `eval "$(corral dask-env NAME)"`.
pub fn export_lines(vars: &[(&str, String)]) -> String {
    vars.iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_quote("/home/a/x.pem"), "/home/a/x.pem");
        assert_eq!(shell_quote("tls://10.0.0.1:4242"), "tls://10.0.0.1:4242");
        assert_eq!(shell_quote("/home/my dir/x"), "'/home/my dir/x'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let lines = export_lines(&[(CA_FILE, "/a b/ca.pem".into())]);
        assert_eq!(
            lines,
            "export DASK_DISTRIBUTED__COMM__TLS__CA_FILE='/a b/ca.pem'\n"
        );
    }
}
