//! Which SLURM client this process uses: `[slurm] api` = `cli`, `rest`, or `auto` (the tools
//! when `sbatch` is found — in `bin_dir` or on `PATH` — else slurmrestd when `rest_url` is
//! set, else the tools, whose error then says SLURM is not installed).

use std::path::Path;
use std::sync::Arc;

use super::{Slurm, SlurmCli, SlurmRest};
use crate::config::{SlurmApi, SlurmConfig};

/// The client the config asks for.
pub fn from_config(config: &SlurmConfig) -> Arc<dyn Slurm> {
    let rest = || -> Arc<dyn Slurm> { Arc::new(SlurmRest::new(config)) };
    let cli = || -> Arc<dyn Slurm> { Arc::new(SlurmCli::new(config)) };
    match config.api {
        SlurmApi::Cli => cli(),
        SlurmApi::Rest => rest(),
        SlurmApi::Auto if !config.rest_url.trim().is_empty() && !sbatch_found(config) => rest(),
        SlurmApi::Auto => cli(),
    }
}

fn sbatch_found(config: &SlurmConfig) -> bool {
    if !config.bin_dir.is_empty() {
        return Path::new(&config.bin_dir).join("sbatch").is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sbatch").is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_rest_only_without_the_tools() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = SlurmConfig {
            bin_dir: dir.path().display().to_string(),
            rest_url: "unix:///nonexistent/slurmrestd.sock".into(),
            ..SlurmConfig::default()
        };
        let client = from_config(&config);
        assert!(
            client.describe().starts_with("slurmrestd"),
            "{}",
            client.describe()
        );
        std::fs::write(dir.path().join("sbatch"), "").expect("write");
        let client = from_config(&config);
        assert!(
            client.describe().contains("command-line"),
            "{}",
            client.describe()
        );
        config.api = SlurmApi::Rest;
        assert!(from_config(&config).describe().starts_with("slurmrestd"));
        config.api = SlurmApi::Cli;
        config.bin_dir = String::new();
        assert!(from_config(&config).describe().contains("command-line"));
    }
}
