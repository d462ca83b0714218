//! The coordinator's end of the dashboard tunnel ([`ClientRequest::Dashboard`]).
//!
//! The coordinator forwards to one address only: the dashboard it registered itself (from
//! `CoordinatorOptions::dashboard` or [`super::Control::Dashboard`], set by whoever started the
//! Dask scheduler on this node), and only a loopback one. A client's request names no target,
//! so holding the cluster secret gives a way to that dashboard and nowhere else. Streams are
//! counted against [`MAX_DASHBOARD_STREAMS`] over all clients.
//!
//! [`ClientRequest::Dashboard`]: crate::protocol::ClientRequest::Dashboard

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{RecvStream, SendStream};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tracing::debug;

use crate::protocol::{MAX_DASHBOARD_STREAMS, ToClient};
use crate::transport::send_frame;

/// How long connecting to the dashboard may take (it is on this node's loopback: it answers
/// at once or not at all).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The registered dashboard and the streams open to it, shared by the connection tasks.
#[derive(Clone)]
pub(crate) struct Dashboards {
    pub addr: watch::Receiver<Option<SocketAddr>>,
    pub streams: Arc<Semaphore>,
}

impl Dashboards {
    pub fn new(addr: watch::Receiver<Option<SocketAddr>>) -> Dashboards {
        Dashboards {
            addr,
            streams: Arc::new(Semaphore::new(MAX_DASHBOARD_STREAMS)),
        }
    }
}

/// Why an address cannot be a dashboard: it must be on this node's loopback, so the tunnel
/// never becomes a way from the cluster's network to somewhere else.
pub fn check_address(addr: SocketAddr) -> Result<SocketAddr, String> {
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: the dashboard must listen on 127.0.0.1 (or ::1) \
             of the coordinator's node, where only the tunnel reaches it"
        ));
    }
    if addr.port() == 0 {
        return Err(format!("{addr} has no port"));
    }
    Ok(addr)
}

/// The message for a cluster with no dashboard registered.
pub const NO_DASHBOARD: &str = "this cluster has no dashboard: only a Dask cluster (`corral up \
    --dask`) has one, once its Dask scheduler is up";

/// Serves one dashboard request: connect, answer, then carry bytes until either side ends.
pub(crate) async fn serve(mut send: SendStream, recv: RecvStream, d: &Dashboards) {
    let refuse = |message: String| ToClient::Refused { message };
    let Some(addr) = *d.addr.borrow() else {
        let _ = send_frame(&mut send, &refuse(NO_DASHBOARD.into())).await;
        let _ = send.finish();
        return;
    };
    let Ok(_permit) = d.streams.clone().try_acquire_owned() else {
        let _ = send_frame(
            &mut send,
            &refuse(format!(
                "the coordinator carries {MAX_DASHBOARD_STREAMS} dashboard connections already; \
                 close some dashboard tabs and reload"
            )),
        )
        .await;
        let _ = send.finish();
        return;
    };
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let message = format!(
                "the dashboard at {addr} on the coordinator's node does not answer ({e}): the \
                 Dask scheduler may have stopped; see the cluster's logs"
            );
            let _ = send_frame(&mut send, &refuse(message)).await;
            let _ = send.finish();
            return;
        }
        Err(_) => {
            let message = format!(
                "the dashboard at {addr} on the coordinator's node did not accept a connection \
                 within {CONNECT_TIMEOUT:?}"
            );
            let _ = send_frame(&mut send, &refuse(message)).await;
            let _ = send.finish();
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    if send_frame(&mut send, &ToClient::DashboardOpen)
        .await
        .is_err()
    {
        return;
    }
    match crate::dashboard::splice::splice(send, recv, tcp).await {
        Ok(c) => debug!(
            to_dashboard = c.to_tcp,
            from_dashboard = c.to_quic,
            "dashboard stream done"
        ),
        Err(e) => debug!("dashboard stream ended: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_with_a_port_are_dashboards() {
        assert!(check_address("127.0.0.1:8787".parse().expect("addr")).is_ok());
        assert!(check_address("[::1]:8787".parse().expect("addr")).is_ok());
        let e = check_address("10.0.0.5:8787".parse().expect("addr")).expect_err("remote");
        assert!(e.contains("not a loopback"), "{e}");
        assert!(check_address("0.0.0.0:8787".parse().expect("addr")).is_err());
        assert!(check_address("127.0.0.1:0".parse().expect("addr")).is_err());
    }
}
