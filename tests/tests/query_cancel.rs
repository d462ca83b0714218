//! Stopping queries on a local cluster: Ctrl-C on `corral query` cancels the query on the
//! cluster (not just the client) and the next query runs; `--timeout` cancels a query that
//! runs too long, with the reason.

use std::process::{Command, Stdio};
use std::time::Duration;

use corral_tests::cluster::{Env, wait_for};

fn signal(pid: u32, sig: &str) {
    let status = Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", sig, &pid.to_string()])
        .status()
        .expect("sh");
    assert!(status.success(), "kill -s {sig} {pid}");
}

/// The running query's phase, from `corral status --json` (`None`: no query running).
fn running_phase(env: &Env, name: &str) -> Option<String> {
    env.status(name)["snapshot"]["query"]["phase"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn ctrl_c_cancels_the_query_on_the_cluster_and_the_next_query_runs() {
    let env = Env::new("cancel");
    let slow = env.gen_taxi("slow", 1, 20_000, 0.0);
    let small = env.data().join("small.csv");
    std::fs::write(&small, "payment_type,fare\n1,2.5\n2,3.0\n1,1.0\n").expect("write");
    // Every partition takes ≥ 500 ms: the slow query would run for about half a minute.
    env.up("c", 2, 1, &[("CORRAL_WORKER_TEST_DELAY_MS", "500")]);
    let glob = slow.join("*.csv").to_string_lossy().into_owned();
    let child = env
        .corral(&[
            "query",
            "c",
            "--by",
            "payment_type",
            "--partition-bytes",
            "16384",
            &glob,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("query starts");
    assert!(
        wait_for(Duration::from_secs(60), || running_phase(&env, "c")
            .as_deref()
            == Some("Running")),
        "the query never ran: {}",
        env.status("c")
    );
    signal(child.id(), "INT");
    let out = child.wait_with_output().expect("query ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cancelled (Ctrl-C)"), "{stderr}");

    // The cluster let go of it: no query running, one failed, and the next one runs.
    assert!(
        wait_for(Duration::from_secs(30), || running_phase(&env, "c")
            .is_none()),
        "the cancelled query still runs: {}",
        env.status("c")
    );
    let st = env.status("c");
    assert_eq!(st["snapshot"]["queries_failed"], 1, "{st}");
    assert_eq!(st["snapshot"]["queries_done"], 0, "{st}");
    let next = env.ok(&[
        "query",
        "c",
        "--by",
        "payment_type",
        "--json",
        &small.to_string_lossy(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&next.stdout).expect("JSON");
    assert_eq!(v["rows"], 3, "{v}");
    assert_eq!(env.status("c")["snapshot"]["queries_done"], 1);
}

#[test]
fn a_query_past_its_timeout_is_cancelled_with_the_reason() {
    let env = Env::new("timeout");
    let slow = env.gen_taxi("slow", 1, 20_000, 0.0);
    env.up("t", 1, 1, &[("CORRAL_WORKER_TEST_DELAY_MS", "500")]);
    let glob = slow.join("*.csv").to_string_lossy().into_owned();
    let out = env.run(&[
        "query",
        "t",
        "--by",
        "payment_type",
        "--timeout",
        "2s",
        "--partition-bytes",
        "16384",
        &glob,
    ]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains("cancelled") && out.stderr.contains("timeout of 2 s"),
        "{out}"
    );
    assert!(
        wait_for(Duration::from_secs(30), || running_phase(&env, "t")
            .is_none()),
        "{}",
        env.status("t")
    );
}
