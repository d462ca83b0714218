//! corral's SLURM client and request validation against the real test bed (4 nodes × 16 CPUs,
//! partitions `debug` and `small`): the limits corral reads are the ones SLURM enforces.

use corral_core::config::SlurmConfig;
use corral_core::model::{ClusterSpec, Walltime};
use corral_core::slurm::lifecycle;
use corral_core::slurm::validate::Field;
use corral_core::slurm::{Slurm, SlurmCli};

fn client(slurm: &corral_tests::slurm::Slurm) -> SlurmCli {
    SlurmCli::new(&SlurmConfig::default()).with_env(slurm.env().iter().cloned())
}

fn spec(workers: u32, cores: u32, walltime: Walltime, partition: Option<&str>) -> ClusterSpec {
    ClusterSpec {
        name: corral_tests::unique_name("limits"),
        workers,
        cores_per_worker: cores,
        mem_per_worker_mb: None,
        walltime,
        partition: partition.map(String::from),
        account: None,
        supervise: Default::default(),
        dask: None,
    }
}

#[tokio::test]
async fn live_partitions_and_nodes_are_read() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let cli = client(&bed);
    let partitions = cli.partitions().await.expect("scontrol show partition");
    let debug = partitions
        .iter()
        .find(|p| p.name == "debug")
        .expect("debug partition");
    assert!(debug.is_default);
    assert_eq!((debug.total_nodes, debug.total_cpus), (4, 64));
    let small = partitions
        .iter()
        .find(|p| p.name == "small")
        .expect("small partition");
    assert_eq!(small.max_cpus_per_node, Some(8));
    assert_eq!(small.max_nodes, Some(1));
    assert_eq!(small.max_time, Some(Walltime { minutes: 720 }));
    let nodes = cli.nodes().await.expect("scontrol show node");
    assert_eq!(nodes.len(), 4);
    assert!(nodes.iter().all(|n| n.cpus == 16));
}

#[tokio::test]
async fn sixteen_by_two_on_small_is_refused_before_submit_and_fits_on_debug() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let cli = client(&bed);
    let dir = corral_tests::shared_tempdir("limits");
    let agent = &["/usr/bin/true".to_string()];
    let refused = lifecycle::check(
        &cli,
        &spec(16, 2, Walltime { minutes: 60 }, Some("small")),
        dir.path(),
        agent,
    )
    .await
    .expect("check runs");
    assert_eq!(
        refused.verdict.problem(Field::Workers),
        Some(
            "small allows 8 CPUs per node and 1 node: at most 4 workers × 2 cores there, or use partition debug"
        )
    );
    assert!(
        refused.estimate.is_none(),
        "nothing is asked of sbatch for a refused request"
    );

    let fits = lifecycle::check(
        &cli,
        &spec(16, 2, Walltime::from_days(1), None),
        dir.path(),
        agent,
    )
    .await
    .expect("check runs");
    assert!(fits.verdict.is_clean(), "{:?}", fits.verdict.problems);
    let estimate = fits.estimate.expect("sbatch --test-only gives an estimate");
    assert_eq!(estimate.processors, 32);
    assert_eq!(estimate.partition, "debug");
}

#[tokio::test]
async fn a_day_on_the_twelve_hour_partition_is_refused() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let cli = client(&bed);
    let dir = corral_tests::shared_tempdir("limits");
    let checked = lifecycle::check(
        &cli,
        &spec(2, 2, Walltime::from_days(1), Some("small")),
        dir.path(),
        &["/usr/bin/true".to_string()],
    )
    .await
    .expect("check runs");
    let m = checked
        .verdict
        .problem(Field::Walltime)
        .expect("walltime refused");
    assert!(m.contains("12:00:00"), "{m}");
}

#[tokio::test]
async fn unknown_partition_is_named_with_the_ones_that_exist() {
    let Some(bed) = corral_tests::slurm::require() else {
        return;
    };
    let cli = client(&bed);
    let dir = corral_tests::shared_tempdir("limits");
    let checked = lifecycle::check(
        &cli,
        &spec(2, 2, Walltime::from_days(1), Some("gpu")),
        dir.path(),
        &["/usr/bin/true".to_string()],
    )
    .await
    .expect("check runs");
    let m = checked
        .verdict
        .problem(Field::Partition)
        .expect("partition refused");
    assert!(
        m.contains("\"gpu\"") && m.contains("debug") && m.contains("small"),
        "{m}"
    );
}
