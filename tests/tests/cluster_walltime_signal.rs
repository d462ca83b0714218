//! SLURM warns a job 300 s before its walltime ends (`--signal=B:USR1@300`, passed on by the job
//! script to the coordinator): the coordinator marks its snapshots, and clients tell the user.
//! The signal is sent by hand here, to a local cluster's coordinator.

use std::process::Command;
use std::time::Duration;

use corral_tests::cluster::{Env, wait_for};

#[test]
fn usr1_to_the_coordinator_warns_clients_that_the_walltime_ends() {
    let env = Env::new("walltime-usr1");
    env.up("ending", 1, 1, &[]);
    assert_eq!(env.status("ending")["snapshot"]["walltime_ending"], false);
    let pid = env.coordinator_pid("ending");
    let sent = Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -USR1 {pid}");
    assert!(
        wait_for(Duration::from_secs(10), || {
            env.status("ending")["snapshot"]["walltime_ending"] == true
        }),
        "the snapshot never said the walltime is ending"
    );
    let text = env.ok(&["status", "ending"]);
    assert!(text.stdout.contains("end of the walltime"), "{text}");
    // The warning is a warning: the cluster keeps serving until SLURM ends the job.
    assert_eq!(env.status("ending")["state"], "running");
}
