//! The TUI end to end, in tmux, on a LOCAL cluster (no SLURM): start `corral`, press `n`, fill
//! the wizard (4 workers × 2 cores, local), submit, see `workers=4 cores=8`, run the
//! payment_type query on generated data and see the exact counts of `expected.json`, press `c`
//! and `y`, see the cluster ended.
//!
//! Needs tmux (scripts/test installs it); without it the test is skipped, except under CI.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use corral_tests::{bins, in_ci, shared_tempdir};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("tmux {args:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the tmux session and stops the cluster, whatever happened.
struct Session {
    name: String,
    state: std::path::PathBuf,
    cluster: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .output();
        let _ = Command::new(bins::corral())
            .args(["down", &self.cluster])
            .env("XDG_STATE_HOME", &self.state)
            .output();
    }
}

impl Session {
    fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            tmux(&["send-keys", "-t", &self.name, k]);
        }
    }

    fn type_text(&self, text: &str) {
        tmux(&["send-keys", "-t", &self.name, "-l", text]);
    }

    /// Waits until `pred` holds for the screen; panics with the screen otherwise.
    fn wait_for(&self, what: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > within {
                panic!("waited {within:?} for {what}; the screen is:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_text(&self, text: &str, within: Duration) -> String {
        self.wait_for(text, within, |s| s.contains(text))
    }
}

/// The expected payment_type counts of the generated data.
fn expected_counts(data: &Path) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(data.join("expected.json")).expect("expected.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("expected.json is JSON");
    let map = v["payment_type"].as_object().expect("payment_type counts");
    map.iter()
        .map(|(k, n)| (k.clone(), n.as_u64().expect("a count")))
        .collect()
}

/// Whether some line of the screen shows `key` followed by `count` (the result table).
fn shows_count(screen: &str, key: &str, count: u64) -> bool {
    let count = count.to_string();
    screen.lines().any(|l| {
        let words: Vec<&str> = l
            .split(|c: char| c.is_whitespace() || c == '│')
            .filter(|w| !w.is_empty())
            .collect();
        words.windows(2).any(|w| w[0] == key && w[1] == count)
    })
}

#[test]
fn local_cluster_from_the_wizard_to_cancel() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            !in_ci(),
            "tmux is required in CI (scripts/test installs it)"
        );
        eprintln!("skipping: tmux is not installed");
        return;
    }
    let tmp = shared_tempdir("tui-local");
    let state = tmp.path().join("state");
    let config = tmp.path().join("config");
    let data = tmp.path().join("data");
    let corral = bins::corral();
    let gen_out = Command::new(&corral)
        .args(["gen", "taxi", "--files", "2", "--rows", "20000", "--out"])
        .arg(&data)
        .output()
        .expect("corral gen taxi");
    assert!(gen_out.status.success(), "{gen_out:?}");
    let expected = expected_counts(&data);

    let session = Session {
        name: format!("corral-tui-{}", std::process::id()),
        state: state.clone(),
        cluster: "tui-e2e".into(),
    };
    let cmd = format!(
        "env XDG_STATE_HOME='{}' XDG_CONFIG_HOME='{}' CORRAL_LOG=debug '{}' --no-mouse; sleep 600",
        state.display(),
        config.display(),
        corral.display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session.name,
        "-x",
        "120",
        "-y",
        "36",
        &cmd,
    ]);
    let long = Duration::from_secs(60);
    session.wait_text("No clusters yet", long);

    // The wizard: 4 workers × 2 cores, named tui-e2e, on this machine.
    session.keys(&["n"]);
    session.wait_text("New cluster", long);
    // Wait until SLURM answered or was found missing, so the backend default is settled.
    session.wait_for("the SLURM check", long, |s| !s.contains("asking SLURM"));
    session.keys(&["BSpace"]);
    session.type_text("4");
    for _ in 0..5 {
        session.keys(&["Down"]);
    }
    for _ in 0..12 {
        session.keys(&["BSpace"]);
    }
    session.type_text("tui-e2e");
    session.keys(&["Down"]);
    let s = session.wait_text("Run on", long);
    if !s.contains("local (this machine)") {
        session.keys(&["Right"]);
        session.wait_text("local (this machine)", long);
    }
    session.wait_text("mode 0600", long);
    session.keys(&["C-s"]);
    session.wait_text("workers=4 cores=8", long);
    session.wait_text("✓ authenticated", long);

    // The training query; the counts must be exact.
    session.keys(&["r"]);
    session.wait_text("Files or globs", long);
    session.type_text(&format!("{}/*.csv", data.display()));
    session.keys(&["Enter"]);
    let screen = session.wait_for("the exact counts", long, |s| {
        expected.iter().all(|(k, n)| shows_count(s, k, *n))
    });
    assert!(screen.contains("40000 rows"), "{screen}");

    // Cancel: anything but y keeps it; y ends it.
    session.keys(&["c"]);
    session.wait_text("Cancel cluster tui-e2e?", long);
    session.keys(&["n"]);
    session.wait_text("kept tui-e2e", long);
    session.keys(&["c"]);
    session.wait_text("core-hours", long);
    session.keys(&["y"]);
    session.wait_text("tui-e2e ended", long);

    // Detach and quit: the terminal is given back (the shell's sleep runs in the pane).
    session.keys(&["q"]);
    session.wait_text("ended", long);
    session.keys(&["q"]);
    session.wait_for("the TUI to exit", long, |s| !s.contains("corral ·"));
}
