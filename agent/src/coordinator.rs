//! `corral-agent coordinator`: opens the cluster directory (refusing an insecure one), binds,
//! serves until SIGTERM/SIGINT or a client's shutdown; SIGUSR1 marks the walltime ending.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::process::ExitCode;

use anyhow::{Context, bail};
use corral_core::cluster_dir::ClusterDir;
use corral_core::coordinator::{Control, Coordinator, CoordinatorOptions};
use corral_core::tasks::AbortOnDrop;
use tokio::sync::mpsc;
use tracing::info;

use crate::cli::CoordinatorArgs;
use crate::signals::{self, Sig};

/// 127.0.0.1 outside SLURM; inside a SLURM job the node's first non-loopback address, which
/// is what the workers on other nodes can reach.
fn default_bind() -> anyhow::Result<IpAddr> {
    if std::env::var_os("SLURM_JOB_ID").is_none() {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let host = corral_core::cluster_dir::hostname();
    let addrs = (host.as_str(), 0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve this node's name {host:?}; pass --bind IP"))?;
    let mut all: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
    all.sort_by_key(|ip| !ip.is_ipv4());
    match all.iter().find(|ip| !ip.is_loopback()) {
        Some(ip) => Ok(*ip),
        // Emulated nodes sharing one host (and single-node sites) name themselves loopback;
        // listening there is still reachable from every "node". Say so, because on a real
        // multi-host allocation workers elsewhere would not get through.
        None => match all.first() {
            Some(ip) => {
                tracing::warn!(
                    "{host:?} resolves only to loopback ({ip}); listening there, so only workers on                      this host can connect (pass --bind with the node's cluster address otherwise)"
                );
                Ok(*ip)
            }
            None => bail!(
                "{host:?} resolves to no address; pass --bind with the node's cluster address"
            ),
        },
    }
}

pub fn run(args: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let dir = ClusterDir::open_path(&args.cluster)?;
    let bind = match args.bind {
        Some(b) => b,
        None => default_bind()?,
    };
    let mut opts = CoordinatorOptions::new(bind);
    if let Some(p) = args.partition_bytes {
        opts.partition_bytes = p.max(1);
    }
    // Two threads: connection tasks and the state task; merging and planning use blocking
    // threads of their own.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let coordinator = Coordinator::bind(dir, opts)?;
        let (ctl_tx, ctl_rx) = mpsc::channel(8);
        let (sig_tx, mut sig_rx) = mpsc::channel(8);
        let _signals = AbortOnDrop::spawn(signals::forward(sig_tx));
        let _relay = AbortOnDrop::spawn(async move {
            while let Some(s) = sig_rx.recv().await {
                let c = match s {
                    Sig::Term => Control::Shutdown {
                        reason: "SIGTERM".into(),
                    },
                    Sig::Int => Control::Shutdown {
                        reason: "SIGINT".into(),
                    },
                    Sig::Usr1 => Control::WalltimeEnding,
                };
                if ctl_tx.send(c).await.is_err() {
                    return;
                }
            }
        });
        coordinator.run(ctl_rx).await?;
        info!("bye");
        Ok(ExitCode::SUCCESS)
    })
}
