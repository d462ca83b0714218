//! The TUI end to end, in tmux, on a LOCAL cluster (no SLURM): start `corral`, press `n`, fill
//! the wizard (4 workers × 2 cores, local), submit, see `workers=4 cores=8`, run the
//! payment_type query on generated data and see the exact counts of `expected.json`, press `+`
//! (one more worker process) and see `workers=5`, press `-` and see `workers=4` again, press `c`
//! and `y`, see the cluster ended.
//!
//! Needs tmux (scripts/test installs it); without it the test is skipped, except under CI.

use std::process::Command;
use std::time::Duration;

use corral_tests::tmux::{self, Session, expected_counts, sh_quote, shows_count};
use corral_tests::{bins, shared_tempdir};

/// Every process on this machine whose command line names `dir` (the cluster's agents,
/// including workers added and removed by scaling, which spec.json may no longer list).
fn processes_for(dir: &std::path::Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| corral_tests::cluster::alive_for(*pid, dir))
        .collect()
}

#[test]
fn local_cluster_from_the_wizard_to_cancel() {
    if !tmux::require() {
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

    let cmd = format!(
        "env XDG_STATE_HOME={} XDG_CONFIG_HOME={} CORRAL_LOG=debug {} --no-mouse; sleep 600",
        sh_quote(&state.display().to_string()),
        sh_quote(&config.display().to_string()),
        sh_quote(&corral.display().to_string())
    );
    let mut session = Session::start("tui-local", 120, 36, &cmd);
    let mut down = Command::new(&corral);
    down.args(["down", "tui-e2e"]).env("XDG_STATE_HOME", &state);
    session.on_drop(down);
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

    // Scale: one more worker process, then the newest one drained and stopped again.
    session.keys(&["+"]);
    session.wait_text("Add how many workers", long);
    session.type_text("1");
    session.keys(&["Enter"]);
    session.wait_text("workers=5 cores=10", long);
    session.keys(&["-"]);
    session.wait_text("Remove how many workers", long);
    session.type_text("1");
    session.keys(&["Enter"]);
    session.wait_text("workers=4 cores=8", long);
    session.wait_text("(5 → 4)", long);

    // Cancel: anything but y keeps it; y ends it.
    session.keys(&["c"]);
    session.wait_text("Cancel cluster tui-e2e?", long);
    session.keys(&["n"]);
    session.wait_text("kept tui-e2e", long);
    session.keys(&["c"]);
    session.wait_text("core-hours", long);
    session.keys(&["y"]);
    session.wait_text("tui-e2e ended", long);
    let cluster_dir = state.join("corral/clusters/tui-e2e");
    assert!(
        corral_tests::cluster::wait_for(Duration::from_secs(10), || processes_for(&cluster_dir)
            .is_empty()),
        "processes of the cancelled cluster still run: {:?}",
        processes_for(&cluster_dir)
    );

    // Detach and quit: the terminal is given back (the shell's sleep runs in the pane).
    session.keys(&["q"]);
    session.wait_text("ended", long);
    session.keys(&["q"]);
    session.wait_for("the TUI to exit", long, |s| !s.contains("corral ·"));
}

/// `corral demo` in a terminal: the dashboard of its local cluster with the query already
/// running and exact, and quitting the TUI stops that cluster.
#[test]
fn demo_opens_the_dashboard_and_quitting_stops_its_cluster() {
    if !tmux::require() {
        return;
    }
    let tmp = shared_tempdir("tui-demo");
    let (state, cache, config) = (
        tmp.path().join("state"),
        tmp.path().join("cache"),
        tmp.path().join("config"),
    );
    let corral = bins::corral();
    let cmd = format!(
        "env XDG_STATE_HOME={} XDG_CACHE_HOME={} XDG_CONFIG_HOME={} {} demo --rows-per-file 20000 --no-mouse; sleep 600",
        sh_quote(&state.display().to_string()),
        sh_quote(&cache.display().to_string()),
        sh_quote(&config.display().to_string()),
        sh_quote(&corral.display().to_string())
    );
    let mut session = Session::start("tui-demo", 120, 36, &cmd);
    let mut down = Command::new(&corral);
    down.args(["down", "demo"]).env("XDG_STATE_HOME", &state);
    session.on_drop(down);
    let long = Duration::from_secs(120);
    session.wait_text("demo · dashboard", long);
    session.wait_text("quitting stops demo", long);
    let expected = expected_counts(&cache.join("corral/demo"));
    session.wait_for("the exact counts", long, |s| {
        expected.iter().all(|(k, n)| shows_count(s, k, *n))
    });
    let cluster_dir = state.join("corral/clusters/demo");
    assert!(
        !processes_for(&cluster_dir).is_empty(),
        "the demo cluster runs"
    );

    // q detaches to Home (the demo cluster listed), q again quits and stops it.
    session.keys(&["q"]);
    session.wait_text("Clusters", long);
    session.keys(&["q"]);
    session.wait_text("cluster demo stopped", long);
    assert!(
        corral_tests::cluster::wait_for(Duration::from_secs(10), || processes_for(&cluster_dir)
            .is_empty()),
        "processes of the demo cluster still run: {:?}",
        processes_for(&cluster_dir)
    );
}

/// `corral up --local` in a terminal hands over to the dashboard; quitting the TUI leaves the
/// cluster running.
#[test]
fn up_in_a_terminal_hands_over_to_the_dashboard() {
    if !tmux::require() {
        return;
    }
    let tmp = shared_tempdir("tui-up");
    let (state, config) = (tmp.path().join("state"), tmp.path().join("config"));
    let corral = bins::corral();
    let cmd = format!(
        "env XDG_STATE_HOME={} XDG_CONFIG_HOME={} {} up --local --name handover --workers 2 --cores 1 --no-mouse; sleep 600",
        sh_quote(&state.display().to_string()),
        sh_quote(&config.display().to_string()),
        sh_quote(&corral.display().to_string())
    );
    let mut session = Session::start("tui-up", 120, 36, &cmd);
    let mut down = Command::new(&corral);
    down.args(["down", "handover"])
        .env("XDG_STATE_HOME", &state);
    session.on_drop(down);
    let long = Duration::from_secs(60);
    session.wait_text("handover · dashboard", long);
    session.wait_text("workers=2 cores=2", long);
    session.keys(&["q"]);
    // Home asks each running cluster's coordinator how many workers are connected.
    session.wait_for("workers connected on Home", long, |s| {
        s.lines()
            .any(|l| l.contains("handover") && l.contains("running") && l.contains("2/2"))
    });
    session.keys(&["q"]);
    // Back on the shell: the printed summary is still there, and the cluster still runs.
    session.wait_text("cluster handover is up (local)", long);
    let cluster_dir = state.join("corral/clusters/handover");
    assert_eq!(
        processes_for(&cluster_dir).len(),
        3,
        "coordinator and 2 workers"
    );
}
