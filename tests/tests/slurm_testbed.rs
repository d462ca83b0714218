//! Proof that the SLURM test bed is real, and the facts about it that corral builds on.
//!
//! Needs `scripts/slurm-test-cluster up` (scripts/test does it); skips without it, except
//! under CI, where it fails.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use corral_tests::slurm;

/// The head job's shape in miniature: a batch step that `srun`s one task per worker with
/// `-c` passed explicitly (srun in 22.05 ignores SLURM_CPUS_PER_TASK).
#[test]
fn slurm_testbed_runs_a_4x2_job_to_completion() {
    let Some(slurm) = slurm::require() else {
        return;
    };
    let dir = corral_tests::shared_tempdir("testbed");
    let out_dir = dir.path().display().to_string();
    let name = corral_tests::unique_name("4x2");

    let t0 = Instant::now();
    let job = slurm
        .sbatch(&[
            "-J",
            &name,
            "-n",
            "4",
            "-c",
            "2",
            "--time=0-1",
            "-D",
            &out_dir,
            "-o",
            &format!("{out_dir}/%j.out"),
            "--wrap",
            "srun -c 2 sh -c 'echo task $SLURM_PROCID on $SLURMD_NODENAME cpus $SLURM_CPUS_PER_TASK; sleep 2'",
        ])
        .expect("sbatch of a 4x2 job is accepted");
    let _cancel = slurm.cancel_on_drop(job);

    // The tasks sleep 2 s, so polling every 100 ms must see RUNNING before COMPLETED.
    slurm
        .wait_for_state(job, &["RUNNING"], Duration::from_secs(30))
        .expect("job starts");
    let running_after = t0.elapsed();
    slurm
        .wait_for_state(job, &["COMPLETED"], Duration::from_secs(60))
        .expect("job completes");
    let completed_after = t0.elapsed();
    eprintln!(
        "job {job}: RUNNING after {running_after:.2?}, COMPLETED after {completed_after:.2?}"
    );

    let record = slurm.job(job).expect("scontrol").expect("job still known");
    assert_eq!(
        record.get("ExitCode").map(String::as_str),
        Some("0:0"),
        "{record:?}"
    );
    assert_eq!(
        record.get("NumTasks").map(String::as_str),
        Some("4"),
        "{record:?}"
    );
    assert_eq!(
        record.get("CPUs/Task").map(String::as_str),
        Some("2"),
        "{record:?}"
    );
    assert_eq!(record.get("JobName"), Some(&name), "{record:?}");

    let output_path = dir.path().join(format!("{job}.out"));
    let output = std::fs::read_to_string(&output_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", output_path.display()));
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 4, "one line per task, nothing else:\n{output}");
    let mut procids = BTreeSet::new();
    for line in &lines {
        // "task <procid> on <node> cpus <cpus per task>"
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["task", procid, "on", node, "cpus", cpus] => {
                procids.insert(
                    procid
                        .parse::<u32>()
                        .unwrap_or_else(|e| panic!("{line:?}: {e}")),
                );
                assert!(
                    node.strip_prefix('n')
                        .is_some_and(|n| n.parse::<u32>().is_ok()),
                    "an emulated node name (n1…), got {node:?} in {line:?}"
                );
                assert_eq!(*cpus, "2", "SLURM_CPUS_PER_TASK in {line:?}");
            }
            _ => panic!("unexpected output line {line:?} in:\n{output}"),
        }
    }
    assert_eq!(procids, BTreeSet::from([0, 1, 2, 3]), "{output}");
}

/// The limited partition refuses at submit what does not fit (EnforcePartLimits=ALL) — the
/// messages corral's validation must recognise and explain — and accepts what does.
#[test]
fn slurm_testbed_small_partition_refuses_oversized_requests() {
    let Some(slurm) = slurm::require() else {
        return;
    };
    let name = corral_tests::unique_name("small");

    // Submitting for real: a refusal leaves no job behind; an acceptance is a bug we clean up.
    let refused = |args: &[&str], message: &str| {
        let mut all = vec!["--parsable", "-J", &name, "-o", "/dev/null"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--wrap", "true"]);
        let out = slurm.run("sbatch", &all).expect("sbatch runs");
        if let Some(job) = slurm::parse_parsable_job_id(&out.stdout) {
            let _ = slurm.scancel(job);
        }
        assert!(!out.success(), "must be refused: {out}");
        assert!(
            out.stderr.contains(&format!(
                "sbatch: error: Batch job submission failed: {message}"
            )),
            "expected {message:?}: {out}"
        );
    };
    // small: 1 node, MaxCPUsPerNode=8; 16 tasks x 2 CPUs = 32.
    refused(
        &["-p", "small", "-n", "16", "-c", "2", "--time=5"],
        "More processors requested than permitted",
    );
    // small: MaxTime=12:00:00; one day is over.
    refused(
        &["-p", "small", "--time=1-0"],
        "Requested time limit is invalid (missing or exceeds some limit)",
    );

    // `sbatch --test-only` (how corral estimates a start) says the same in other words, and
    // accepts the largest request that fits: 4 x 2 CPUs for exactly 12 h.
    let test_only = |args: &[&str]| {
        let mut all = vec!["--test-only", "-J", &name, "-o", "/dev/null"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--wrap", "true"]);
        slurm.run("sbatch", &all).expect("sbatch --test-only runs")
    };
    let out = test_only(&["-p", "small", "-n", "16", "-c", "2", "--time=5"]);
    assert!(
        !out.success()
            && out
                .stderr
                .contains("allocation failure: More processors requested than permitted"),
        "{out}"
    );
    let out = test_only(&["-p", "small", "-n", "4", "-c", "2", "--time=12:00:00"]);
    assert!(
        out.success()
            && out
                .stderr
                .contains("using 8 processors on nodes n1 in partition small"),
        "{out}"
    );
}
