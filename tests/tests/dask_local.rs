//! Dask mode on local clusters, with the real dask and distributed (the test venv): the shipped
//! nyc-taxi script under `corral batch --local --dask` prints exactly `expected.json`'s counts
//! and nothing runs afterwards; only holders of the cluster's client certificate get in (not
//! a client without certificates, not one with another CA's, not plain tcp://), and corral's
//! script says what is missing instead of distributed's TypeError; a Dask worker dies with
//! its agent, even one killed with SIGKILL; a computation on scattered data (no lineage to
//! recompute it from) finishes exact while the cluster scales up and down, because workers
//! are retired through the scheduler before they stop.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use corral_tests::cluster::{Env, kill9, wait_for};
use corral_tests::dask::{
    SCALED_JOB, children_of, dask_processes, nyc_taxi_script, path_with_python, python, taxi_counts,
};
use corral_tests::expect::{expected_counts, only_cluster, processes_of};
use corral_tests::process;

/// Tries a client of `address` with `env` (and nothing else of Dask's settings) and says
/// `answer N` or `refused ExceptionName`.
const PROBE: &str = r#"
import sys
from distributed import Client
try:
    with Client(sys.argv[1], timeout="10s") as c:
        print("answer", c.submit(lambda x: x + 1, 41).result(timeout=60))
except Exception as e:
    print("refused", type(e).__name__, str(e).replace("\n", " ")[:200])
"#;

/// The Dask variables of a process's environment, removed (so only what a test sets counts).
const DASK_VARS: [&str; 5] = [
    "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION",
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
    "DASK_SCHEDULER_ADDRESS",
];

fn probe(dir: &Path, address: &str, env: &[(String, String)]) -> String {
    let mut cmd = Command::new(python());
    cmd.args(["-c", PROBE, address]).current_dir(dir);
    for v in DASK_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let out = process::run(&mut cmd, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
    out.stdout.trim().to_string()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn batch_local_dask_runs_the_shipped_nyc_taxi_script_exactly_and_leaves_nothing() {
    let env = Env::new("dask-batch");
    let data = env.gen_taxi("taxi", 2, 20_000, 0.0);
    let py = python().to_string_lossy().into_owned();
    let script = nyc_taxi_script().to_string_lossy().into_owned();
    let glob = format!("{}/*.csv", data.display());
    let out = env.run_cmd(
        env.corral(&[
            "batch",
            "--local",
            "--dask",
            "--python",
            &py,
            "--workers",
            "2",
            "--cores",
            "1",
            "--",
            &script,
            "{}",
            &glob,
        ])
        .env("PATH", path_with_python()),
    );
    assert!(out.success(), "{out}");
    assert_eq!(taxi_counts(&out.stdout), expected_counts(&data), "{out}");
    // The script was given the Dask scheduler's TLS address, and saw both Dask workers.
    assert!(out.stderr.contains("at tls://127.0.0.1:"), "{out}");
    assert!(out.stderr.contains("nyc-taxi.py: 2 Dask workers"), "{out}");
    let name = only_cluster(&env);
    let dir = env.cluster_dir(&name);
    assert!(
        wait_for(Duration::from_secs(10), || processes_of(&dir).is_empty()),
        "still running for {}: {:?}",
        dir.display(),
        processes_of(&dir)
    );
    assert!(!dir.join("dask/scheduler.json").exists());
    let ls: serde_json::Value =
        serde_json::from_str(&env.ok(&["ls", "--json"]).stdout).expect("ls JSON");
    assert!(ls.to_string().contains("\"ended\""), "{ls}");
}

#[test]
fn only_holders_of_the_cluster_certificate_get_in_and_dask_dies_with_its_agent() {
    let env = Env::new("dask-tls");
    let py = python().to_string_lossy().into_owned();
    let up = env.up_with(
        "lab",
        &["--dask", "--python", &py, "--workers", "2", "--cores", "1"],
    );
    assert!(
        up.stdout.contains("dask:   scheduler tls://127.0.0.1:"),
        "{up}"
    );
    let dir = env.cluster_dir("lab");

    // Every key and certificate is private to the user.
    for f in [
        "ca.pem",
        "scheduler.pem",
        "scheduler.key",
        "worker.pem",
        "worker.key",
        "client.pem",
        "client.key",
    ] {
        assert_eq!(mode(&dir.join("dask").join(f)), 0o600, "{f}");
    }
    assert!(
        !dir.join("dask/ca.key").exists(),
        "the CA's key is never written"
    );

    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["dask-env", "lab", "--json"]).stdout).expect("JSON");
    let address = json["DASK_SCHEDULER_ADDRESS"]
        .as_str()
        .expect("address")
        .to_string();
    assert!(address.starts_with("tls://127.0.0.1:"), "{json}");
    let exports = env.ok(&["dask-env", "lab"]).stdout;
    for v in DASK_VARS {
        assert!(exports.contains(&format!("export {v}=")), "{v}: {exports}");
    }
    let with_certs: Vec<(String, String)> = json
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("text").to_string()))
        .collect();

    // The cluster's own client certificate: in.
    assert_eq!(probe(env.path(), &address, &with_certs), "answer 42");
    // No certificate at all: refused.
    let none = probe(env.path(), &address, &[]);
    assert!(none.starts_with("refused"), "{none}");
    // Another CA's certificates (a stranger with a Dask cluster of their own): refused.
    let stranger = corral_core::dask::DaskFiles::at(env.path().join("stranger"));
    corral_core::dask::certs::create(&stranger).expect("stranger certs");
    let theirs: Vec<(String, String)> = corral_core::dask::env::vars(&stranger, &address)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let other = probe(env.path(), &address, &theirs);
    assert!(other.starts_with("refused"), "{other}");
    // Plain TCP to the TLS port: refused.
    let tcp = probe(env.path(), &address.replace("tls://", "tcp://"), &[]);
    assert!(tcp.starts_with("refused"), "{tcp}");

    // corral's script says what is missing, instead of distributed's TypeError.
    let mut run = Command::new(python());
    run.arg(nyc_taxi_script())
        .arg(&address)
        .current_dir(env.path());
    for v in DASK_VARS {
        run.env_remove(v);
    }
    let out = process::run(&mut run, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains("no client certificate is configured")
            && out.stderr.contains("corral dask-env"),
        "{out}"
    );
    assert!(!out.stderr.contains("TypeError"), "{out}");

    // A worker agent killed outright takes its Dask worker with it.
    let agent = env.worker_pids("lab")[0];
    let dask_child: Vec<u32> = children_of(agent)
        .into_iter()
        .filter(|p| dask_processes(&dir).contains(p))
        .collect();
    assert_eq!(dask_child.len(), 1, "one Dask worker per agent");
    kill9(agent);
    assert!(
        wait_for(Duration::from_secs(15), || !dask_processes(&dir)
            .contains(&dask_child[0])),
        "the Dask worker {} outlived its agent {agent}",
        dask_child[0]
    );

    env.ok(&["down", "lab"]);
    assert!(
        wait_for(Duration::from_secs(10), || processes_of(&dir).is_empty()),
        "still running: {:?}",
        processes_of(&dir)
    );
}

#[test]
fn a_dask_computation_finishes_exact_while_the_cluster_scales_up_and_down() {
    let env = Env::new("dask-scale");
    let py = python().to_string_lossy().into_owned();
    env.up_with(
        "grow",
        &["--dask", "--python", &py, "--workers", "2", "--cores", "1"],
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["dask-env", "grow", "--json"]).stdout).expect("JSON");
    let address = json["DASK_SCHEDULER_ADDRESS"].as_str().expect("address");
    let marker = env.path().join("running");
    let scaled = env.path().join("scaled");
    let mut job = Command::new(python());
    job.args(["-c", SCALED_JOB, address])
        .arg(&marker)
        .arg(&scaled)
        .current_dir(env.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in json.as_object().expect("object") {
        job.env(k, v.as_str().expect("text"));
    }
    let child = job.spawn().expect("python");
    let job = std::thread::spawn(move || child.wait_with_output().expect("wait"));
    assert!(
        wait_for(Duration::from_secs(120), || marker.exists()),
        "the job never started"
    );
    let holders = std::fs::read_to_string(&marker).expect("marker");
    assert_eq!(holders.trim(), "running 2", "data on both workers");

    let up = env.ok(&["scale", "grow", "--workers", "3"]);
    assert!(
        up.stdout.contains("1 → 3") || up.stdout.contains("2 → 3"),
        "{up}"
    );
    let down = env.ok(&["scale", "grow", "--workers", "1"]);
    assert!(down.stdout.contains("3 → 1"), "{down}");
    std::fs::write(&scaled, "").expect("scaled");

    let out = job.join().expect("job thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // 5 × (1 + 2 + … + 40) = 4100 while scaling, 820 on the one worker left: the scattered
    // data of the two retired workers was moved, not lost.
    assert_eq!(
        stdout.trim(),
        "sums 4100 820 1",
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let dir = env.cluster_dir("grow");
    assert_eq!(
        dask_processes(&dir).len(),
        2,
        "the scheduler and one worker"
    );
    env.ok(&["down", "grow"]);
    assert!(
        wait_for(Duration::from_secs(10), || processes_of(&dir).is_empty()),
        "still running: {:?}",
        processes_of(&dir)
    );
}
