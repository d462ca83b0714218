//! `corral dashboard NAME [--port P]`: the cluster's dashboard (the Dask scheduler's web pages)
//! on this machine's loopback, carried over the cluster's authenticated QUIC connection — no
//! port of the cluster is open to anyone. Prints a one-time link (stdout) and how to reach it
//! through `ssh -L` (stderr); serves until Ctrl-C or until the cluster goes down.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use corral_core::backend::Cluster;
use corral_core::client::ClusterClient;
use corral_core::dashboard::{Proxy, ProxyError, ProxyEvent};

/// Dask's own dashboard port: what people type out of habit, and what `ssh -L` examples use.
pub const DEFAULT_PORT: u16 = 8787;

#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// The cluster (a Dask cluster: `corral up --dask`).
    pub name: String,
    /// Port on 127.0.0.1 of this machine (default 8787, or any free one when 8787 is taken;
    /// 0: any free one).
    #[arg(long, value_name = "P")]
    pub port: Option<u16>,
    /// Print the link as one JSON object (`cluster`, `url`, `port`) instead of the text.
    #[arg(long)]
    pub json: bool,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// The words for a proxy event, or `None` for one not worth a line.
fn event_line(name: &str, e: &ProxyEvent) -> Option<String> {
    match e {
        ProxyEvent::LoggedIn => Some(
            "a browser opened the link; the link is spent (run `corral dashboard` again for \
             another browser)"
                .into(),
        ),
        ProxyEvent::Refused { why } => Some(format!("refused a connection: {why}")),
        ProxyEvent::Unavailable { why } => Some(format!(
            "cluster {name}: {}",
            corral_core::text::terminal_safe(why)
        )),
        ProxyEvent::ClusterGone { .. } => None,
    }
}

pub async fn run(args: DashboardArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    let cluster = Cluster::open(name)?;
    if let Some(st) = &cluster.record.stopped {
        bail!(
            "cluster {name} is down ({}); there is no dashboard to show. Start a Dask cluster \
             with `corral up --dask`",
            st.how
        );
    }
    let client = ClusterClient::connect(&cluster.dir)
        .await
        .with_context(|| format!("cannot reach the cluster {name}"))?;
    let snapshot = client
        .snapshot()
        .await
        .with_context(|| format!("cannot reach the cluster {name}"))?;
    if !snapshot.dashboard {
        bail!(
            "cluster {name} has no dashboard: only a Dask cluster (`corral up --dask`) has one, \
             once its Dask scheduler is up (`corral status {name}` shows what runs)"
        );
    }
    let client = Arc::new(client);
    let again = format!("corral dashboard {name}");
    let mut proxy = match args.port {
        Some(p) => Proxy::start(client.clone(), loopback(p), &again).await?,
        None => match Proxy::start(client.clone(), loopback(DEFAULT_PORT), &again).await {
            Err(ProxyError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                eprintln!("port {DEFAULT_PORT} is taken on this machine; using a free one");
                Proxy::start(client.clone(), loopback(0), &again).await?
            }
            other => other?,
        },
    };
    let url = proxy.login_url("/status");
    let port = proxy.local_addr().port();
    if args.json {
        let out = serde_json::json!({ "cluster": name, "url": url, "port": port });
        println!("{out}");
    } else {
        println!("{url}");
    }
    let _ = std::io::stdout().flush();
    if !args.json {
        let user = std::env::var("USER").unwrap_or_else(|_| "you".into());
        let host = corral_core::cluster_dir::hostname();
        eprintln!(
            "Dashboard of cluster {name}, on 127.0.0.1:{port} of this machine only (the link \
             above).\n\
             The link works once: the first browser that opens it gets a cookie; any other \
             request gets 403.\n\
             From your laptop: ssh -N -L {port}:127.0.0.1:{port} {user}@{host}\n\
             then open the same link in the laptop's browser. Ctrl-C stops serving."
        );
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopped serving the dashboard of {name} (the cluster keeps running)");
                return Ok(ExitCode::SUCCESS);
            }
            e = proxy.events().recv() => match e {
                Some(ProxyEvent::ClusterGone { why }) => {
                    bail!("cluster {name} went away ({why}); stopped serving its dashboard");
                }
                Some(e) => {
                    if let Some(line) = event_line(name, &e) {
                        eprintln!("{line}");
                    }
                }
                None => bail!("the dashboard proxy stopped"),
            },
        }
    }
}
