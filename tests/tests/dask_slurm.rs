//! Dask mode on the real SLURM test bed: `corral batch --dask` runs the shipped nyc-taxi
//! script on the allocation's Dask cluster and prints exactly `expected.json`'s counts, then
//! nothing of the cluster runs and squeue lists none of its jobs; a computation on scattered
//! data finishes exact while the cluster grows by a worker job and shrinks again (the job's
//! Dask worker retired through the scheduler before the job is cancelled).
//!
//! The test bed is shared: the `slurm` nextest group and `slurm::exclusive()` run these one at
//! a time.

use std::process::Stdio;
use std::time::Duration;

use corral_tests::cluster::{Env, wait_for};
use corral_tests::dask::{SCALED_JOB, nyc_taxi_script, path_with_python, python, taxi_counts};
use corral_tests::expect::{expected_counts, processes_of};
use corral_tests::on_slurm::OnSlurm;
use corral_tests::slurm;

#[test]
fn slurm_batch_dask_runs_the_shipped_nyc_taxi_script_exactly_and_releases_everything() {
    let Some(bed) = slurm::require() else {
        return;
    };
    let _bed = slurm::exclusive();
    let env = Env::new("dask-slurm");
    let on = OnSlurm::new(&env, &bed);
    let data = env.gen_taxi("taxi", 2, 20_000, 0.0);
    let name = "dslurm";
    let _guard = on.down_on_drop(name);
    let py = python().to_string_lossy().into_owned();
    let script = nyc_taxi_script().to_string_lossy().into_owned();
    let glob = format!("{}/*.csv", data.display());
    let out = env.run_cmd(
        on.corral(&[
            "batch",
            "--dask",
            "--python",
            &py,
            "--name",
            name,
            "--workers",
            "2",
            "--cores",
            "1",
            "--time",
            "10",
            "--partition",
            "debug",
            "--",
            &script,
            "{}",
            &glob,
        ])
        .env("PATH", path_with_python()),
    );
    assert!(out.success(), "{out}");
    assert_eq!(taxi_counts(&out.stdout), expected_counts(&data), "{out}");
    assert!(
        out.stderr.contains("nyc-taxi.py: 2 Dask workers at tls://"),
        "{out}"
    );
    assert!(out.stderr.contains("allocation released"), "{out}");
    let ids = on.job_ids(name);
    let left = on.still_queued(&ids);
    assert!(left.is_empty(), "squeue still lists {left:?}\n{out}");
    let dir = env.cluster_dir(name);
    assert!(
        wait_for(Duration::from_secs(30), || processes_of(&dir).is_empty()),
        "processes left: {:?}",
        processes_of(&dir)
    );
}

#[test]
fn slurm_dask_computation_finishes_exact_while_a_worker_job_comes_and_goes() {
    let Some(bed) = slurm::require() else {
        return;
    };
    let _bed = slurm::exclusive();
    let env = Env::new("dask-slurm-scale");
    let on = OnSlurm::new(&env, &bed);
    let name = "dscale";
    let _guard = on.down_on_drop(name);
    let py = python().to_string_lossy().into_owned();
    let up = on.run(&[
        "up",
        "--dask",
        "--python",
        &py,
        "--name",
        name,
        "--workers",
        "2",
        "--cores",
        "1",
        "--time",
        "15",
        "--partition",
        "debug",
        "--yes",
        "--no-tui",
        "--timeout",
        "5m",
    ]);
    assert!(up.success(), "{up}");
    let json: serde_json::Value =
        serde_json::from_str(&on.run(&["dask-env", name, "--json"]).stdout).expect("JSON");
    let address = json["DASK_SCHEDULER_ADDRESS"]
        .as_str()
        .expect("address")
        .to_string();
    assert!(address.starts_with("tls://"), "{json}");
    let marker = env.path().join("running");
    let scaled = env.path().join("scaled");
    let mut job = std::process::Command::new(python());
    job.args(["-c", SCALED_JOB, &address])
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
        wait_for(Duration::from_secs(180), || marker.exists()),
        "the job never started"
    );
    let grow = on.run(&["scale", name, "--workers", "3"]);
    assert!(grow.success(), "{grow}");
    let shrink = on.run(&["scale", name, "--workers", "2"]);
    assert!(shrink.success(), "{shrink}");
    std::fs::write(&scaled, "").expect("scaled");
    let out = job.join().expect("job thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.trim(),
        "sums 4100 820 2",
        "stdout: {stdout}\nstderr: {stderr}\n{grow}\n{shrink}"
    );
    let ids = on.job_ids(name);
    let down = on.run(&["down", name]);
    assert!(down.success(), "{down}");
    let left = on.still_queued(&ids);
    assert!(left.is_empty(), "squeue still lists {left:?}");
    let dir = env.cluster_dir(name);
    assert!(
        wait_for(Duration::from_secs(30), || processes_of(&dir).is_empty()),
        "processes left: {:?}",
        processes_of(&dir)
    );
}
