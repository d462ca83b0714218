//! corral on a network that misbehaves, on the hosts-mode test bed (every node its own network
//! namespace): (b) a worker node cut off for 20 s mid-query, (c) 5 % packet loss on every node,
//! (d) the login side losing the coordinator's node. Faults are made and healed by
//! `scripts/slurm-test-cluster fault|heal` ([`Hosts::fault`]). Each test asserts what a user
//! sees and that results are exact (`expected.json` of the generated data). Node deaths (a)
//! and the coordinator's node (e, f) are in `slurm_hosts.rs`.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use corral_tests::cluster::{Env, wait_for};
use corral_tests::expect::{counts_in, expected_counts};
use corral_tests::hosts::Hosts;
use corral_tests::on_slurm::OnSlurm;
use corral_tests::tmux::{self, Session, sh_quote};

/// How long the partition of test (b) and the cut of test (d) last: longer than the heartbeat
/// timeout (5 s) and the QUIC idle timeout (10 s), shorter than SLURM's DOWN (~28 s on the bed).
const CUT: Duration = Duration::from_secs(20);

/// `corral up NAME` with W workers × 2 cores; `delay_ms` slows each partition down so a
/// query is still running when the fault starts.
fn up(on: OnSlurm<'_>, name: &str, workers: u32, delay_ms: u32) {
    let w = workers.to_string();
    let out = on.env.run_cmd(
        on.corral(&[
            "up",
            "--name",
            name,
            "--workers",
            &w,
            "--cores",
            "2",
            "--yes",
            "--json",
            "--timeout",
            "120s",
        ])
        .env("CORRAL_WORKER_TEST_DELAY_MS", delay_ms.to_string()),
    );
    assert!(out.success(), "{out}");
}

/// `corral query NAME --by payment_type --json` over `data`, in the background.
fn start_query(on: OnSlurm<'_>, name: &str, data: &std::path::Path) -> Child {
    on.corral(&[
        "query",
        name,
        "--by",
        "payment_type",
        "--partition-bytes",
        "500000",
        "--json",
        &format!("{}/*.csv", data.display()),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("query starts")
}

/// The query's JSON line, once it ended successfully with the exact counts.
fn exact(child: Child, data: &std::path::Path) -> serde_json::Value {
    let out = child.wait_with_output().expect("query ends");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(counts_in(&stdout), expected_counts(data), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("{\"cluster\""))
        .expect("the query's JSON line");
    serde_json::from_str(line).expect("JSON")
}

/// Workers of `snapshot` on `node` in `state` (`Alive`, `Dead`, …).
fn workers_on(s: &serde_json::Value, node: &str, state: &str) -> usize {
    s["snapshot"]["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter(|w| w["node"] == node && w["state"] == state)
                .count()
        })
        .unwrap_or(0)
}

/// Once the query has done some work on two nodes: a node with workers but not the
/// coordinator.
fn busy_worker_node(on: OnSlurm<'_>, name: &str) -> String {
    let mut victim = String::new();
    let going = wait_for(Duration::from_secs(60), || {
        let s = on.status(name);
        let coord = s["snapshot"]["coordinator_node"].as_str().unwrap_or("");
        let done = s["snapshot"]["tasks"]["done"].as_u64().unwrap_or(0);
        if let Some(n) = s["snapshot"]["workers"].as_array().and_then(|ws| {
            ws.iter()
                .filter_map(|w| w["node"].as_str())
                .find(|n| !coord.is_empty() && *n != coord)
        }) {
            victim = n.to_string();
        }
        done >= 4 && !victim.is_empty()
    });
    assert!(going, "the query never got going on two nodes");
    victim
}

#[test]
fn slurm_hosts_b_a_worker_node_cut_off_for_20s_mid_query_is_lost_rejoins_and_the_result_is_exact() {
    let Some(hosts) = Hosts::require() else {
        return;
    };
    let env = Env::new("hosts-cut");
    let on = OnSlurm::new(&env, &hosts.bed);
    let data = env.gen_taxi("taxi", 6, 60_000, 0.0);
    let _down = on.down_on_drop("np");
    // 3 × 2 cores on nodes of 4 CPUs: the head job spans two nodes.
    up(on, "np", 3, 200);
    let query = start_query(on, "np", &data);
    let victim = busy_worker_node(on, "np");
    let _restore = hosts.restore_on_drop();
    let cut_at = Instant::now();
    let mut cut = hosts.fault(&victim, &["partition"]);

    // While it is cut off, the coordinator declares its workers lost (their heartbeats stop)
    // and gives what they held to the others; the user sees them dead, with the node's name.
    let mut last = serde_json::Value::Null;
    let lost = wait_for(CUT, || {
        last = on.status("np");
        workers_on(&last, &victim, "Dead") > 0 && workers_on(&last, &victim, "Alive") == 0
    });
    assert!(
        lost,
        "{victim}'s workers were not declared lost during the cut: {last}"
    );
    std::thread::sleep(CUT.saturating_sub(cut_at.elapsed()));
    cut.heal();

    // The query is exact — nothing counted twice, nothing lost — and says which partitions
    // ran again because a worker on the cut-off node was lost.
    let report = exact(query, &data);
    let reruns = report["reruns"].as_array().cloned().unwrap_or_default();
    assert!(
        reruns
            .iter()
            .any(|r| r["reason"]["WorkerLost"]["node"] == victim.as_str()),
        "{report}"
    );

    // Healed, the worker process is back: it rejoins as a new worker, and status says so.
    let rejoined = wait_for(Duration::from_secs(60), || {
        last = on.status("np");
        workers_on(&last, &victim, "Alive") > 0
    });
    assert!(
        rejoined,
        "no worker of {victim} came back after the heal: {last}"
    );
    let warnings = last["snapshot"]["warnings"].to_string();
    assert!(
        warnings.contains(&format!("{victim}: worker")) && warnings.contains("rejoined as worker"),
        "{last}"
    );
    let text = on.run(&["status", "np"]);
    assert!(
        text.stdout.contains("is back: it rejoined as worker"),
        "{text}"
    );
    // The same cluster, whole: its job runs, and a query now is exact on every worker.
    let job = on.job_ids("np")[0].to_string();
    let state = hosts
        .bed
        .run_ok("squeue", &["-h", "-j", &job, "-o", "%T"])
        .expect("squeue");
    assert_eq!(state.stdout.trim(), "RUNNING", "{state}");
    let again = exact(start_query(on, "np", &data), &data);
    assert!(
        again["reruns"].as_array().is_none_or(|r| r.is_empty()),
        "{again}"
    );
}

#[test]
fn slurm_hosts_c_five_percent_packet_loss_on_every_node_queries_stay_exact() {
    let Some(hosts) = Hosts::require() else {
        return;
    };
    let env = Env::new("hosts-loss");
    let on = OnSlurm::new(&env, &hosts.bed);
    let data = env.gen_taxi("taxi", 4, 40_000, 0.01);
    let _down = on.down_on_drop("nl");
    let _restore = hosts.restore_on_drop();
    // Every node loses 5 % of its packets, both ways, from before the cluster starts: the
    // start, the workers' traffic and the login side's all cross lossy links.
    let _loss: Vec<_> = (1..=3)
        .map(|i| hosts.fault(&format!("n{i}"), &["loss", "5"]))
        .collect();
    up(on, "nl", 3, 20);
    for _ in 0..3 {
        exact(start_query(on, "nl", &data), &data);
    }
    let s = on.status("nl");
    assert_eq!(s["state"], "running", "{s}");
}

#[test]
fn slurm_hosts_d_the_login_side_loses_the_coordinators_node_status_says_unreachable_and_the_tui_reconnects()
 {
    let Some(hosts) = Hosts::require() else {
        return;
    };
    if !tmux::require() {
        return;
    }
    let env = Env::new("hosts-login");
    let on = OnSlurm::new(&env, &hosts.bed);
    let _down = on.down_on_drop("nc");
    up(on, "nc", 3, 0);
    let s = on.status("nc");
    let coord = s["snapshot"]["coordinator_node"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(coord.starts_with('n'), "{s}");

    // The TUI on the cluster's dashboard, connected; it shows each worker's node.
    let bed_env: String = hosts
        .bed
        .env()
        .iter()
        .map(|(k, v)| format!("{k}={} ", sh_quote(v)))
        .collect();
    let cmd = format!(
        "env -u SLURM_JWT {bed_env}XDG_STATE_HOME={} XDG_CONFIG_HOME={} {} attach nc --no-mouse; sleep 600",
        sh_quote(&env.path().join("state").display().to_string()),
        sh_quote(&env.path().join("config").display().to_string()),
        sh_quote(&corral_tests::bins::corral().display().to_string())
    );
    let session = Session::start("hosts-login", 140, 40, &cmd);
    let long = Duration::from_secs(90);
    session.wait_text("✓ authenticated", long);
    session.wait_text(&coord, long);

    // The login side loses the coordinator's node (and so does slurmctld, which lives there).
    let _restore = hosts.restore_on_drop();
    let cut_at = Instant::now();
    let mut cut = hosts.fault(&coord, &["cut-login"]);
    // status returns — no hang — and says unreachable, not running.
    let status = on.run(&["status", "nc"]);
    assert_eq!(status.status.code(), Some(3), "{status}");
    assert!(
        status.stdout.starts_with("cluster nc is unreachable:")
            && !status.stdout.contains("— running for"),
        "{status}"
    );
    assert!(status.stdout.contains("corral down nc"), "{status}");
    let json = on.status("nc");
    assert_eq!(json["state"], "unreachable", "{json}");
    // The TUI says the connection is gone...
    session.wait_text("✗ not connected", long);
    std::thread::sleep(CUT.saturating_sub(cut_at.elapsed()));
    cut.heal();
    // ...and reconnects by itself once the link heals; the cluster kept running.
    session.wait_for("the TUI to reconnect", long, |s| {
        s.contains("✓ authenticated") && !s.contains("not connected")
    });
    let s = on.status("nc");
    assert_eq!(s["state"], "running", "{s}");
    let job = on.job_ids("nc")[0].to_string();
    let state = hosts
        .bed
        .run_ok("squeue", &["-h", "-j", &job, "-o", "%T"])
        .expect("squeue");
    assert_eq!(state.stdout.trim(), "RUNNING", "{state}");
}
