//! `corral forget NAME`: removes an ended cluster's directory and its earlier ended records
//! (logs, ledger, history); a cluster that has not ended is refused.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    /// The ended cluster.
    pub name: String,
}

pub fn run(args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let gone = corral_core::ended::forget(&corral_core::paths::clusters_dir(), &args.name)?;
    let n = gone.earlier.len() + usize::from(gone.current.is_some());
    println!(
        "forgot cluster {}: removed {} (logs, ledger and history with {})",
        args.name,
        corral_core::text::count(n as u64, "directory"),
        if n == 1 { "it" } else { "them" }
    );
    Ok(ExitCode::SUCCESS)
}
