//! The real TUI in a real terminal: a detached tmux session, keys sent with `send-keys`, the
//! screen read with `capture-pane`. Shared by the TUI walks (local and SLURM).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether tmux is installed. Under CI its absence is a failure (scripts/test installs it).
pub fn require() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    assert!(
        !crate::in_ci(),
        "tmux is required in CI (scripts/test installs it)"
    );
    eprintln!("skipping: tmux is not installed");
    false
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("tmux {args:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tmux session running one shell command; killed on drop, after which the `cleanup`
/// commands run (e.g. `corral down` of what the test started), whatever happened.
pub struct Session {
    name: String,
    cleanup: Vec<Command>,
}

impl Session {
    /// Starts `shell_command` in a new detached session of `width`×`height`.
    pub fn start(tag: &str, width: u16, height: u16, shell_command: &str) -> Session {
        let name = format!("corral-{tag}-{}", std::process::id());
        let (w, h) = (width.to_string(), height.to_string());
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            &w,
            "-y",
            &h,
            shell_command,
        ]);
        Session {
            name,
            cleanup: Vec::new(),
        }
    }

    /// Runs `cmd` when the session is dropped (after the session is killed).
    pub fn on_drop(&mut self, cmd: Command) {
        self.cleanup.push(cmd);
    }

    /// Appends everything the program in the pane writes (raw bytes, escape sequences
    /// included) to `file`, from now on.
    pub fn pipe_to(&self, file: &Path) {
        let cmd = format!("cat >> {}", sh_quote(&file.display().to_string()));
        tmux(&["pipe-pane", "-o", "-t", &self.name, &cmd]);
    }

    pub fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    /// Sends keys by tmux name (`Down`, `BSpace`, `C-s`, `Enter`, or a plain character).
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            tmux(&["send-keys", "-t", &self.name, k]);
        }
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        tmux(&["send-keys", "-t", &self.name, "-l", text]);
    }

    /// Waits until `pred` holds for the screen; panics with the screen otherwise.
    pub fn wait_for(&self, what: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
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

    pub fn wait_text(&self, text: &str, within: Duration) -> String {
        self.wait_for(text, within, |s| s.contains(text))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .output();
        for c in &mut self.cleanup {
            let _ = c.output();
        }
    }
}

/// The expected payment_type counts of data made by `corral gen taxi` (its `expected.json`).
pub fn expected_counts(data: &Path) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(data.join("expected.json")).expect("expected.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("expected.json is JSON");
    let map = v["payment_type"].as_object().expect("payment_type counts");
    map.iter()
        .map(|(k, n)| (k.clone(), n.as_u64().expect("a count")))
        .collect()
}

/// Whether some line of the screen shows `key` followed by `count` (the result table).
pub fn shows_count(screen: &str, key: &str, count: u64) -> bool {
    let count = count.to_string();
    screen.lines().any(|l| {
        let words: Vec<&str> = l
            .split(|c: char| c.is_whitespace() || c == '│')
            .filter(|w| !w.is_empty())
            .collect();
        words.windows(2).any(|w| w[0] == key && w[1] == count)
    })
}

/// Single-quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
