//! How the CLI talks: data on stdout, diagnostics on stderr, one clear line per error.

/// Prints an error and its causes on one line to stderr.
pub fn error(e: &anyhow::Error) {
    eprintln!("corral: error: {e:#}");
}

/// What a query result says besides its table, for people (stderr): rows, bad rows by reason
/// with examples, missing values, inexact sums. `corral agg` and `corral query` add how it was
/// computed.
pub fn result_details(r: &corral_core::aggregate::QueryResult) -> String {
    let mut s = format!(
        "rows: {} counted, {} bad, {} blank lines skipped; {} groups\n",
        r.rows,
        r.bad_rows.total,
        r.blank_lines,
        r.groups.len()
    );
    for (reason, n) in &r.bad_rows.by_reason {
        s.push_str(&format!("bad rows: {reason}: {n}\n"));
    }
    for e in &r.bad_rows.examples {
        let path = e
            .path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        s.push_str(&format!(
            "  {path}:{}: {}: {:?}\n",
            e.line, e.reason, e.excerpt
        ));
    }
    for (label, n) in &r.missing {
        s.push_str(&format!("missing values skipped in {label}: {n}\n"));
    }
    if !r.exact {
        s.push_str("note: some sums needed floating point (exponent notation or overflow)\n");
    }
    s
}
