//! What feeds the Dask panel (`watch` starts and drops it): while the TUI watches a cluster that has a dashboard, a proxy on
//! 127.0.0.1:0 of this process (the same one `corral dashboard` runs, over the TUI's own
//! connection to the coordinator) and Dask's view read through it with reqwest every
//! [`READ_EVERY`], posted as `Msg::Dask` when it changed. Dropping the feed stops both.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use corral_core::client::ClusterClient;
use corral_core::dashboard::Proxy;
use corral_core::dashboard::dask::DaskReader;
use corral_core::tasks::AbortOnDrop;
use tokio::sync::mpsc;

use super::super::msg::Msg;

/// How often the scheduler is asked (three small HTTP requests through the tunnel).
pub const READ_EVERY: Duration = Duration::from_secs(2);

pub struct DaskFeed {
    _proxy: Proxy,
    _task: AbortOnDrop<()>,
}

impl DaskFeed {
    /// Starts reading Dask's view of cluster `name` through `client`.
    pub async fn start(
        client: Arc<ClusterClient>,
        name: String,
        tx: mpsc::Sender<Msg>,
    ) -> Result<DaskFeed, String> {
        let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let proxy = Proxy::start(client, bind, &format!("corral dashboard {name}"))
            .await
            .map_err(|e| e.to_string())?;
        // The proxy admits this reader by its session cookie; nothing else of this process
        // listens there, and other users get 403 like at `corral dashboard`.
        let reader = DaskReader::new(&format!("http://{}", proxy.local_addr()), &proxy.cookie())?;
        let task = AbortOnDrop::spawn(async move {
            let mut last = None;
            let mut every = tokio::time::interval(READ_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let result = reader.read().await.map(Box::new);
                // Only what changed: an idle Dask cluster must not cause redraws.
                if last.as_ref() == Some(&result) {
                    continue;
                }
                last = Some(result.clone());
                let msg = Msg::Dask {
                    name: name.clone(),
                    result,
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        });
        Ok(DaskFeed {
            _proxy: proxy,
            _task: task,
        })
    }
}
