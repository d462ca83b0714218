//! What a new user stumbled on in a first afternoon (issue 16), on local clusters: an unknown
//! name is a one-line error naming the closest cluster (exit 1), a query on a stopped cluster
//! says it is down and since when; a name is free again after `down` (history keeps the old
//! record, `forget` removes it); `ls` shows what runs and what ended lately, `--all` every one.

use corral_tests::cluster::Env;

#[test]
fn an_unknown_name_names_the_closest_cluster_and_exits_1() {
    let env = Env::new("fa-names");
    env.up("lab", 1, 1, &[]);

    let attach = env.run(&["attach", "lba"]);
    assert_eq!(attach.code(), Some(1), "{attach}");
    assert_eq!(
        attach.stderr.trim(),
        "corral: error: no cluster named \"lba\"; did you mean \"lab\"? (`corral ls` lists yours)",
        "{attach}"
    );
    assert!(attach.stdout.is_empty(), "{attach}");

    let far = env.run(&["status", "nosuch"]);
    assert_eq!(far.code(), Some(1), "{far}");
    assert_eq!(far.stderr.trim().lines().count(), 1, "{far}");
    assert!(far.stderr.contains("yours are: lab"), "{far}");
}

#[test]
fn a_query_on_a_stopped_cluster_says_it_is_down_and_since_when() {
    let env = Env::new("fa-down");
    let data = env.gen_taxi("d", 1, 1_000, 0.0);
    env.up("gone", 1, 1, &[]);
    env.ok(&["down", "gone"]);
    let glob = data.join("*.csv").to_string_lossy().into_owned();
    let q = env.run(&["query", "gone", "--by", "payment_type", &glob]);
    assert_eq!(q.code(), Some(1), "{q}");
    assert!(q.stderr.contains("cluster gone is down since 20"), "{q}");
    assert!(!q.stderr.contains("not started"), "{q}");
}

#[test]
fn a_name_is_free_again_after_down_and_forget_removes_the_ended_records() {
    let env = Env::new("fa-reuse");
    env.up("lab", 1, 1, &[]);
    env.ok(&["down", "lab"]);
    // The same name again: a new cluster, the old one kept for history.
    env.up("lab", 1, 1, &[]);
    assert_eq!(env.status("lab")["state"], "running");
    let refused = env.run(&["forget", "lab"]);
    assert_eq!(refused.code(), Some(1), "{refused}");
    assert!(refused.stderr.contains("`corral down lab`"), "{refused}");
    env.ok(&["down", "lab"]);
    let history: serde_json::Value =
        serde_json::from_str(&env.ok(&["history", "lab", "--json"]).stdout).expect("JSON");
    let clusters = history["clusters"].as_array().expect("clusters");
    assert_eq!(clusters.len(), 2, "{history}");
    assert!(clusters.iter().all(|c| c["name"] == "lab"), "{history}");

    let forgot = env.ok(&["forget", "lab"]);
    assert!(forgot.stdout.contains("removed 2 directories"), "{forgot}");
    let ls: serde_json::Value =
        serde_json::from_str(&env.ok(&["ls", "--json", "--all"]).stdout).expect("JSON");
    assert_eq!(ls, serde_json::json!([]));
}

#[test]
fn ls_shows_what_runs_and_what_ended_lately_and_all_shows_every_one() {
    let env = Env::new("fa-ls");
    env.up("old", 1, 1, &[]);
    env.ok(&["down", "old"]);
    env.up("live", 1, 1, &[]);
    // "old" ended two days ago.
    let spec = env.cluster_dir("old").join("spec.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).expect("spec")).expect("JSON");
    let at = record["stopped"]["at_unix"].as_u64().expect("stopped");
    record["stopped"]["at_unix"] = (at - 2 * 86_400).into();
    std::fs::write(&spec, record.to_string()).expect("write spec");

    let ls = env.ok(&["ls"]);
    assert!(ls.stdout.contains("live "), "{ls}");
    assert!(!ls.stdout.contains("old "), "{ls}");
    assert!(
        ls.stdout
            .contains("(1 cluster ended more than a day ago; `corral ls --all` lists it)"),
        "{ls}"
    );
    let all = env.ok(&["ls", "--all"]);
    assert!(
        all.stdout.contains("old ") && all.stdout.contains("ended"),
        "{all}"
    );
}

#[test]
fn a_local_cluster_bigger_than_this_machine_is_said_with_what_fits() {
    let env = Env::new("fa-fit");
    let machine = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = (machine + 1).to_string();
    let out = env.up("big", machine as u32 + 1, 1, &[]);
    assert!(
        out.stderr.contains(&format!(
            "warning: asks for {} cores but this machine has {machine}",
            machine + 1
        )),
        "{out}"
    );
    assert!(out.stderr.contains(" fits"), "{out}");
    let fits = env.up("small", 1, 1, &[]);
    assert!(!fits.stderr.contains("warning"), "{fits}");
    let batch = env.run(&[
        "batch",
        "--local",
        "--workers",
        &workers,
        "--cores",
        "1",
        "--",
        "true",
    ]);
    assert!(batch.success(), "{batch}");
    assert!(
        batch.stderr.contains("corral batch: warning: asks for"),
        "{batch}"
    );
}
