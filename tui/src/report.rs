//! How the CLI talks: data on stdout, diagnostics on stderr, one clear line per error.

/// Prints an error and its causes on one line to stderr. A cause whose text the message
/// before it already carries (thiserror messages often embed their source) is not repeated.
pub fn error(e: &anyhow::Error) {
    // A SQL error's caret sits on its own line under the query (text the user typed); each
    // line is still made terminal-safe.
    if let Some(corral_core::aggregate::AggError::Sql(text)) = e.downcast_ref() {
        let lines: Vec<String> = text
            .lines()
            .map(|l| corral_core::text::terminal_safe(l).into_owned())
            .collect();
        eprintln!("corral: error: {}", lines.join("\n"));
        return;
    }
    // Errors quote file names, headers and data: shown, never obeyed by the terminal.
    eprintln!(
        "corral: error: {}",
        corral_core::text::terminal_safe(&chain_text(e))
    );
}

fn chain_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
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
            .map(corral_core::text::path_safe)
            .unwrap_or_default();
        s.push_str(&format!(
            "  {path}:{}: {}: {:?}\n",
            e.line, e.reason, e.excerpt
        ));
    }
    if r.filtered > 0 {
        s.push_str(&format!("rows left out by WHERE: {}\n", r.filtered));
    }
    for b in &r.bad_values {
        let path = b
            .example
            .path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        s.push_str(&format!(
            "bad values: {} ({}) in {} rows, left out of {}; e.g. {path}:{}: {:?}\n",
            b.column,
            b.reason,
            b.rows,
            b.left_out_of.join(", "),
            b.example.line,
            b.example.value
        ));
    }
    for (label, n) in &r.missing {
        let label = corral_core::text::terminal_safe(label);
        s.push_str(&format!("missing values skipped in {label}: {n}\n"));
    }
    if !r.exact {
        s.push_str("note: some sums needed floating point (exponent notation or overflow)\n");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::other("EOF while parsing");
        let e = anyhow::Error::new(io).context("coordinator.json: invalid JSON: EOF while parsing");
        let e = e.context("cannot reach the cluster sm2");
        assert_eq!(
            super::chain_text(&e),
            "cannot reach the cluster sm2: coordinator.json: invalid JSON: EOF while parsing"
        );
    }
}
