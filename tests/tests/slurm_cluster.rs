//! grabdask's job done right, against the real SLURM test bed (4 nodes × 16 CPUs, partitions
//! `debug` and `small`): `corral up` validates before submitting, follows the job until every
//! worker is connected, queries are exact, scaling moves work without losing any, and
//! `corral down` leaves no job and no process behind.
//!
//! Every test here uses the whole test bed's CPUs at some point, so the nextest profile runs
//! the `slurm` test group one test at a time (`.config/nextest.toml`), and under plain `cargo
//! test` each takes `slurm::exclusive()`.

use std::path::Path;
use std::time::Duration;

use corral_tests::cluster::{Env, wait_for};
use corral_tests::expect::{counts_in, expected_counts, processes_of};
use corral_tests::on_slurm::{Down, OnSlurm};
use corral_tests::process::{self, Output};
use corral_tests::slurm::Slurm;

fn up<'a>(on: OnSlurm<'a>, name: &str, extra: &[&str]) -> (Output, Down<'a>) {
    let mut args = vec!["up", "--name", name, "--yes"];
    args.extend_from_slice(extra);
    let guard = on.down_on_drop(name);
    (on.run(&args), guard)
}

/// Every job id squeue lists.
fn queued(bed: &Slurm) -> Vec<u64> {
    let out = bed.run_ok("squeue", &["-h", "-o", "%i"]).expect("squeue");
    out.stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `corral query NAME --by payment_type FILES… --json` → {key: count}.
fn query_counts(on: OnSlurm<'_>, name: &str, data: &Path) -> serde_json::Value {
    let glob = data.join("*.csv").to_string_lossy().into_owned();
    let out = on.run(&["query", name, "--by", "payment_type", "--json", &glob]);
    assert!(out.success(), "{out}");
    counts_in(&out.stdout)
}

#[test]
fn slurm_up_eight_by_two_query_exact_then_down_leaves_nothing() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("slurm-up");
    let on = OnSlurm::new(&env, &bed);
    let data = env.gen_taxi("clean", 3, 20_000, 0.0);
    let (out, guard) = up(
        on,
        "eight",
        &[
            "--workers",
            "8",
            "--cores",
            "2",
            "--days",
            "1",
            "--show-script",
        ],
    );
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("workers=8 cores=16"), "{out}");
    // What the user is shown before anything is submitted.
    assert!(out.stdout.contains("#SBATCH --time=1-0"), "{out}");
    assert!(
        out.stdout.contains("only holders of this cluster's secret")
            || out.stdout.contains("Only holders of this cluster's secret"),
        "{out}"
    );

    assert_eq!(query_counts(on, "eight", &data), expected_counts(&data));

    let ids = on.job_ids("eight");
    let down = on.run(&["down", "eight"]);
    assert!(down.success(), "{down}");
    assert!(down.stdout.contains("core-hours"), "{down}");
    let left: Vec<u64> = queued(&bed)
        .into_iter()
        .filter(|i| ids.contains(i))
        .collect();
    assert!(left.is_empty(), "squeue still lists {left:?}");
    let dir = env.cluster_dir("eight");
    assert!(
        wait_for(Duration::from_secs(15), || processes_of(&dir).is_empty()),
        "processes left: {:?}",
        processes_of(&dir)
    );
    let status = on.run(&["status", "eight", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(v["state"], "ended", "{status}");
    drop(guard);
}

#[test]
fn slurm_sixteen_by_two_refused_on_small_runs_on_debug() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("slurm-16x2");
    let on = OnSlurm::new(&env, &bed);
    let before = queued(&bed);

    let (refused, _g1) = up(
        on,
        "small16",
        &[
            "--workers",
            "16",
            "--cores",
            "2",
            "--time",
            "1:00:00",
            "--partition",
            "small",
        ],
    );
    assert_eq!(refused.code(), Some(2), "{refused}");
    assert!(
        refused.stderr.contains(
            "small allows 8 CPUs per node and 1 node: at most 4 workers × 2 cores there, or use partition debug"
        ),
        "{refused}"
    );
    assert!(
        !env.cluster_dir("small16").exists(),
        "nothing is created for a refused request"
    );

    let (day, _g2) = up(
        on,
        "smallday",
        &[
            "--workers",
            "2",
            "--cores",
            "2",
            "--days",
            "1",
            "--partition",
            "small",
        ],
    );
    assert_eq!(day.code(), Some(2), "{day}");
    assert!(day.stderr.contains("12:00:00"), "{day}");
    let after: Vec<u64> = queued(&bed)
        .into_iter()
        .filter(|i| !before.contains(i))
        .collect();
    assert!(after.is_empty(), "refused requests submitted {after:?}");

    let (ok, _g3) = up(
        on,
        "debug16",
        &["--workers", "16", "--cores", "2", "--days", "1"],
    );
    assert!(ok.success(), "{ok}");
    assert!(ok.stdout.contains("workers=16 cores=32"), "{ok}");
    let logs = env.cluster_dir("debug16").join("logs");
    for entry in std::fs::read_dir(&logs).expect("logs") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).unwrap_or_default();
        assert!(
            !text.contains("More processors requested than permitted"),
            "{text}"
        );
    }
}

#[test]
fn slurm_pending_reason_in_plain_words_then_starts_when_nodes_free() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("slurm-pending");
    let on = OnSlurm::new(&env, &bed);
    // Hold every CPU of the test bed.
    let blocker = bed
        .sbatch(&[
            "-n",
            "4",
            "-c",
            "16",
            "-t",
            "10",
            "-J",
            &corral_tests::unique_name("blocker"),
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 300",
        ])
        .expect("blocker submitted");
    let blocker = bed.cancel_on_drop(blocker);
    bed.wait_for_state(blocker.id(), &["RUNNING"], Duration::from_secs(30))
        .expect("blocker runs");

    let (out, _guard) = up(
        on,
        "waits",
        &[
            "--workers",
            "4",
            "--cores",
            "2",
            "--days",
            "1",
            "--timeout",
            "8s",
        ],
    );
    assert_eq!(out.code(), Some(75), "{out}");
    assert!(
        out.stderr
            .contains("pending, reason: Resources — all CPUs of partition debug are busy"),
        "{out}"
    );
    assert!(
        out.stderr.contains("stays queued") && out.stderr.contains("corral status waits"),
        "{out}"
    );
    let status = on.run(&["status", "waits", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(v["state"], "pending", "{status}");
    assert!(
        v["observed"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("waiting for CPUs"),
        "{status}"
    );

    drop(blocker);
    let started = wait_for(Duration::from_secs(60), || {
        let v = on.status("waits");
        v["state"] == "running" && v["snapshot"]["cores"] == 8
    });
    assert!(started, "the cluster did not start after the blocker ended");
}

#[test]
fn slurm_scale_eight_to_twelve_to_four_while_a_query_runs_stays_exact() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("slurm-scale");
    let on = OnSlurm::new(&env, &bed);
    let data = env.gen_taxi("scale", 4, 40_000, 0.01);
    // Workers inherit the submitting environment through sbatch: slow them down a little so the
    // query is still running while the cluster changes size.
    let _guard = on.down_on_drop("elastic");
    let slow = |args: &[&str]| {
        let mut c = on.corral(args);
        c.env("CORRAL_WORKER_TEST_DELAY_MS", "20");
        env.run_cmd(&mut c)
    };
    let out = slow(&[
        "up",
        "--name",
        "elastic",
        "--yes",
        "--workers",
        "8",
        "--cores",
        "2",
        "--days",
        "1",
    ]);
    assert!(out.success(), "{out}");

    // A query with tiny partitions runs while the cluster grows and shrinks under it.
    let glob = data.join("*.csv").to_string_lossy().into_owned();
    let mut q = on.corral(&[
        "query",
        "elastic",
        "--by",
        "payment_type",
        "--json",
        "--partition-bytes",
        "20000",
        &glob,
    ]);
    let query = std::thread::spawn(move || process::run(&mut q, Duration::from_secs(300)));

    let up12 = slow(&["scale", "elastic", "--workers", "12"]);
    assert!(up12.success(), "{up12}");
    assert!(
        wait_for(Duration::from_secs(60), || {
            let v = on.status("elastic");
            v["snapshot"]["cores"] == 24
        }),
        "12 workers never connected"
    );
    let down4 = on.run(&["scale", "elastic", "--workers", "4"]);
    assert!(down4.success(), "{down4}");
    assert!(down4.stdout.contains("12 → 4"), "{down4}");

    let out = query.join().expect("query thread").expect("query ran");
    assert!(out.success(), "{out}");
    assert_eq!(counts_in(&out.stdout), expected_counts(&data));
    assert!(
        wait_for(Duration::from_secs(30), || {
            let v = on.status("elastic");
            v["snapshot"]["cores"] == 8
        }),
        "the cluster did not shrink to 4 workers"
    );
}

#[test]
fn slurm_external_scancel_is_reported_ended_and_workers_go() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("slurm-scancel");
    let on = OnSlurm::new(&env, &bed);
    let (out, _guard) = up(
        on,
        "victim",
        &["--workers", "4", "--cores", "2", "--days", "1"],
    );
    assert!(out.success(), "{out}");
    let head = on.job_ids("victim")[0];
    bed.run_ok("scancel", &[&head.to_string()])
        .expect("scancel");
    let t0 = std::time::Instant::now();
    // `corral ls` first: it must see the end by itself, not from a record `status` wrote.
    let listed_ended = wait_for(Duration::from_secs(5), || {
        let ls = on.run(&["ls", "--json"]);
        serde_json::from_str::<serde_json::Value>(&ls.stdout).is_ok_and(|v| {
            v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|c| c["name"] == "victim" && c["state"] == "ended")
            })
        })
    });
    assert!(
        listed_ended,
        "ls did not show it ended within 5 s of scancel"
    );
    let ended = wait_for(Duration::from_secs(5), || {
        on.status("victim")["state"] == "ended"
    });
    assert!(
        ended,
        "status did not report it ended within 5 s of scancel"
    );
    let s = on.run(&["status", "victim"]);
    assert!(
        s.stdout.contains("cancelled outside corral"),
        "{s} after {:?}",
        t0.elapsed()
    );
    // How it ended is kept: history says so, and a later `corral down` does not rewrite it.
    let down = on.run(&["down", "victim"]);
    assert!(down.success(), "{down}");
    let history = on.run(&["history", "victim"]);
    assert!(
        history.stdout.contains("cancelled outside corral"),
        "{history}"
    );
    let dir = env.cluster_dir("victim");
    assert!(
        wait_for(Duration::from_secs(20), || processes_of(&dir).is_empty()),
        "agent processes left: {:?}",
        processes_of(&dir)
    );
}

#[test]
fn slurm_status_reattaches_from_a_new_shell_after_the_starter_was_killed() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("slurm-reattach");
    let on = OnSlurm::new(&env, &bed);
    let _guard = on.down_on_drop("again");
    // The starting process is killed while it follows the job.
    let mut starter = on
        .corral(&[
            "up",
            "--name",
            "again",
            "--workers",
            "2",
            "--cores",
            "2",
            "--days",
            "1",
            "--yes",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("corral up starts");
    assert!(
        wait_for(Duration::from_secs(30), || env
            .cluster_dir("again")
            .join("jobs.json")
            .exists()),
        "never submitted"
    );
    starter.kill().expect("kill the starter");
    let _ = starter.wait();
    let running = wait_for(Duration::from_secs(60), || {
        let v = on.status("again");
        v["state"] == "running" && v["snapshot"]["cores"] == 4
    });
    assert!(
        running,
        "a new `corral status` could not see the running cluster"
    );
    let ls = on.run(&["ls", "--json"]);
    assert!(
        ls.stdout.contains("\"again\"") && ls.stdout.contains("running"),
        "{ls}"
    );
}

#[test]
fn slurm_up_json_prints_one_object_on_stdout() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("slurm-json");
    let on = OnSlurm::new(&env, &bed);
    let (out, _guard) = up(
        on,
        "js",
        &["--workers", "2", "--cores", "1", "--days", "1", "--json"],
    );
    assert!(out.success(), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {out}"));
    assert_eq!(v["state"], "running", "{out}");
    assert_eq!(
        (v["workers"].as_u64(), v["cores"].as_u64()),
        (Some(2), Some(2)),
        "{out}"
    );
    assert!(
        out.stderr.contains("2 workers × 1 core (2 CPUs)"),
        "the summary still goes to the person: {out}"
    );
}

#[test]
fn slurm_a_cluster_ended_by_its_walltime_is_shown_as_ended() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("slurm-walltime");
    let on = OnSlurm::new(&env, &bed);
    // One minute: SLURM ends the job at its limit (plus KillWait), whoever is connected.
    let (out, _guard) = up(
        on,
        "brief",
        &[
            "--workers",
            "2",
            "--cores",
            "1",
            "--time",
            "1",
            "--show-script",
        ],
    );
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("#SBATCH --time=0-00:01:00"), "{out}");
    let ended = wait_for(Duration::from_secs(150), || {
        let v = on.status("brief");
        v["state"] == "ended"
    });
    assert!(ended, "not shown as ended after its walltime");
    let s = on.run(&["status", "brief"]);
    assert!(s.stdout.contains("reached its walltime"), "{s}");
    let ls = on.run(&["ls"]);
    assert!(
        ls.stdout.contains("brief") && ls.stdout.contains("ended"),
        "{ls}"
    );
}

/// The workers of `status --json` in state `state` ("Alive", "Left", …).
fn workers_in(status: &serde_json::Value, state: &str) -> usize {
    status["snapshot"]["workers"]
        .as_array()
        .map_or(0, |ws| ws.iter().filter(|w| w["state"] == state).count())
}

/// `ls --json`'s asked workers of `name`.
fn asked_in_ls(on: OnSlurm<'_>, name: &str) -> serde_json::Value {
    let ls = on.run(&["ls", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ls.stdout).expect("ls JSON");
    v.as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .map_or(serde_json::Value::Null, |c| c["workers"].clone())
}

/// Issue 16 item 4: after `--workers 5` then `--workers 3`, the command, `ls` and the TUI
/// all say 3 (a cancelled worker job no longer counts), and the workers that went are listed
/// as left by the time the command returns — whole worker jobs cancelled, and head-job
/// workers retired.
#[test]
fn slurm_scale_down_sets_one_target_and_the_workers_that_went_are_left() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let _bed = corral_tests::slurm::exclusive();
    let env = Env::new("slurm-scale-down");
    let on = OnSlurm::new(&env, &bed);
    let (out, _guard) = up(on, "s2", &["--workers", "3", "--cores", "1", "--days", "1"]);
    assert!(out.success(), "{out}");
    let up5 = on.run(&["scale", "s2", "--workers", "5"]);
    assert!(up5.success(), "{up5}");
    assert!(
        wait_for(Duration::from_secs(60), || workers_in(
            &on.status("s2"),
            "Alive"
        ) == 5),
        "5 workers never connected: {}",
        on.status("s2")
    );
    let down3 = on.run(&["scale", "s2", "--workers", "3"]);
    assert!(down3.success(), "{down3}");
    assert!(down3.stdout.contains("(5 → 3 workers)"), "{down3}");
    assert_eq!(asked_in_ls(on, "s2"), 3);
    let s = on.status("s2");
    assert_eq!(workers_in(&s, "Left"), 2, "{s}");
    assert_eq!(workers_in(&s, "Alive"), 3, "{s}");

    // Below the head job's size: a worker of the head job is retired.
    let down2 = on.run(&["scale", "s2", "--workers", "2"]);
    assert!(down2.success(), "{down2}");
    assert!(down2.stdout.contains("(3 → 2 workers)"), "{down2}");
    assert_eq!(asked_in_ls(on, "s2"), 2);
    let s = on.status("s2");
    assert_eq!(workers_in(&s, "Left"), 3, "{s}");
    assert_eq!(workers_in(&s, "Alive"), 2, "{s}");
}
