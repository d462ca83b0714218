//! Issue 12 in the TUI, end to end in tmux: attach to a local cluster, press `r`, write SQL in
//! the query form's SQL field (two keys, a count and an exact decimal sum: Q4 of the issue) and
//! see on screen every row `corral agg --sql` prints for the same text; then a syntax error is
//! shown in the form with its caret, and ← brings the good query back from the history.
//!
//! Needs tmux (scripts/test installs it); without it the test is skipped, except under CI.

use std::time::Duration;

use corral_tests::cluster::Env;
use corral_tests::tmux::{self, Session, sh_quote};
use serde_json::Value;

/// A JSON cell as the table shows it.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether some screen line shows `words` one after another (table cells, in order).
fn shows_row(screen: &str, words: &[String]) -> bool {
    screen.lines().any(|l| {
        let cells: Vec<&str> = l
            .split(|c: char| c.is_whitespace() || c == '│')
            .filter(|w| !w.is_empty())
            .collect();
        cells.windows(words.len()).any(|w| w == words)
    })
}

#[test]
fn sql_in_the_query_form_shows_what_agg_prints() {
    if !tmux::require() {
        return;
    }
    let env = Env::new("tui-sql");
    let data = env.gen_taxi("d", 2, 5_000, 0.0);
    env.up("sqltui", 2, 1, &[]);
    let glob = data.join("*.csv").to_string_lossy().into_owned();
    let sql = format!(
        "SELECT VendorID, payment_type, count(*), sum(total_amount) FROM '{glob}' GROUP BY 1, 2"
    );
    let agg: Value =
        serde_json::from_str(&env.ok(&["agg", "--json", "--sql", &sql]).stdout).expect("JSON");
    let rows: Vec<Vec<String>> = agg["table"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_array().expect("row").iter().map(cell).collect())
        .collect();
    assert!(rows.len() >= 4, "{agg}");

    let p = |d: &str| sh_quote(&env.path().join(d).display().to_string());
    let cmd = format!(
        "env XDG_STATE_HOME={} XDG_CACHE_HOME={} XDG_CONFIG_HOME={} {} attach sqltui --no-mouse; sleep 600",
        p("state"),
        p("cache"),
        p("config"),
        sh_quote(&corral_tests::bins::corral().display().to_string())
    );
    let session = Session::start("tui-sql", 140, 48, &cmd);
    let long = Duration::from_secs(60);
    session.wait_text("workers=2", long);

    session.keys(&["r"]);
    session.wait_text("Files or globs", long);
    session.keys(&["Down"]);
    session.type_text(&sql);
    session.keys(&["Enter"]);
    let screen = session.wait_for("every row of agg's table", long, |s| {
        rows.iter().all(|r| shows_row(s, r))
    });
    assert!(screen.contains("10000 rows"), "{screen}");

    // Reopened, the form holds the last SQL with the cursor in it; a syntax error is said in
    // the form with a caret under the token, and nothing runs.
    session.keys(&["r"]);
    session.wait_text("Files or globs", long);
    session.wait_text("GROUP BY 1, 2", long);
    let erase = vec!["BSpace"; sql.chars().count() + 4];
    session.keys(&erase);
    session.type_text("SELECT payment_type count(*) FROM 'x' GROUP BY 1");
    session.keys(&["Enter"]);
    let bad = session.wait_for("the SQL error", long, |s| s.contains('^'));
    assert!(
        bad.contains("Files or globs"),
        "the form stays open:\n{bad}"
    );

    // ← brings the good query back from the session's history; it runs again.
    session.keys(&["Left"]);
    session.wait_text("GROUP BY 1, 2", long);
    session.keys(&["Enter"]);
    session.wait_for("agg's table again", long, |s| {
        !s.contains("Files or globs") && rows.iter().all(|r| shows_row(s, r))
    });
}
