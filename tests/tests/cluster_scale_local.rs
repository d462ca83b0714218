//! `corral scale` on a local cluster: up starts more worker processes (recorded in spec.json),
//! down drains the newest ones mid-query — their partitions are finished and reported before
//! they are stopped, so nothing is re-run and the result is exact — and then stops them.

use std::process::Stdio;
use std::time::Duration;

use corral_tests::cluster::{Env, alive_for, result_core, wait_for};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn live_workers(env: &Env, name: &str) -> usize {
    env.status(name)["snapshot"]["workers"]
        .as_array()
        .map_or(0, |ws| ws.iter().filter(|w| w["state"] == "Alive").count())
}

#[test]
fn scale_a_local_cluster_down_mid_query_and_up_again() {
    let env = Env::new("scale-local");
    let data = env.gen_taxi("d", 2, 30_000, 0.02);
    // Each partition takes ≥ 40 ms, so the query is still running when the scale-down comes.
    env.up("s", 4, 1, &[("CORRAL_WORKER_TEST_DELAY_MS", "40")]);
    let first = env.worker_pids("s");
    let glob = data.join("*.csv").to_string_lossy().into_owned();
    let query = env
        .corral(&[
            "query",
            "s",
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
        wait_for(Duration::from_secs(60), || {
            env.status("s")["snapshot"]["query"]["tasks"]["done"]
                .as_u64()
                .unwrap_or(0)
                >= 4
        }),
        "the query made no progress: {}",
        env.status("s")
    );

    let down = env.ok(&["scale", "s", "--workers", "2"]);
    assert!(down.stdout.contains("(4 → 2)"), "{down}");
    assert!(down.stdout.contains("2 drained first"), "{down}");
    // The newest two are gone, the oldest two run, and spec.json lists only those.
    for p in &first[2..] {
        assert!(
            !alive_for(*p, &env.cluster_dir("s")),
            "worker {p} still runs"
        );
    }
    assert_eq!(env.worker_pids("s"), first[..2].to_vec());
    assert_eq!(env.record("s")["workers"], 2);
    // Workers removed on purpose are listed as having left, not as lost.
    let workers = env.status("s")["snapshot"]["workers"].clone();
    for p in &first[2..] {
        let w = workers
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["pid"] == *p))
            .unwrap_or_else(|| panic!("worker {p} not listed: {workers}"));
        assert_eq!(w["state"], "Left", "{w}");
    }

    let out = query.wait_with_output().expect("query ends");
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
    assert_eq!(
        got["reruns"].as_array().map(Vec::len),
        Some(0),
        "drained workers hand in what they hold before they stop: nothing is re-run: {got}"
    );

    // Up again: two more processes, connected when the command returns, recorded in spec.json.
    let up = env.ok(&["scale", "s", "--workers", "4"]);
    assert!(up.stdout.contains("(2 → 4)"), "{up}");
    assert_eq!(live_workers(&env, "s"), 4);
    let pids = env.worker_pids("s");
    assert_eq!(pids.len(), 4);
    assert!(pids.iter().all(|p| alive_for(*p, &env.cluster_dir("s"))));
    let same = env.ok(&["scale", "s", "--workers", "4"]);
    assert!(same.stdout.contains("already has 4 workers"), "{same}");
    let zero = env.run(&["scale", "s", "--workers", "0"]);
    assert!(!zero.success(), "{zero}");

    // Down stops the added workers too.
    env.ok(&["down", "s"]);
    assert!(
        wait_for(Duration::from_secs(10), || pids
            .iter()
            .all(|p| !alive_for(*p, &env.cluster_dir("s")))),
        "workers of a stopped cluster still run"
    );
}
