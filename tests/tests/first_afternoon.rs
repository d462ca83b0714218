//! What a new user stumbled on in a first afternoon (issue 16), on local clusters: an unknown
//! name is a one-line error naming the closest cluster (exit 1), a query on a stopped cluster
//! says it is down and since when.

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
