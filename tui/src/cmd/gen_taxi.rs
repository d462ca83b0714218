//! `corral gen taxi`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct TaxiArgs {}

pub fn run(_args: TaxiArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
