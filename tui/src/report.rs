//! How the CLI talks: data on stdout, diagnostics on stderr, one clear line per error.

/// Prints an error and its causes on one line to stderr.
pub fn error(e: &anyhow::Error) {
    eprintln!("corral: error: {e:#}");
}
