//! `corral batch` through the real SLURM test bed: an allocation that lives exactly as long as
//! CMD (validated, submitted, waited for, released: squeue lists none of its jobs afterwards),
//! a CMD that does not exist (127, released), and `corral batch --here` inside an sbatch job —
//! fhdask's `sbatch … fhdask ./script` — whose exit status SLURM records as the job's.
//!
//! The test bed is shared: the `slurm` nextest group and `slurm::exclusive()` run these one at
//! a time.

use std::time::Duration;

use corral_tests::cluster::{Env, wait_for};
use corral_tests::expect::{
    counts_in, expected_counts, only_cluster, path_with_bins, processes_of,
};
use corral_tests::on_slurm::OnSlurm;
use corral_tests::process::{self, Output};
use corral_tests::slurm;

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn slurm_batch_runs_cmd_on_the_allocation_exits_3_and_releases_it() {
    let Some(bed) = slurm::require() else {
        return;
    };
    let _bed = slurm::exclusive();
    let env = Env::new("batch-slurm");
    let on = OnSlurm::new(&env, &bed);
    let data = env.gen_taxi("taxi", 2, 20_000, 0.0);
    let name = "bslurm";
    let _guard = on.down_on_drop(name);
    let script = format!(
        "corral query \"$CORRAL_CLUSTER\" --by payment_type --json {}/*.csv; exit 3",
        data.display()
    );
    let out = on.run(&[
        "batch",
        "--name",
        name,
        "--workers",
        "2",
        "--cores",
        "2",
        "--time",
        "10",
        "--partition",
        "debug",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(counts_in(&out.stdout), expected_counts(&data), "{out}");
    // CMD ran once both workers were in.
    assert!(out.stderr.contains("(2 workers, 4 cores)"), "{out}");
    assert!(out.stderr.contains("allocation released"), "{out}");
    let ids = on.job_ids(name);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let left = on.still_queued(&ids);
    assert!(left.is_empty(), "squeue still lists {left:?}\n{out}");
    let dir = env.cluster_dir(name);
    assert!(
        wait_for(Duration::from_secs(15), || processes_of(&dir).is_empty()),
        "processes left: {:?}",
        processes_of(&dir)
    );
    let ls = json(&on.run(&["ls", "--json"]));
    assert_eq!(ls[0]["state"], "ended", "{ls}");
    let h = json(&on.run(&["history", name, "--json"]));
    assert_eq!(h["queries"][0]["rows"], 40_000, "{h}");
    let c = &h["clusters"][0];
    assert!(
        c["how"]
            .as_str()
            .is_some_and(|s| s.contains("corral batch (CMD exited with 3)")),
        "{h}"
    );
    assert!(c["core_hours"].as_f64().is_some(), "{h}");
}

#[test]
fn slurm_batch_missing_command_is_127_and_nothing_stays_queued() {
    let Some(bed) = slurm::require() else {
        return;
    };
    let _bed = slurm::exclusive();
    let env = Env::new("batch-slurm-127");
    let on = OnSlurm::new(&env, &bed);
    let name = "bnocmd";
    let _guard = on.down_on_drop(name);
    let out = on.run(&[
        "batch",
        "--name",
        name,
        "--workers",
        "1",
        "--cores",
        "1",
        "--time",
        "5",
        "--",
        "corral-no-such-command",
    ]);
    assert_eq!(out.code(), Some(127), "{out}");
    assert!(
        out.stderr
            .contains("cannot run \"corral-no-such-command\": command not found"),
        "{out}"
    );
    let ids = on.job_ids(name);
    let left = on.still_queued(&ids);
    assert!(left.is_empty(), "squeue still lists {left:?}\n{out}");
}

#[test]
fn slurm_batch_here_inside_an_sbatch_job_passes_the_exit_status_to_slurm() {
    let Some(bed) = slurm::require() else {
        return;
    };
    let _bed = slurm::exclusive();
    let env = Env::new("batch-here");
    let data = env.gen_taxi("taxi", 2, 20_000, 0.0);
    let corral_bin = corral_tests::bins::corral();
    let wrap = format!(
        "{} batch --here -- sh -c 'echo \"address={{}}\"; corral query \"$CORRAL_CLUSTER\" --by payment_type --json {}/*.csv; sleep 4; exit 3'",
        corral_bin.display(),
        data.display()
    );
    let out_dir = env.path().display().to_string();
    let job_name = corral_tests::unique_name("here");
    let mut sbatch = bed.command("sbatch");
    sbatch
        .args([
            "--parsable",
            "-J",
            &job_name,
            "-n",
            "4",
            "-c",
            "2",
            "--time=10",
            "-D",
            &out_dir,
            "-o",
            &format!("{out_dir}/%j.out"),
            "--wrap",
            &wrap,
        ])
        // Exported to the job (sbatch's default --export=ALL): the test's state directory and
        // this corral on PATH.
        .env("XDG_STATE_HOME", env.path().join("state"))
        .env("XDG_CONFIG_HOME", env.path().join("config"))
        .env("PATH", path_with_bins());
    let submitted = process::run(&mut sbatch, slurm::COMMAND_TIMEOUT).expect("sbatch runs");
    assert!(submitted.success(), "{submitted}");
    let job = slurm::parse_parsable_job_id(&submitted.stdout).expect("job id");
    let _cancel = bed.cancel_on_drop(job);

    // While the job runs, `corral ls` (here: outside the job, as on a login node) shows the
    // cluster as what it is — inside job N, running — from SLURM, not from local pids.
    let on = OnSlurm::new(&env, &bed);
    let mut last = serde_json::Value::Null;
    let seen_running = wait_for(Duration::from_secs(90), || {
        last = json(&on.run(&["ls", "--json"]));
        last.as_array().is_some_and(|a| {
            a.iter()
                .any(|c| c["backend"] == "in_allocation" && c["state"] == "running")
        })
    });
    assert!(
        seen_running,
        "ls never showed the --here cluster running: {last}"
    );
    let entry = &last[0];
    assert_eq!(entry["jobs"][0].to_string(), job.to_string(), "{last}");

    let state = bed
        .wait_for_state(job, &["FAILED", "COMPLETED"], Duration::from_secs(120))
        .expect("the job ends");
    let record = bed.job(job).expect("scontrol").expect("job still known");
    let output = std::fs::read_to_string(env.path().join(format!("{job}.out")))
        .unwrap_or_else(|e| panic!("job output: {e}"));
    assert_eq!(state, "FAILED", "exit 3 fails the job:\n{output}");
    assert_eq!(
        record.get("ExitCode").map(String::as_str),
        Some("3:0"),
        "{record:?}\n{output}"
    );
    assert_eq!(counts_in(&output), expected_counts(&data), "{output}");
    assert!(output.contains("4 workers × 2 cores via srun"), "{output}");
    assert!(output.contains("(4 workers, 8 cores)"), "{output}");
    let name = only_cluster(&env);
    let dir = env.cluster_dir(&name);
    assert!(
        wait_for(Duration::from_secs(15), || processes_of(&dir).is_empty()),
        "processes left: {:?}",
        processes_of(&dir)
    );
    let spec = env.record(&name);
    assert!(
        spec["stopped"]["how"]
            .as_str()
            .is_some_and(|s| s.contains("corral batch (CMD exited with 3)")),
        "{spec}"
    );
    assert!(!dir.join("coordinator.json").exists());
}
