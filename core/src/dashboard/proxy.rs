//! `corral dashboard`'s local end: a TCP listener on this machine's loopback whose every
//! browser connection, once the [`Gate`] let it through, becomes one QUIC stream to the
//! cluster's coordinator, which carries it on to the dashboard it registered.
//!
//! Tasks: one accept loop (owned by the [`Proxy`]: dropping it stops everything), which owns
//! one task per browser connection in a `JoinSet`. Connections are capped at
//! [`MAX_BROWSER_CONNECTIONS`] (more wait in the kernel's backlog), and a connection must send
//! its request head within [`HEAD_TIMEOUT`], so other users of the machine cannot hold the
//! places by connecting and saying nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::gate::{self, Gate, Verdict};
use crate::client::{ClientError, ClusterClient};
use crate::protocol::MAX_DASHBOARD_STREAMS;
use crate::tasks::AbortOnDrop;

/// Browser connections served at once (the coordinator carries at most
/// [`MAX_DASHBOARD_STREAMS`] of them; the rest are refusals being written).
pub const MAX_BROWSER_CONNECTIONS: usize = 2 * MAX_DASHBOARD_STREAMS;
/// A connection's first request head must arrive this soon.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Events kept for the caller to read; when it lags, later ones are counted, not kept.
const EVENT_QUEUE: usize = 64;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "cannot listen on {addr}: {source}{}",
        if source.kind() == std::io::ErrorKind::AddrInUse {
            "; another program uses that port: choose another with --port (0: any free port)"
        } else {
            ""
        }
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr} is not a loopback address: the dashboard is served on 127.0.0.1 only")]
    NotLoopback { addr: SocketAddr },
}

/// What happened, for the caller to show (the library prints nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyEvent {
    /// The one-time link was used: a browser has the cookie now.
    LoggedIn,
    /// A connection was refused by the gate (a spent or wrong link, no cookie, not HTTP).
    Refused { why: String },
    /// The coordinator would not open a dashboard stream (its words).
    Unavailable { why: String },
    /// The connection to the coordinator is gone (the cluster is down): nothing more can be
    /// served.
    ClusterGone { why: String },
}

/// A running proxy. Dropping it closes the listener and every connection it carries.
pub struct Proxy {
    addr: SocketAddr,
    gate: Arc<Gate>,
    events: mpsc::Receiver<ProxyEvent>,
    _task: AbortOnDrop<()>,
}

impl Proxy {
    /// Listens on `bind` (a loopback address; port 0: any free one) and carries the
    /// connections the gate admits to `client`'s cluster. `again` is the command a refused
    /// user should run for a new link.
    pub async fn start(
        client: Arc<ClusterClient>,
        bind: SocketAddr,
        again: &str,
    ) -> Result<Proxy, ProxyError> {
        if !bind.ip().is_loopback() {
            return Err(ProxyError::NotLoopback { addr: bind });
        }
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| ProxyError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ProxyError::Bind { addr: bind, source })?;
        let gate = Arc::new(Gate::new(addr.port(), again));
        let (tx, events) = mpsc::channel(EVENT_QUEUE);
        let task = AbortOnDrop::spawn(accept_loop(listener, client, gate.clone(), tx));
        Ok(Proxy {
            addr,
            gate,
            events,
            _task: task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The one-time link (`page` is where it leads, e.g. `/status`).
    pub fn login_url(&self, page: &str) -> String {
        format!(
            "http://{}{page}?{}={}",
            self.addr,
            gate::TOKEN_PARAM,
            self.gate.token()
        )
    }

    /// The `Cookie` header value that admits an in-process HTTP client (the TUI's).
    pub fn cookie(&self) -> String {
        self.gate.cookie()
    }

    /// What happened since the last call (cancel-safe to `select!` on).
    pub fn events(&mut self) -> &mut mpsc::Receiver<ProxyEvent> {
        &mut self.events
    }
}

async fn accept_loop(
    listener: TcpListener,
    client: Arc<ClusterClient>,
    gate: Arc<Gate>,
    events: mpsc::Sender<ProxyEvent>,
) {
    let places = Arc::new(Semaphore::new(MAX_BROWSER_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let Ok(place) = places.clone().acquire_owned().await else {
            return;
        };
        tokio::select! {
            why = client.closed() => {
                let _ = events.send(ProxyEvent::ClusterGone { why }).await;
                return;
            }
            a = listener.accept() => match a {
                Ok((tcp, _)) => {
                    let (client, gate, events) = (client.clone(), gate.clone(), events.clone());
                    conns.spawn(async move {
                        let _place = place;
                        browser(tcp, &client, &gate, &events).await;
                    });
                }
                // Out of descriptors and the like: pause rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Reads the first request head; `Err` is the response to refuse with.
async fn read_head(tcp: &mut TcpStream) -> Result<(Vec<u8>, gate::Head), Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = gate::head_end(&buf) {
                return Ok(end);
            }
            if buf.len() > gate::MAX_HEAD {
                return Err(Some(gate::response(
                    "431 Request Header Fields Too Large",
                    &[],
                    "corral dashboard: the request head is too long\n",
                )));
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(None),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let end = match tokio::time::timeout(HEAD_TIMEOUT, read).await {
        Ok(r) => r?,
        Err(_) => return Err(None),
    };
    match gate::parse_head(&buf[..end]) {
        Ok(h) => Ok((buf, h)),
        Err(e) => Err(Some(gate::response(
            "400 Bad Request",
            &[],
            &format!("corral dashboard: {e}\n"),
        ))),
    }
}

fn emit(events: &mpsc::Sender<ProxyEvent>, e: ProxyEvent) {
    // A caller that does not read events must not stall the connections.
    let _ = events.try_send(e);
}

async fn browser(
    mut tcp: TcpStream,
    client: &ClusterClient,
    gate: &Gate,
    events: &mpsc::Sender<ProxyEvent>,
) {
    let _ = tcp.set_nodelay(true);
    let (head_bytes, head) = match read_head(&mut tcp).await {
        Ok(h) => h,
        Err(reply) => {
            if let Some(r) = reply {
                let _ = tcp.write_all(&r).await;
                emit(
                    events,
                    ProxyEvent::Refused {
                        why: "a request that is not HTTP".into(),
                    },
                );
            }
            return;
        }
    };
    match gate.judge(&head) {
        Verdict::Pass => {}
        Verdict::Login { location } => {
            let set_cookie = gate.set_cookie();
            let r = gate::response(
                "303 See Other",
                &[("Location", &location), ("Set-Cookie", &set_cookie)],
                "",
            );
            let _ = tcp.write_all(&r).await;
            emit(events, ProxyEvent::LoggedIn);
            return;
        }
        Verdict::Forbidden(why) => {
            let _ = tcp
                .write_all(&gate::response("403 Forbidden", &[], &why))
                .await;
            emit(
                events,
                ProxyEvent::Refused {
                    why: why
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim_start_matches("corral dashboard: ")
                        .to_owned(),
                },
            );
            return;
        }
    }
    let (mut send, recv) = match client.open_dashboard().await {
        Ok(s) => s,
        Err(e) => {
            let (status, event) = match &e {
                ClientError::Refused(why) => (
                    "503 Service Unavailable",
                    ProxyEvent::Unavailable { why: why.clone() },
                ),
                other => (
                    "502 Bad Gateway",
                    ProxyEvent::Unavailable {
                        why: other.to_string(),
                    },
                ),
            };
            let _ = tcp
                .write_all(&gate::response(
                    status,
                    &[],
                    &format!("corral dashboard: {e}\n"),
                ))
                .await;
            emit(events, event);
            return;
        }
    };
    // What was read while judging goes first, then the connection as it comes.
    if send.write_all(&head_bytes).await.is_err() {
        return;
    }
    let _ = super::splice::splice(send, recv, tcp).await;
}
