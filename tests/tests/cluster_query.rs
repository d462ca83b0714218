//! A local cluster of 4 workers computes exactly what `corral agg` computes in one process, on
//! clean and on dirty data; status, ls and down tell the truth and leave nothing running.

use corral_tests::cluster::{Env, alive_for, result_core};

fn json(out: &corral_tests::process::Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn four_workers_equal_agg_on_clean_and_dirty_data() {
    let env = Env::new("cq");
    let clean = env.gen_taxi("clean", 2, 20_000, 0.0);
    let dirty = env.gen_taxi("dirty", 2, 20_000, 0.05);
    env.up("c4", 4, 1, &[]);

    let st = env.status("c4");
    assert_eq!(st["state"], "running", "{st}");
    assert_eq!(st["snapshot"]["cores"], 4, "{st}");
    let workers = st["snapshot"]["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 4);
    assert!(workers.iter().all(|w| w["state"] == "Alive"), "{st}");

    for (data, extra) in [
        (&clean, vec![]),
        (
            &dirty,
            vec!["--sum", "fare_amount", "--mean", "tip_amount", "--count"],
        ),
    ] {
        // A relative glob: the client resolves it against its own directory.
        let rel = data
            .strip_prefix(env.path())
            .expect("under the env")
            .join("*.csv")
            .to_string_lossy()
            .into_owned();
        let mut q = vec!["query", "c4", "--by", "payment_type", "--json"];
        // Small partitions, so that every worker gets some.
        q.extend(["--partition-bytes", "300000"]);
        q.extend(extra.iter().copied());
        q.push(&rel);
        let got = json(&env.ok(&q));
        // The cluster reports absolute paths (the client resolved them): so does agg here.
        let abs = data.join("*.csv").to_string_lossy().into_owned();
        let mut a = vec!["agg", "--by", "payment_type", "--json"];
        a.extend(extra.iter().copied());
        a.push(&abs);
        let want = json(&env.ok(&a));
        assert_eq!(
            result_core(&got),
            result_core(&want),
            "cluster vs agg on {}",
            data.display()
        );
        assert!(got["workers"].as_u64().expect("workers") >= 2, "{got}");
        assert!(got["tasks"].as_u64().expect("tasks") > 4, "{got}");
        if data == &dirty {
            assert!(got["bad_rows"]["total"].as_u64().expect("bad") > 0, "{got}");
        }
    }

    // The human form prints like `corral agg`, with workers and cores on stderr.
    let human = env.ok(&["query", "c4", "--by", "payment_type", "data/clean/*.csv"]);
    let agg = env.ok(&["agg", "--by", "payment_type", "data/clean/*.csv"]);
    assert_eq!(human.stdout, agg.stdout);
    assert!(human.stderr.contains("worker"), "{human}");

    let ls = json(&env.ok(&["ls", "--json"]));
    assert_eq!(ls[0]["name"], "c4");
    assert_eq!(ls[0]["state"], "running");

    let dir = env.cluster_dir("c4");
    let mut pids = env.worker_pids("c4");
    pids.push(env.coordinator_pid("c4"));
    let down = env.ok(&["down", "c4"]);
    assert!(down.stdout.contains("is down"), "{down}");
    for p in pids {
        assert!(!alive_for(p, &dir), "pid {p} still runs after corral down");
    }
    assert!(!dir.join("coordinator.json").exists());
    let ls = json(&env.ok(&["ls", "--json"]));
    assert_eq!(ls[0]["state"], "ended");
    let ledger = std::fs::read_to_string(dir.join("ledger.jsonl")).expect("ledger");
    assert_eq!(
        ledger
            .lines()
            .filter(|l| l.contains("\"event\":\"query\""))
            .count(),
        3
    );
    assert!(
        ledger
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"event\":\"down\""))
    );
    let status = env.run(&["status", "c4"]);
    assert!(status.stdout.contains("has ended"), "{status}");
}

#[test]
fn cluster_names_are_checked_and_a_missing_cluster_is_named() {
    let env = Env::new("cq2");
    let out = env.run(&["up", "--local", "--name", "../evil", "--workers", "1"]);
    assert!(!out.success());
    assert!(out.stderr.contains("invalid cluster name"), "{out}");
    let out = env.run(&["query", "nope", "--by", "payment_type", "x.csv"]);
    assert!(!out.success());
    assert!(out.stderr.contains("no cluster named \"nope\""), "{out}");
}

/// Issue 12: partitions follow the cluster's cores and the bytes, not the files: a query over
/// 4 small files on 6 workers uses all 6 (it used to run 4 partitions on 2 workers).
#[test]
fn four_small_files_use_all_six_workers() {
    let env = Env::new("cq6");
    let data = env.gen_taxi("small", 4, 5_000, 0.0);
    env.up("c6", 6, 1, &[]);
    let glob = data.join("*.csv").to_string_lossy().into_owned();
    let got = json(&env.ok(&["query", "c6", "--by", "payment_type", "--json", &glob]));
    let want = json(&env.ok(&["agg", "--by", "payment_type", "--json", &glob]));
    assert_eq!(result_core(&got), result_core(&want));
    assert_eq!(got["workers"], 6, "{got}");
    assert_eq!(got["cores"], 6, "{got}");
    assert!(got["tasks"].as_u64().expect("tasks") >= 6, "{got}");
    env.ok(&["down", "c6"]);
}
