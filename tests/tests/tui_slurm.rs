//! The TUI end to end, in tmux, against the REAL SLURM test bed: start `corral`, press `n`, fill
//! the wizard (4 workers × 2 cores, 1 day, SLURM), submit, see the pending screen and then
//! `workers=4 cores=8`, run the payment_type query on generated data and see the exact counts of
//! `expected.json`, press `+` for one more worker (a second SLURM job), see `workers=5`, `-` for
//! one fewer (the job goes), press `c` and `y`, see the cluster ended, and check with `squeue`
//! that none of its jobs is left. The walk runs on the shared bed and on the hosts-mode bed,
//! where the dashboard names each worker's node.
//!
//! Needs the test bed (`scripts/slurm-test-cluster up`) and tmux; skips without them, except
//! under CI, where it fails.

use std::process::Command;
use std::time::Duration;

use corral_tests::tmux::{self, Session, expected_counts, sh_quote, shows_count};
use corral_tests::{bins, shared_tempdir, slurm};

#[test]
fn slurm_cluster_from_the_wizard_to_cancel() {
    let Some(bed) = slurm::require() else {
        return;
    };
    // One test at a time on the bed (see `slurm::exclusive`).
    let _bed = slurm::exclusive();
    if !tmux::require() {
        return;
    }
    walk(&bed, "tui-slurm");
}

/// The same walk on the hosts-mode bed (every node its own host, 3 nodes × 4 CPUs): the
/// cluster spans nodes, and the dashboard names each worker's node.
#[test]
fn slurm_hosts_tui_walk_shows_each_workers_node() {
    let Some(bed) = slurm::require_hosts() else {
        return;
    };
    if !tmux::require() {
        return;
    }
    walk(&bed, "tui-hosts");
}

/// wizard → pending → dashboard → query → `+` → `-` → cancel, on `bed`.
fn walk(bed: &slurm::Slurm, tag: &str) {
    let tmp = shared_tempdir(tag);
    let state = tmp.path().join("state");
    let config = tmp.path().join("config");
    let data = tmp.path().join("data");
    let corral = bins::corral();
    // The job scripts run corral-agent from beside corral; it must be built.
    bins::corral_agent();
    let gen_out = Command::new(&corral)
        .args(["gen", "taxi", "--files", "2", "--rows", "20000", "--out"])
        .arg(&data)
        .output()
        .expect("corral gen taxi");
    assert!(gen_out.status.success(), "{gen_out:?}");
    let expected = expected_counts(&data);
    // Unique on the shared bed: job names are corral-<name>.
    let name = format!("tui-s{}", std::process::id());
    let job_name = format!("corral-{name}");

    // The pane's shell gets the bed's client environment explicitly: a tmux server that is
    // already running would otherwise hand it its own environment.
    let env: String = bed
        .env()
        .iter()
        .filter(|(k, _)| k != "SLURM_JWT")
        .map(|(k, v)| format!("{k}={} ", sh_quote(v)))
        .collect();
    let cmd = format!(
        "env -u SLURM_JWT {env}XDG_STATE_HOME={} XDG_CONFIG_HOME={} CORRAL_LOG=debug {} --no-mouse; sleep 600",
        sh_quote(&state.display().to_string()),
        sh_quote(&config.display().to_string()),
        sh_quote(&corral.display().to_string())
    );
    let mut session = Session::start(tag, 120, 36, &cmd);
    // Whatever happens, nothing of this test stays queued: corral down, then scancel by name.
    let mut down = bed.command(&corral);
    down.args(["down", &name])
        .env("XDG_STATE_HOME", &state)
        .env("XDG_CONFIG_HOME", &config);
    session.on_drop(down);
    let mut scancel = bed.command("scancel");
    scancel.args(["-n", &job_name]);
    session.on_drop(scancel);

    let long = Duration::from_secs(90);
    session.wait_text("No clusters yet", long);

    // The wizard: 4 workers × 2 cores, 1 day, on SLURM's default partition.
    session.keys(&["n"]);
    session.wait_text("New cluster", long);
    session.wait_for("SLURM's partitions", long, |s| !s.contains("asking SLURM"));
    let s = session.screen();
    assert!(
        s.contains("New cluster · SLURM"),
        "with SLURM reachable the wizard defaults to it:\n{s}"
    );
    let clear = |n: usize| {
        for _ in 0..n {
            session.keys(&["BSpace"]);
        }
    };
    clear(4);
    session.type_text("4"); // workers
    session.keys(&["Down"]);
    clear(4);
    session.type_text("2"); // cores per worker
    session.keys(&["Down", "Down"]); // memory: the partition's default
    clear(4);
    session.type_text("1"); // days
    session.keys(&["Down", "Down"]); // partition: the default one
    clear(20);
    session.type_text(&name);
    session.keys(&["Down"]);
    session.wait_text("Run on", long);
    session.wait_text("estimated start", long);
    session.wait_text("mode 0600", long);
    session.keys(&["C-s"]);

    // Pending first (the watch looks at the job every 2 s), then the dashboard.
    session.wait_text("Waiting to start", long);
    session.wait_text("workers=4 cores=8", long);
    session.wait_text("✓ authenticated", long);
    // Each worker's node is on the dashboard, as SLURM placed it.
    let mut status = bed.command(&corral);
    status
        .args(["status", &name, "--json"])
        .env("XDG_STATE_HOME", &state)
        .env("XDG_CONFIG_HOME", &config);
    let status = status.output().expect("corral status");
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json");
    let nodes: std::collections::BTreeSet<String> = v["snapshot"]["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["node"].as_str().map(String::from))
        .collect();
    if bed.var("CORRAL_TESTBED_NET") == Some("hosts") {
        // 4 × 2 cores on nodes of 4 CPUs: more than one node.
        assert!(nodes.len() >= 2, "{v}");
    }
    for n in &nodes {
        session.wait_text(&format!("● {n} "), long);
    }

    // The training query; the counts must be exact.
    session.keys(&["r"]);
    session.wait_text("Files or globs", long);
    session.type_text(&format!("{}/*.csv", data.display()));
    session.keys(&["Enter"]);
    let screen = session.wait_for("the exact counts", long, |s| {
        expected.iter().all(|(k, n)| shows_count(s, k, *n))
    });
    assert!(screen.contains("40000 rows"), "{screen}");

    // One more worker: a worker job that joins the same coordinator.
    session.keys(&["+"]);
    session.wait_text("Add how many workers", long);
    session.type_text("1");
    session.keys(&["Enter"]);
    session.wait_text("workers=5 cores=10", long);
    let jobs = bed
        .run_ok("squeue", &["-h", "-n", &job_name, "-o", "%i"])
        .expect("squeue");
    assert_eq!(
        jobs.stdout.lines().count(),
        2,
        "the head job and one worker job: {jobs:?}"
    );
    // And one fewer again: the worker job goes.
    session.keys(&["-"]);
    session.wait_text("Remove how many workers", long);
    session.type_text("1");
    session.keys(&["Enter"]);
    session.wait_text("workers=4 cores=8", long);
    let gone = corral_tests::cluster::wait_for(long, || {
        bed.run_ok("squeue", &["-h", "-n", &job_name, "-o", "%i"])
            .is_ok_and(|o| o.stdout.lines().count() == 1)
    });
    assert!(gone, "the worker job is still queued after -");

    // Cancel: y ends it, and SLURM lists none of its jobs afterwards.
    session.keys(&["c"]);
    session.wait_text("core-hours", long);
    session.keys(&["y"]);
    session.wait_text(&format!("{name} ended"), long);
    let left = bed
        .run_ok("squeue", &["-h", "-n", &job_name, "-o", "%i %T"])
        .expect("squeue");
    assert!(
        left.stdout.trim().is_empty(),
        "squeue still lists jobs of {name}: {left:?}"
    );

    session.keys(&["q"]);
    session.wait_text("ended", long);
    session.keys(&["q"]);
    session.wait_for("the TUI to exit", long, |s| !s.contains("corral ·"));
}

/// `corral up` in a terminal hands over to the TUI once submitted: the new cluster's screen
/// (pending, then the dashboard with every worker), and quitting leaves the cluster running.
#[test]
fn up_in_a_terminal_hands_over_to_the_tui() {
    let Some(bed) = slurm::require() else {
        return;
    };
    // One test at a time on the bed (see `slurm::exclusive`).
    let _bed = slurm::exclusive();
    if !tmux::require() {
        return;
    }
    let tmp = shared_tempdir("tui-slurm-up");
    let (state, config) = (tmp.path().join("state"), tmp.path().join("config"));
    let corral = bins::corral();
    bins::corral_agent();
    let name = format!("tui-u{}", std::process::id());
    let job_name = format!("corral-{name}");
    let env: String = bed
        .env()
        .iter()
        .filter(|(k, _)| k != "SLURM_JWT")
        .map(|(k, v)| format!("{k}={} ", sh_quote(v)))
        .collect();
    let cmd = format!(
        "env -u SLURM_JWT {env}XDG_STATE_HOME={} XDG_CONFIG_HOME={} {} up --name {name} --workers 2 --cores 1 --days 1 --yes --no-mouse; sleep 600",
        sh_quote(&state.display().to_string()),
        sh_quote(&config.display().to_string()),
        sh_quote(&corral.display().to_string())
    );
    let mut session = Session::start("tui-slurm-up", 120, 36, &cmd);
    let mut down = bed.command(&corral);
    down.args(["down", &name])
        .env("XDG_STATE_HOME", &state)
        .env("XDG_CONFIG_HOME", &config);
    session.on_drop(down);
    let mut scancel = bed.command("scancel");
    scancel.args(["-n", &job_name]);
    session.on_drop(scancel);

    let long = Duration::from_secs(90);
    session.wait_text(&format!("{name} · "), long);
    session.wait_text("workers=2 cores=2", long);
    session.wait_text("✓ authenticated", long);
    session.keys(&["q"]);
    session.wait_text("Clusters", long);
    session.keys(&["q"]);
    session.wait_text(&format!("Cluster {name} keeps running"), long);
    let jobs = bed
        .run_ok("squeue", &["-h", "-n", &job_name, "-o", "%T"])
        .expect("squeue");
    assert_eq!(jobs.stdout.trim(), "RUNNING", "{jobs:?}");
}
