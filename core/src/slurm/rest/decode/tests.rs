//! The decoders against responses recorded from the test bed (22.05.8, v0.0.38) and against
//! documents written from the OpenAPI specifications of v0.0.40 and v0.0.42.

use super::*;
use crate::slurm::rest::versions::{self, ApiVersion};

macro_rules! fixture {
    ($path:literal) => {
        serde_json::from_str::<serde_json::Value>(include_str!(concat!(
            "../../../../tests/fixtures/slurmrestd/",
            $path
        )))
        .expect(concat!($path, " is JSON"))
    };
}

#[test]
fn recorded_openapi_offers_v0_0_38() {
    let doc = fixture!("v0.0.38/openapi.json");
    assert_eq!(versions::offered(&doc), vec![ApiVersion(38)]);
    let doc = fixture!("v0.0.40/openapi.json");
    assert_eq!(
        versions::choose(&versions::offered(&doc)),
        Some(ApiVersion(41))
    );
}

#[test]
fn recorded_partitions_have_the_bed_limits() {
    let p = partitions(&fixture!("v0.0.38/partitions.json"), Family::Plugin).expect("decodes");
    assert_eq!(p.len(), 2);
    let debug = &p[0];
    assert_eq!(debug.name, "debug");
    assert!(debug.is_default);
    assert_eq!(debug.state, "UP");
    assert_eq!(
        (debug.max_time, debug.max_nodes, debug.max_cpus_per_node),
        (None, None, None),
        "-1 is unlimited"
    );
    assert_eq!((debug.total_cpus, debug.total_nodes), (64, 4));
    assert_eq!(debug.nodes, "n[1-4]");
    assert_eq!(debug.def_mem_per_cpu_mb, None, "null is unset");
    let small = &p[1];
    assert!(!small.is_default);
    assert_eq!(small.max_time, Some(Walltime { minutes: 720 }));
    assert_eq!(
        (small.max_nodes, small.max_cpus_per_node),
        (Some(1), Some(8))
    );
}

#[test]
fn recorded_nodes() {
    let n = nodes(&fixture!("v0.0.38/nodes.json")).expect("decodes");
    assert_eq!(n.len(), 4);
    assert_eq!(n[0].name, "n1");
    assert_eq!((n[0].cpus, n[0].real_memory_mb), (16, 4000));
    // Recorded while job 150 ran there with 2 CPUs.
    assert_eq!((n[0].state.as_str(), n[0].alloc_cpus), ("MIXED", 2));
    assert_eq!(n[1].state, "IDLE");
    assert!(n[0].usable() && n[1].usable());
    assert_eq!(n[0].partitions, vec!["debug", "small"]);
}

#[test]
fn recorded_jobs_held_and_running() {
    let doc = fixture!("v0.0.38/jobs.json");
    let now = 1_796_107_900;
    let mine = my_jobs_at(&doc, &Owner::Uid(0), now).expect("decodes");
    let held = mine
        .iter()
        .find(|j| j.id == JobId(149))
        .expect("149 listed");
    assert_eq!(
        (held.state.as_str(), held.reason.as_str()),
        ("PENDING", "JobHeldUser")
    );
    assert_eq!(held.elapsed_secs, 0);
    assert_eq!(
        held.left_secs,
        Some(300),
        "a pending job has its whole limit left"
    );
    assert_eq!(held.name, "corral-fixture-held");
    let running = mine
        .iter()
        .find(|j| j.id == JobId(150))
        .expect("150 listed");
    assert_eq!(running.state, "RUNNING");
    assert_eq!(running.reason, "None");
    assert_eq!((running.cpus, running.nodes), (2, 1));
    assert_eq!(running.node_list, "n1");
    assert_eq!(running.elapsed_secs, now - 1_796_107_844);
    assert_eq!(running.left_secs, Some(300 - (now - 1_796_107_844)));
    assert_eq!(running.time_limit, Some(Walltime { minutes: 5 }));
    assert!(
        my_jobs_at(&doc, &Owner::Uid(1000), now)
            .expect("decodes")
            .is_empty(),
        "other users' jobs are not mine"
    );
    assert_eq!(
        my_jobs_at(&doc, &Owner::Name("root".into()), now)
            .expect("decodes")
            .len(),
        mine.len()
    );
}

#[test]
fn recorded_job_detail() {
    let d = job_at(
        &fixture!("v0.0.38/job-running.json"),
        JobId(150),
        1_796_107_854,
    )
    .expect("decodes")
    .expect("present");
    assert_eq!(d.state, "RUNNING");
    assert_eq!((d.num_cpus, d.num_tasks), (2, 2));
    assert_eq!(d.batch_host, "n1");
    assert_eq!(d.run_seconds, 10);
    assert_eq!(d.std_out, "/tmp/fx-%j.out");
    assert_eq!(d.start_time, "2026-12-01T06:50:44");
    assert_eq!(
        job_at(&fixture!("v0.0.38/job-unknown.json"), JobId(999_999), 0).expect("decodes"),
        None
    );
}

#[test]
fn recorded_submissions_and_errors() {
    assert_eq!(
        submitted(&fixture!("v0.0.38/submit.json")),
        Some(JobId(149))
    );
    assert_eq!(submitted(&fixture!("v0.0.38/submit-refused.json")), None);
    let refused: Envelope =
        Envelope::deserialize(&fixture!("v0.0.38/submit-refused.json")).expect("decodes");
    assert_eq!(
        refused.errors[0].error_number,
        Some(2000),
        "error_code is the number"
    );
    assert_eq!(
        refused.errors[0].words(),
        "Invalid partition name specified"
    );
    let unknown: Envelope =
        Envelope::deserialize(&fixture!("v0.0.38/cancel-unknown.json")).expect("decodes");
    assert_eq!(unknown.errors[0].error_number, Some(2017));
    assert_eq!(
        unknown.errors[0].words(),
        "Invalid job id specified: unable to kill JobId=999999 with signal 9: Invalid job id specified"
            .replace("Invalid job id specified: unable", "unable")
    );
    let auth: Envelope =
        Envelope::deserialize(&fixture!("v0.0.38/auth-garbage-partitions.json")).expect("decodes");
    assert_eq!(auth.errors[0].error_number, Some(-1), "errno is the number");
}

#[test]
fn v0_0_40_partitions_nested_limits() {
    let p = partitions(&fixture!("v0.0.40/partitions.json"), Family::DataParser).expect("decodes");
    let standard = &p[0];
    assert_eq!(standard.name, "standard");
    assert_eq!(standard.state, "UP");
    assert_eq!(standard.max_time, Some(Walltime { minutes: 2880 }));
    assert_eq!(
        (standard.max_nodes, standard.max_cpus_per_node),
        (None, None),
        "infinite"
    );
    assert_eq!(standard.def_mem_per_cpu_mb, Some(1900));
    assert_eq!(standard.max_mem_per_node_mb, None);
    assert_eq!((standard.total_cpus, standard.total_nodes), (6400, 100));
    assert_eq!(standard.nodes, "c[001-100]");
    assert!(
        !standard.is_default,
        "v0.0.40 does not say which partition is the default"
    );
    let gpu = &p[1];
    assert_eq!(gpu.state, "DRAIN");
    assert_eq!((gpu.max_nodes, gpu.max_cpus_per_node), (Some(2), Some(32)));
    assert_eq!(gpu.def_mem_per_cpu_mb, None, "absent is unset");
}

#[test]
fn v0_0_40_nodes_state_lists() {
    let n = nodes(&fixture!("v0.0.40/nodes.json")).expect("decodes");
    assert_eq!(n[0].cpus, 62, "effective CPUs, as scontrol's CPUEfctv");
    assert_eq!((n[0].alloc_cpus, n[0].alloc_memory_mb), (16, 32000));
    assert_eq!(n[0].state, "MIXED");
    assert_eq!(n[1].state, "IDLE+DRAIN");
    assert!(!n[1].usable());
    assert_eq!(n[1].cpus, 64, "no effective_cpus: all of them");
}

#[test]
fn v0_0_40_jobs() {
    let doc = fixture!("v0.0.40/jobs.json");
    let now = 1_796_103_600;
    let mine = my_jobs_at(&doc, &Owner::Name("ana".into()), now).expect("decodes");
    assert_eq!(mine.len(), 2, "ben's job is not listed");
    let pending = &mine[0];
    assert_eq!(
        (pending.id, pending.state.as_str()),
        (JobId(4101), "PENDING")
    );
    assert_eq!(pending.reason, "Resources");
    assert_eq!(
        pending.elapsed_secs, 0,
        "a future expected start is no run time"
    );
    assert_eq!((pending.cpus, pending.nodes), (8, 1));
    let completing = &mine[1];
    assert_eq!(completing.state, "COMPLETING", "squeue shows the flag");
    assert_eq!(completing.elapsed_secs, 3600);
    assert_eq!(completing.left_secs, Some(1440 * 60 - 3600));
    let by_uid = my_jobs_at(&doc, &Owner::Uid(1002), now).expect("decodes");
    assert_eq!(by_uid.len(), 1);
    assert_eq!(by_uid[0].time_limit, None, "infinite");
    assert_eq!(by_uid[0].left_secs, None);
    assert_eq!(
        submitted(&fixture!("v0.0.40/submit.json")),
        Some(JobId(4104))
    );
}

#[test]
fn v0_0_42_job_and_submit() {
    let d = job_at(&fixture!("v0.0.42/job.json"), JobId(77), 1_796_200_000)
        .expect("decodes")
        .expect("present");
    assert_eq!(d.state, "CANCELLED");
    assert_eq!((d.num_cpus, d.num_tasks, d.cpus_per_task), (32, 16, 2));
    assert_eq!(d.run_seconds, 100, "an ended job ran until its end");
    assert_eq!(d.exit_code, "0:15");
    assert_eq!(d.node_list, "n[1-2]");
    assert_eq!(submitted(&fixture!("v0.0.42/submit.json")), Some(JobId(78)));
    assert_eq!(
        my_jobs_at(&fixture!("v0.0.42/job.json"), &Owner::Uid(0), 1_796_200_000).expect("decodes"),
        Vec::new(),
        "an ended job is not in squeue's list"
    );
    assert_eq!(
        job_at(&fixture!("v0.0.42/job-unknown.json"), JobId(999_999), 0).expect("decodes"),
        None
    );
    let p = partitions(&fixture!("v0.0.42/partitions.json"), Family::DataParser).expect("decodes");
    assert_eq!(p[0].max_time, None);
    assert_eq!(p[1].max_time, Some(Walltime { minutes: 720 }));
    assert_eq!(p[1].max_cpus_per_node, Some(8));
}

#[test]
fn tolerant_numbers_and_words() {
    let n = |v: serde_json::Value| Num::from_value(&v).0;
    assert_eq!(n(serde_json::json!(5)), Some(5));
    assert_eq!(n(serde_json::json!(-1)), None);
    assert_eq!(n(serde_json::json!(4_294_967_294u64)), None, "NO_VAL");
    assert_eq!(n(serde_json::json!(null)), None);
    assert_eq!(n(serde_json::json!("12")), Some(12));
    assert_eq!(
        n(serde_json::json!({"set": true, "infinite": false, "number": 7})),
        Some(7)
    );
    assert_eq!(
        n(serde_json::json!({"set": true, "infinite": true, "number": 7})),
        None
    );
    assert_eq!(n(serde_json::json!({"number": 9})), Some(9));
    let w: Words = serde_json::from_value(serde_json::json!("a,b")).expect("words");
    assert_eq!(w.0, vec!["a", "b"]);
    let w: Words = serde_json::from_value(serde_json::json!(["IDLE", 3])).expect("words");
    assert_eq!(w.0, vec!["IDLE"]);
    assert!(partitions(&serde_json::json!({"partitions": "nope"}), Family::Plugin).is_err());
    assert_eq!(timestamp(Num(Some(0))), "Unknown");
    assert_eq!(timestamp(Num(Some(951_782_400))), "2000-02-29T00:00:00");
}
