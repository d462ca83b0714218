//! `corral agg`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct AggArgs {}

pub fn run(_args: AggArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
