//! Dask mode on the command line: the `--dask`/`--python` flags of `up` and `batch` (which
//! interpreter, checked before anything starts), and `corral dask-env NAME`, the `export`
//! lines that let an unchanged `Client("tls://…")` connect.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use corral_core::backend::Cluster;
use corral_core::config::Config;
use corral_core::dask::{self, DaskFiles, DaskSpec, SchedulerInfo};

/// `--dask` and the interpreter that runs it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DaskFlags {
    /// Also run a Dask cluster in the allocation: a scheduler beside the coordinator and one
    /// Dask worker per worker (threads = its cores), TLS with per-cluster certificates only.
    #[arg(long)]
    pub dask: bool,
    /// The Python that runs Dask (needs dask and distributed; bokeh for the dashboard).
    /// Default: `python` in the config's [dask], else python3 on PATH.
    #[arg(long, value_name = "PATH", requires = "dask")]
    pub python: Option<String>,
}

impl DaskFlags {
    /// The Dask part of the request, its interpreter chosen and checked (dask and distributed
    /// importable) before anything is started; None without `--dask`.
    pub async fn spec(&self, config: &Config) -> anyhow::Result<Option<DaskSpec>> {
        if !self.dask {
            return Ok(None);
        }
        let asked = self.python.as_deref().or(Some(config.dask.python.as_str()));
        let python = dask::python::choose(asked).map_err(anyhow::Error::msg)?;
        let versions = dask::python::check(&python)
            .await
            .map_err(anyhow::Error::msg)?;
        if versions.bokeh.is_none() {
            eprintln!(
                "corral: warning: {} has no bokeh: Dask runs, but its dashboard will not (`{} -m pip install bokeh`)",
                python.display(),
                python.display()
            );
        }
        tracing::info!(python = %python.display(), dask = %versions.dask, distributed = %versions.distributed, "Dask mode");
        Ok(Some(DaskSpec { python }))
    }
}

/// Where a running Dask cluster's scheduler listens, or why there is none to connect to.
pub fn scheduler_of(cluster: &Cluster) -> anyhow::Result<SchedulerInfo> {
    let name = cluster.name();
    if cluster.record.dask.is_none() {
        bail!(
            "cluster {name} is not a Dask cluster; start one with `corral up --dask` or `corral batch --dask`"
        );
    }
    if let Some(s) = &cluster.record.stopped {
        bail!("cluster {name} has ended ({})", s.how);
    }
    DaskFiles::of(&cluster.dir).read_scheduler().map_err(|_| {
        anyhow::anyhow!(
            "the Dask scheduler of cluster {name} is not listening (yet); `corral status {name}` says where it is"
        )
    })
}

/// The variables a client of `cluster` needs.
pub fn client_env(cluster: &Cluster, info: &SchedulerInfo) -> Vec<(&'static str, String)> {
    dask::env::vars(&DaskFiles::of(&cluster.dir), &info.address)
}

#[derive(Debug, clap::Args)]
pub struct DaskEnvArgs {
    /// The Dask cluster (`corral ls` lists them).
    pub name: String,
    /// Print the variables as one JSON object instead of `export` lines.
    #[arg(long)]
    pub json: bool,
}

/// `corral dask-env NAME`: `eval "$(corral dask-env NAME)"` and an unchanged
/// `Client("tls://…")` (or a bare `Client()`) connects.
pub fn run_env(args: DaskEnvArgs) -> anyhow::Result<ExitCode> {
    let cluster = Cluster::open(&args.name)?;
    let info = scheduler_of(&cluster)?;
    let vars = client_env(&cluster, &info);
    if args.json {
        let map: BTreeMap<&str, &str> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    } else {
        print!("{}", dask::env::export_lines(&vars));
    }
    Ok(ExitCode::SUCCESS)
}
