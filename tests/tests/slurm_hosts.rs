//! corral across a real network: the hosts-mode test bed (`CORRAL_TESTBED_NET=hosts`), where
//! every node n1..n3 is its own network and UTS namespace with its own address on a private
//! bridge and the login side (this test) is the root namespace. The coordinator must listen on
//! its node's bridge address, and one node's death mid-query must not be the cluster's: the
//! result stays exact, and the coordinator and the workers on the healthy node keep running
//! after SLURM declares the node DOWN (no requeue, no new empty cluster).

use std::process::Stdio;
use std::time::Duration;

use corral_tests::cluster::{Env, wait_for};
use corral_tests::expect::{counts_in, expected_counts};
use corral_tests::hosts::Hosts;
use corral_tests::on_slurm::OnSlurm;

#[test]
fn slurm_hosts_a_node_dies_mid_query_and_the_cluster_goes_on_exact() {
    let Some(hosts) = Hosts::require() else {
        return;
    };
    let bed = &hosts.bed;
    let env = Env::new("hosts-death");
    let on = OnSlurm::new(&env, bed);
    let data = env.gen_taxi("taxi", 6, 60_000, 0.0);
    let _down = on.down_on_drop("nd");
    // 3 workers × 2 cores on nodes of 4 CPUs: the head job spans two nodes. Each task waits
    // a little, so the query is still running when a node dies.
    let up = on.env.run_cmd(
        on.corral(&[
            "up",
            "--name",
            "nd",
            "--workers",
            "3",
            "--cores",
            "2",
            "--yes",
            "--json",
            "--timeout",
            "90s",
        ])
        .env("CORRAL_WORKER_TEST_DELAY_MS", "150"),
    );
    assert!(up.success(), "{up}");
    let v: serde_json::Value = serde_json::from_str(&up.stdout).expect("up --json");
    let coordinator = v["coordinator"].as_str().unwrap_or_default().to_string();
    // The address other nodes reach it by: on the bridge, never loopback.
    assert!(
        coordinator.starts_with("10.77.0.") && !coordinator.starts_with("127."),
        "{up}"
    );
    let info = std::fs::read_to_string(env.cluster_dir("nd").join("coordinator.json"))
        .expect("coordinator.json");
    assert!(info.contains("\"address\": \"10.77.0."), "{info}");

    let query = on
        .corral(&[
            "query",
            "nd",
            "--by",
            "payment_type",
            "--partition-bytes",
            "1000000",
            "--json",
            &format!("{}/*.csv", data.display()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("query starts");
    // Once work is done on both nodes, every process of a node without the coordinator dies,
    // slurmd included.
    let mut victim_node = String::new();
    let started = wait_for(Duration::from_secs(60), || {
        let s = on.status("nd");
        let coord_node = s["snapshot"]["coordinator_node"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let busy = s["snapshot"]["tasks"]["done"].as_u64().unwrap_or(0) >= 4;
        if let Some(w) = s["snapshot"]["workers"].as_array().and_then(|ws| {
            ws.iter()
                .find(|w| w["node"].as_str().is_some_and(|n| n != coord_node))
        }) {
            victim_node = w["node"].as_str().unwrap_or("").to_string();
        }
        busy && !victim_node.is_empty()
    });
    assert!(started, "the query never got going on two nodes");
    hosts.kill_node(&victim_node);
    let _restore = hosts.restore_on_drop();

    // The query finishes exact: the dead node's partitions ran again elsewhere.
    let out = query.wait_with_output().expect("query ends");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(counts_in(&stdout), expected_counts(&data), "{stdout}");

    // SLURM declares the node DOWN (SlurmdTimeout 10 s on the bed)...
    let down = wait_for(Duration::from_secs(90), || {
        bed.run_ok("sinfo", &["-h", "-N", "-n", &victim_node, "-o", "%t"])
            .map(|o| o.stdout.trim().starts_with("down"))
            .unwrap_or(false)
    });
    assert!(down, "{victim_node} was never declared down");
    // ...and the cluster is still the same cluster: the head job runs (not requeued), the
    // coordinator answers, and the dead node's workers are shown lost, with the node's name.
    std::thread::sleep(Duration::from_secs(3));
    let s = on.status("nd");
    assert_eq!(s["state"], "running", "{s}");
    let job = on.job_ids("nd")[0].to_string();
    let state = bed
        .run_ok("squeue", &["-h", "-j", &job, "-o", "%T"])
        .expect("squeue");
    assert_eq!(state.stdout.trim(), "RUNNING", "{state}");
    let workers = s["snapshot"]["workers"].as_array().expect("workers");
    assert!(
        workers
            .iter()
            .filter(|w| w["node"] == victim_node.as_str())
            .all(|w| w["state"] == "Dead"),
        "{s}"
    );
    assert!(
        workers
            .iter()
            .any(|w| w["node"] != victim_node.as_str() && w["state"] == "Alive"),
        "{s}"
    );
    // A query after the loss is exact too, on what is left.
    let again = on.run(&[
        "query",
        "nd",
        "--by",
        "payment_type",
        "--json",
        &format!("{}/*.csv", data.display()),
    ]);
    assert!(again.success(), "{again}");
    assert_eq!(counts_in(&again.stdout), expected_counts(&data), "{again}");
}

#[test]
fn slurm_hosts_a_stranger_on_another_node_gets_nothing_then_the_coordinators_node_dies() {
    let Some(hosts) = Hosts::require() else {
        return;
    };
    let bed = &hosts.bed;
    let env = Env::new("hosts-coord");
    let on = OnSlurm::new(&env, bed);
    let data = env.gen_taxi("taxi", 2, 20_000, 0.0);
    let _down = on.down_on_drop("cd");
    let up = on.run(&[
        "up",
        "--name",
        "cd",
        "--workers",
        "3",
        "--cores",
        "2",
        "--yes",
        "--json",
        "--timeout",
        "90s",
    ]);
    assert!(up.success(), "{up}");
    let dir = env.cluster_dir("cd");
    let coord_node = on.status("cd")["snapshot"]["coordinator_node"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(coord_node.starts_with('n'), "{coord_node}");

    // A stranger on a node without the coordinator: the cluster's address and pinned
    // certificate, but a secret of its own. It is refused after the TLS handshake and learns
    // nothing; the coordinator goes on serving the real cluster.
    let other = (1..=3)
        .map(|i| format!("n{i}"))
        .find(|n| *n != coord_node)
        .expect("another node");
    let stranger = env.path().join("stranger");
    std::fs::create_dir_all(stranger.join("logs")).expect("stranger dir");
    std::fs::copy(
        dir.join("coordinator.json"),
        stranger.join("coordinator.json"),
    )
    .expect("copy coordinator.json");
    std::fs::write(stranger.join("secret"), [7u8; 32]).expect("secret");
    let chmod = std::process::Command::new("chmod")
        .args(["-R", "go-rwx"])
        .arg(&stranger)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    let agent = corral_tests::bins::corral_agent();
    let refused = hosts.on_node(
        &other,
        &agent,
        &["worker", "--cluster", &stranger.display().to_string()],
    );
    let said = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(!refused.status.success(), "the stranger got in: {said}");
    assert!(
        said.contains("secret") || said.contains("auth") || said.contains("refused"),
        "{said}"
    );
    let q = on.run(&[
        "query",
        "cd",
        "--by",
        "payment_type",
        "--json",
        &format!("{}/*.csv", data.display()),
    ]);
    assert!(q.success(), "{q}");
    assert_eq!(counts_in(&q.stdout), expected_counts(&data), "{q}");

    // The coordinator's node dies, slurmd included: the workers elsewhere exit within their
    // orphan timeout, the job ends, and status and ls say what happened in words.
    let _restore = hosts.restore_on_drop();
    hosts.kill_node(&coord_node);
    let agents_left = |node: &str| {
        hosts
            .pids(node)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains(&*dir.to_string_lossy()))
            })
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(60), || agents_left(&other) == 0),
        "workers on {other} still run a minute after the coordinator's node died"
    );
    let mut last = serde_json::Value::Null;
    let ended = wait_for(Duration::from_secs(90), || {
        last = on.status("cd");
        last["state"] == "ended"
    });
    assert!(ended, "never shown as ended: {last}");
    let detail = last["observed"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("node"), "{last}");
    let status = on.run(&["status", "cd"]);
    assert!(status.stdout.contains("has ended"), "{status}");
    let ls: serde_json::Value =
        serde_json::from_str(&on.run(&["ls", "--json"]).stdout).expect("ls --json");
    assert!(
        ls.as_array()
            .is_some_and(|a| a.iter().any(|c| c["name"] == "cd" && c["state"] == "ended")),
        "{ls}"
    );
    // `corral down` leaves nothing queued and nothing running in any node.
    let down = on.run(&["down", "cd"]);
    assert!(down.success(), "{down}");
    let ids = on.job_ids("cd");
    assert!(on.still_queued(&ids).is_empty(), "{down}");
    for i in 1..=3 {
        assert_eq!(agents_left(&format!("n{i}")), 0, "n{i}");
    }
}
