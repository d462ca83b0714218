//! `corral demo` from a fresh state and cache directory: generates its data, runs the query on
//! a local cluster, says the counts are exact, and leaves nothing running.

use corral_tests::cluster::{Env, alive_for};

#[test]
fn demo_runs_and_says_exact() {
    let env = Env::new("demo");
    // Fewer rows than the real demo: debug binaries in a shared test run.
    let out = env.ok(&["demo", "--no-tui", "--rows-per-file", "25000"]);
    assert!(out.stdout.contains("payment_type"), "{out}");
    assert!(out.stdout.contains("exact: every count matches"), "{out}");
    assert!(!out.stdout.contains("NOT EXACT"), "{out}");
    assert!(out.stdout.contains("2 workers"), "{out}");
    let dir = env.cluster_dir("demo");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("spec.json")).expect("spec"))
            .expect("json");
    let mut pids: Vec<u32> = record["backend"]["worker_pids"]
        .as_array()
        .expect("pids")
        .iter()
        .filter_map(|p| p.as_u64().map(|p| p as u32))
        .collect();
    pids.push(record["backend"]["coordinator_pid"].as_u64().expect("pid") as u32);
    assert!(pids.iter().all(|p| !alive_for(*p, &dir)));
    // A second run reuses the data and replaces the stopped demo cluster.
    let again = env.ok(&["demo", "--no-tui", "--rows-per-file", "25000"]);
    assert!(!again.stderr.contains("generating"), "{again}");
    assert!(again.stdout.contains("exact:"), "{again}");
}
