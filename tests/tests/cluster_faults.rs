//! Faults on a local cluster: a worker killed mid-query (the result stays exact and the re-run
//! partitions are reported), a file truncated mid-query (the query fails naming it and the
//! cluster keeps serving), a killed coordinator (the workers exit by themselves).

use std::process::Stdio;
use std::time::Duration;

use corral_tests::cluster::{Env, alive_for, kill9, result_core, wait_for};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Tasks done so far by the running query, from `corral status --json`.
fn tasks_done(env: &Env, name: &str) -> u64 {
    env.status(name)["snapshot"]["query"]["tasks"]["done"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn kill_9_a_worker_mid_query_and_the_result_is_still_exact() {
    let env = Env::new("kill");
    let data = env.gen_taxi("d", 2, 30_000, 0.02);
    // Each partition takes ≥ 40 ms, so the query runs for seconds.
    env.up("k", 4, 1, &[("CORRAL_WORKER_TEST_DELAY_MS", "40")]);
    let glob = data.join("*.csv").to_string_lossy().into_owned();
    let child = env
        .corral(&[
            "query",
            "k",
            "--by",
            "payment_type",
            "--json",
            "--partition-bytes",
            "65536",
            &glob,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("query starts");
    assert!(
        wait_for(Duration::from_secs(60), || tasks_done(&env, "k") >= 8),
        "the query made no progress: {}",
        env.status("k")
    );
    let victim = env.worker_pids("k")[1];
    kill9(victim);
    let out = child.wait_with_output().expect("query ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = json(&stdout);
    let want = json(
        &env.ok(&["agg", "--by", "payment_type", "--json", &glob])
            .stdout,
    );
    assert_eq!(result_core(&got), result_core(&want));
    let reruns = got["reruns"].as_array().expect("reruns");
    assert!(
        reruns
            .iter()
            .any(|r| r["reason"].get("WorkerLost").is_some()),
        "the lost worker's partitions must be reported: {got}"
    );
    // The dead worker is shown, marked dead, not hidden.
    let st = env.status("k");
    let workers = st["snapshot"]["workers"].as_array().expect("workers");
    assert!(
        workers
            .iter()
            .any(|w| w["pid"] == victim && w["state"] == "Dead"),
        "{st}"
    );
    // The human form lists the re-run partitions too.
    let human = env.ok(&["query", "k", "--by", "payment_type", &glob]);
    assert!(human.stderr.contains("worker"), "{human}");
}

#[test]
fn a_file_truncated_mid_query_fails_naming_it_and_the_cluster_keeps_serving() {
    let env = Env::new("trunc");
    let data = env.gen_taxi("d", 2, 30_000, 0.0);
    env.up("t", 2, 1, &[("CORRAL_WORKER_TEST_DELAY_MS", "40")]);
    let files: Vec<String> = ["yellow_tripdata_2015-01.csv", "yellow_tripdata_2015-02.csv"]
        .iter()
        .map(|f| data.join(f).to_string_lossy().into_owned())
        .collect();
    let victim = data.join("yellow_tripdata_2015-02.csv");
    let child = env
        .corral(&[
            "query",
            "t",
            "--by",
            "payment_type",
            "--partition-bytes",
            "65536",
            &files[0],
            &files[1],
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("query starts");
    assert!(
        wait_for(Duration::from_secs(60), || tasks_done(&env, "t") >= 4),
        "the query made no progress"
    );
    let len = std::fs::metadata(&victim).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .expect("open")
        .set_len(len / 3)
        .expect("truncate");
    let out = child.wait_with_output().expect("query ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the query must fail");
    assert!(
        stderr.contains(&*victim.to_string_lossy()) && stderr.contains("truncated"),
        "the error must name the truncated file: {stderr}"
    );
    // The cluster still serves: the other file, exactly.
    let got = env.ok(&["query", "t", "--by", "payment_type", "--json", &files[0]]);
    let want = env.ok(&["agg", "--by", "payment_type", "--json", &files[0]]);
    assert_eq!(
        result_core(&json(&got.stdout)),
        result_core(&json(&want.stdout))
    );
    // Before any work: a file that cannot be read is named, not half-computed.
    let missing = data.join("missing.csv").to_string_lossy().into_owned();
    let out = env.run(&["query", "t", "--by", "payment_type", &files[0], &missing]);
    assert!(!out.success());
    assert!(out.stderr.contains("missing.csv"), "{out}");
}

#[test]
fn workers_exit_by_themselves_after_the_coordinator_is_killed() {
    let env = Env::new("orphan");
    env.up("o", 2, 1, &[("CORRAL_WORKER_ORPHAN_TIMEOUT_SECS", "2")]);
    let dir = env.cluster_dir("o");
    let workers = env.worker_pids("o");
    kill9(env.coordinator_pid("o"));
    assert!(
        wait_for(Duration::from_secs(30), || workers
            .iter()
            .all(|p| !alive_for(*p, &dir))),
        "orphaned workers still run"
    );
    let log = std::fs::read_to_string(dir.join("logs/worker-0.log")).unwrap_or_default();
    assert!(log.contains("unreachable"), "{log}");
    // `corral down` cleans up the stale coordinator.json.
    env.ok(&["down", "o"]);
    assert!(!dir.join("coordinator.json").exists());
}

/// The coordinator killed mid-query, and a new one started on the same cluster directory (what
/// a SLURM head job does when its coordinator dies): the workers reconnect to it, the query
/// resumes from the partitions the old one had accepted — they are not computed again — and
/// the client that submitted it follows it to an exact result by itself. The takeover time
/// (kill → new coordinator.json) is printed for the closing note.
#[test]
fn a_coordinator_killed_mid_query_is_taken_over_and_the_query_finishes_exact() {
    let env = Env::new("takeover");
    let data = env.gen_taxi("d", 2, 30_000, 0.02);
    env.up("r", 3, 1, &[("CORRAL_WORKER_TEST_DELAY_MS", "40")]);
    let dir = env.cluster_dir("r");
    let glob = data.join("*.csv").to_string_lossy().into_owned();
    let child = env
        .corral(&[
            "query",
            "r",
            "--by",
            "payment_type",
            "--json",
            "--partition-bytes",
            "65536",
            &glob,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("query starts");
    assert!(
        wait_for(Duration::from_secs(60), || tasks_done(&env, "r") >= 10),
        "the query made no progress: {}",
        env.status("r")
    );
    let before: serde_json::Value =
        json(&std::fs::read_to_string(dir.join("coordinator.json")).expect("coordinator.json"));
    kill9(env.coordinator_pid("r"));
    let killed = std::time::Instant::now();
    let log = std::fs::File::create(dir.join("logs/coordinator-2.log")).expect("log");
    let mut second = env
        .agent(&[
            "coordinator",
            "--cluster",
            &dir.to_string_lossy(),
            "--bind",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("a new coordinator starts");
    assert!(
        wait_for(Duration::from_secs(30), || {
            std::fs::read_to_string(dir.join("coordinator.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| v["pid"] != before["pid"])
        }),
        "the new coordinator never published itself"
    );
    let takeover = killed.elapsed();
    let after: serde_json::Value =
        json(&std::fs::read_to_string(dir.join("coordinator.json")).expect("coordinator.json"));
    assert_eq!(
        after["cert_sha256"], before["cert_sha256"],
        "the new coordinator presents the pinned certificate"
    );
    let out = child.wait_with_output().expect("query ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = json(&stdout);
    let want = json(
        &env.ok(&["agg", "--by", "payment_type", "--json", &glob])
            .stdout,
    );
    assert_eq!(result_core(&got), result_core(&want));
    let resumed = got["resumed"].as_u64().expect("resumed");
    assert!(
        resumed >= 10,
        "the partitions finished before the kill are taken over, not computed again: {got}"
    );
    // The workers that were there before the kill serve the new coordinator.
    let st = env.status("r");
    let live = st["snapshot"]["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter(|w| w["state"] == "Alive")
        .count();
    assert_eq!(live, 3, "{st}");
    println!(
        "figure: takeover (kill -9 → new coordinator.json) {:.2} s; {resumed} partitions taken over",
        takeover.as_secs_f64()
    );
    env.ok(&["down", "r"]);
    let _ = second.wait();
}
