//! `corral batch --local`: the cluster lives exactly as long as CMD. CMD's `corral query
//! "$CORRAL_CLUSTER"` is exact, CMD's exit status is corral's, and afterwards nothing runs and
//! `corral ls` shows the cluster down — also when CMD does not exist, and when corral itself is
//! sent SIGTERM while CMD runs.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use corral_tests::cluster::{Env, wait_for};
use corral_tests::expect::{
    counts_in, expected_counts, only_cluster, path_with_bins, processes_of,
};

fn json(out: &corral_tests::process::Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The cluster is down by every account: `corral ls`, its processes, its coordinator file.
fn assert_released(env: &Env, name: &str) {
    let ls = json(&env.ok(&["ls", "--json"]));
    let entry = ls
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in {ls}"));
    assert_eq!(entry["state"], "ended", "{ls}");
    let dir = env.cluster_dir(name);
    assert!(
        wait_for(Duration::from_secs(10), || processes_of(&dir).is_empty()),
        "processes still run for {}: {:?}",
        dir.display(),
        processes_of(&dir)
    );
    assert!(!dir.join("coordinator.json").exists());
}

#[test]
fn batch_local_query_inside_is_exact_exits_3_and_leaves_nothing() {
    let env = Env::new("batch");
    let data = env.gen_taxi("taxi", 3, 20_000, 0.0);
    let script = format!(
        "echo \"address={{}} env=$CORRAL_COORDINATOR\"; corral query \"$CORRAL_CLUSTER\" --by payment_type --json {}/*.csv; exit 3",
        data.display()
    );
    let out = env.run_cmd(
        env.corral(&[
            "batch",
            "--local",
            "--workers",
            "2",
            "--cores",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("PATH", path_with_bins()),
    );
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(counts_in(&out.stdout), expected_counts(&data), "{out}");
    // `{}` became the coordinator's address, the same one CORRAL_COORDINATOR holds.
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("address="))
        .unwrap_or_else(|| panic!("no address line: {out}"));
    let (addr, from_env) = line.split_once(" env=").expect("both");
    assert!(
        addr.parse::<std::net::SocketAddr>().is_ok(),
        "{{}} = {addr:?}"
    );
    assert_eq!(addr, from_env, "{out}");
    assert!(out.stderr.contains("CMD exited with 3"), "{out}");
    let name = only_cluster(&env);
    assert!(name.starts_with("batch-"), "{name}");
    assert_released(&env, &name);

    // CMD ran once both workers were in.
    assert!(out.stderr.contains("(2 workers, 2 cores)"), "{out}");
    // The history has the query and how the cluster ended.
    let h = json(&env.ok(&["history", &name, "--json"]));
    let q = &h["queries"][0];
    assert_eq!(q["rows"], 60_000, "{h}");
    assert_eq!(q["ok"], true, "{h}");
    let c = &h["clusters"][0];
    assert_eq!(c["name"], name.as_str(), "{h}");
    assert!(
        c["how"]
            .as_str()
            .is_some_and(|s| s.contains("corral batch (CMD exited with 3)")),
        "{h}"
    );
    assert!(c["core_hours"].as_f64().is_some(), "{h}");
}

/// The address rule for the four shapes people write: without `{}` the address is CMD's last
/// argument (`./job.py`, `python3 job.py`, `env python3 job.py`); `{}` inside `sh -c 'STRING'`
/// is replaced. Each time it equals `CORRAL_COORDINATOR`.
#[test]
fn batch_local_passes_the_address_to_every_shape_of_command() {
    let env = Env::new("batch-shapes");
    let job = env.path().join("job.py");
    std::fs::write(
        &job,
        "#!/usr/bin/env python3\nimport os, sys\nprint('last=' + sys.argv[-1] + ' env=' + os.environ['CORRAL_COORDINATOR'] + ' n=' + str(len(sys.argv)))\n",
    )
    .expect("write job.py");
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&job)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    let job = job.display().to_string();
    let shapes: [&[&str]; 4] = [
        &[job.as_str()],
        &["python3", job.as_str()],
        &["env", "python3", job.as_str()],
        &["sh", "-c", "echo last={} env=$CORRAL_COORDINATOR n=1"],
    ];
    for (i, shape) in shapes.iter().enumerate() {
        let name = format!("shape{i}");
        let mut args = vec![
            "batch",
            "--local",
            "--name",
            &name,
            "--workers",
            "1",
            "--cores",
            "1",
            "--",
        ];
        args.extend_from_slice(shape);
        let out = env.run(&args);
        assert_eq!(out.code(), Some(0), "{shape:?}: {out}");
        let line = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("last="))
            .unwrap_or_else(|| panic!("{shape:?}: no output line: {out}"));
        let (addr, rest) = line.split_once(" env=").expect("env");
        let (env_addr, n) = rest.split_once(" n=").expect("n");
        assert!(
            addr.parse::<std::net::SocketAddr>().is_ok(),
            "{shape:?}: the last argument is {addr:?}"
        );
        assert_eq!(addr, env_addr, "{shape:?}");
        // The script got exactly one argument more than it was given: the address.
        assert_eq!(n, if i < 3 { "2" } else { "1" }, "{shape:?}: {out}");
        assert_released(&env, &name);
    }
}

#[test]
fn batch_local_missing_command_is_127_and_released() {
    let env = Env::new("batch-127");
    let out = env.run(&[
        "batch",
        "--local",
        "--name",
        "nocmd",
        "--workers",
        "1",
        "--cores",
        "1",
        "--",
        "/nonexistent/corral-no-such-command",
        "arg",
    ]);
    assert_eq!(out.code(), Some(127), "{out}");
    assert!(
        out.stderr.contains("/nonexistent/corral-no-such-command")
            && out.stderr.contains("command not found"),
        "{out}"
    );
    assert_released(&env, "nocmd");
}

#[test]
fn batch_local_sigterm_to_corral_reaches_cmd_and_releases() {
    let env = Env::new("batch-term");
    let mut child = env
        .corral(&[
            "batch",
            "--local",
            "--name",
            "term",
            "--workers",
            "1",
            "--cores",
            "1",
            "--",
            "sh",
            "-c",
            "echo started; sleep 60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("corral batch starts");
    // CMD printed its first line: the cluster is up and CMD runs.
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read CMD's output");
    assert_eq!(first, "started\n");
    let t0 = Instant::now();
    let status = std::process::Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("corral batch did not exit within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // sleep died of the SIGTERM passed on to it: 128 + 15.
    assert_eq!(code, Some(143));
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(err.contains("SIGTERM"), "{err}");
    assert_released(&env, "term");
}

#[test]
fn batch_refuses_what_cannot_work_before_starting_anything() {
    let env = Env::new("batch-refuse");
    let out = env.run(&[
        "batch",
        "--local",
        "--workers",
        "2",
        "--min-workers",
        "3",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), Some(125), "{out}");
    assert!(out.stderr.contains("--min-workers 3 is more than"), "{out}");
    // --here outside an allocation says what it needs.
    let out = env.run(&["batch", "--here", "--", "true"]);
    assert_eq!(out.code(), Some(125), "{out}");
    assert!(out.stderr.contains("SLURM_JOB_ID is not set"), "{out}");
    // CMD is required.
    let out = env.run(&["batch", "--local"]);
    assert_eq!(out.code(), Some(2), "{out}");
    let clusters = env.path().join("state/corral/clusters");
    let made = std::fs::read_dir(&clusters).map_or(0, |d| d.count());
    assert_eq!(made, 0, "nothing may be created");
}
