//! The coordinator's listener: admission (who may start a handshake, see [`super::admission`]),
//! the handshake with deadlines, and only authenticated connections handed to the
//! application.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::admission::{Admission, Refusal, Refusals};
use super::{
    AUTHED_MAX_STREAMS, AUTHED_RECEIVE_WINDOW, AuthedConnection, FrameError, TransportError,
    decode_payload, keying_material, recv_frame_bytes, send_frame, server_endpoint,
};
use crate::protocol::{
    AuthProof, CloseCode, Hello, MAX_HANDSHAKE_FRAME_LEN, PROTOCOL_VERSION, Role,
};
use crate::security::{Fingerprint, Secret, ServerIdentity, verify_auth_proof};

/// From the first packet to "authenticated".
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(4);
/// From the first packet to TLS done: a stranger that stalls TLS is dropped sooner.
pub const TLS_DEADLINE: Duration = Duration::from_secs(2);
/// How many connections may be between "first packet" and "authenticated" at once. A
/// handshake takes milliseconds on a cluster network, so this is generous for a burst of
/// workers starting together, yet bounds what strangers can make the coordinator hold.
pub const MAX_PENDING: usize = 1024;
/// Of those, how many may come from one address: a flood from one node cannot take the
/// places of the others (its own workers retry with backoff).
pub const MAX_PENDING_PER_ADDRESS: usize = 64;
/// Refusals are logged as one summary line at most this often.
pub const REFUSAL_SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Knobs of the authenticating server; the defaults are the product's values.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// From the first packet to "authenticated".
    pub handshake_deadline: Duration,
    /// From the first packet to TLS done.
    pub tls_deadline: Duration,
    /// Connections allowed between first packet and authenticated at once.
    pub max_pending: usize,
    /// Of those, from one address.
    pub max_pending_per_address: usize,
    /// Make peers prove their address (QUIC Retry) before any handshake state is kept.
    pub validate_addresses: bool,
    pub refusal_summary_every: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            handshake_deadline: HANDSHAKE_DEADLINE,
            tls_deadline: TLS_DEADLINE,
            max_pending: MAX_PENDING,
            max_pending_per_address: MAX_PENDING_PER_ADDRESS,
            validate_addresses: true,
            refusal_summary_every: REFUSAL_SUMMARY_EVERY,
        }
    }
}

/// The coordinator's listener: accepts connections in the background, runs the handshake on
/// each, and yields only authenticated ones from [`Server::accept`].
#[derive(Debug)]
pub struct Server {
    endpoint: Endpoint,
    authed: mpsc::Receiver<AuthedConnection>,
    task: JoinHandle<()>,
    fingerprint: Fingerprint,
}

impl Server {
    /// Binds `bind` (port 0: the kernel chooses) and starts accepting. Must run inside a tokio
    /// runtime.
    pub fn bind(
        bind: SocketAddr,
        identity: &ServerIdentity,
        secret: Arc<Secret>,
        options: ServerOptions,
    ) -> Result<Self, TransportError> {
        let endpoint = server_endpoint(bind, identity)?;
        let (tx, authed) = mpsc::channel(options.max_pending.max(1));
        let task = tokio::spawn(accept_loop(endpoint.clone(), secret, options, tx));
        Ok(Self {
            endpoint,
            authed,
            task,
            fingerprint: *identity.fingerprint(),
        })
    }

    /// The next authenticated connection; `None` once the server is closed.
    pub async fn accept(&mut self) -> Option<AuthedConnection> {
        self.authed.recv().await
    }

    /// The bound address (with the kernel-chosen port), for `coordinator.json`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The underlying endpoint (statistics, `wait_idle`).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Closes every connection with [`CloseCode::Shutdown`] and stops accepting.
    pub fn close(&self) {
        self.close_with(CloseCode::Shutdown, b"");
    }

    /// Closes every connection with `code` (workers exit on `Shutdown`, reconnect on others).
    pub fn close_with(&self, code: CloseCode, why: &[u8]) {
        self.endpoint.close(VarInt::from_u32(code.code()), why);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The accept loop owns the handshakes in flight: aborting it ends them too.
        self.task.abort();
    }
}

async fn accept_loop(
    endpoint: Endpoint,
    secret: Arc<Secret>,
    options: ServerOptions,
    tx: mpsc::Sender<AuthedConnection>,
) {
    let admission = Admission::new(options.max_pending, options.max_pending_per_address);
    let refusals = Arc::new(Refusals::default());
    let mut handshakes = JoinSet::new();
    let mut summary = tokio::time::interval(options.refusal_summary_every);
    summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
            _ = summary.tick() => {
                if let Some(line) = refusals.summary() {
                    warn!("{line}");
                }
                continue;
            }
        };
        let remote = incoming.remote_address();
        // An unproven address costs one stateless packet: the peer must echo the token from
        // its real address before anything is counted against that address.
        if options.validate_addresses && !incoming.remote_address_validated() {
            if incoming.may_retry() {
                if let Err(e) = incoming.retry() {
                    debug!(%remote, "retry not possible: {e}");
                }
            } else {
                incoming.ignore();
            }
            continue;
        }
        let ticket = match admission.admit(remote.ip()) {
            Ok(t) => t,
            Err(why) => {
                // Refusing costs one packet and no cryptography.
                refusals.note(why, remote.ip());
                incoming.refuse();
                continue;
            }
        };
        let secret = secret.clone();
        let tx = tx.clone();
        let refusals = refusals.clone();
        let now = Instant::now();
        let deadlines = Deadlines {
            tls: now + options.tls_deadline.min(options.handshake_deadline),
            all: now + options.handshake_deadline,
        };
        handshakes.spawn(async move {
            let authed = server_handshake(incoming, &secret, deadlines, &refusals).await;
            // Authenticated or not, this connection no longer counts as pending.
            drop(ticket);
            if let Some(authed) = authed
                && let Err(mpsc::error::SendError(authed)) = tx.send(authed).await
            {
                authed.close(CloseCode::Shutdown, "");
            }
        });
    }
    if let Some(line) = refusals.summary() {
        warn!("{line}");
    }
}

#[derive(Clone, Copy)]
struct Deadlines {
    tls: Instant,
    all: Instant,
}

/// Runs steps 1–4 of the handshake for one incoming connection within its deadlines.
async fn server_handshake(
    incoming: quinn::Incoming,
    secret: &Secret,
    deadlines: Deadlines,
    refusals: &Refusals,
) -> Option<AuthedConnection> {
    let remote = incoming.remote_address();
    let refused = |why| refusals.note(why, remote.ip());
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            debug!(%remote, error = %e, "incoming connection failed");
            refused(Refusal::TlsFailed);
            return None;
        }
    };
    let conn = match tokio::time::timeout_at(deadlines.tls, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            // Scanners and wrong-ALPN probes end here.
            debug!(%remote, error = %e, "TLS handshake failed");
            refused(Refusal::TlsFailed);
            return None;
        }
        Err(_) => {
            // Dropping the half-open connection abandons it; nothing was sent but TLS.
            debug!(%remote, "TLS handshake not finished before the deadline");
            refused(Refusal::TlsTimeout);
            return None;
        }
    };
    // The streams live out here, not in the timed future: dropping a send stream finishes
    // it, and a stranger must not see even that. They are dropped only after `close`.
    let mut streams: Option<(SendStream, RecvStream)> = None;
    let verdict = tokio::time::timeout_at(deadlines.all, authenticate(&conn, secret, &mut streams))
        .await
        .unwrap_or(Err((CloseCode::HandshakeTimeout, "deadline passed")));
    let hello = match verdict {
        Ok(hello) => hello,
        Err((code, why)) => {
            debug!(%remote, %code, why, "rejected unauthenticated connection");
            refused(match code {
                CloseCode::HandshakeTimeout => Refusal::AuthTimeout,
                CloseCode::AuthFailed => Refusal::AuthFailed,
                _ => Refusal::Violation,
            });
            conn.close(VarInt::from_u32(code.code()), b"");
            drop(streams);
            return None;
        }
    };
    let Some((mut send, recv)) = streams else {
        conn.close(VarInt::from_u32(CloseCode::ProtocolViolation.code()), b"");
        return None;
    };
    // Authenticated: lift the stranger's limits, then greet.
    conn.set_receive_window(VarInt::from_u32(AUTHED_RECEIVE_WINDOW));
    conn.set_max_concurrent_bi_streams(VarInt::from_u32(AUTHED_MAX_STREAMS));
    conn.set_max_concurrent_uni_streams(VarInt::from_u32(AUTHED_MAX_STREAMS));
    let greeted = tokio::time::timeout_at(
        deadlines.all,
        send_frame(&mut send, &Hello::new(Role::Coordinator)),
    )
    .await;
    if !matches!(greeted, Ok(Ok(()))) {
        debug!(%remote, "client vanished during the handshake");
        conn.close(VarInt::from_u32(CloseCode::HandshakeTimeout.code()), b"");
        return None;
    }
    debug!(%remote, role = ?hello.role, node = %hello.node, "authenticated");
    Some(AuthedConnection {
        connection: conn,
        send,
        recv,
        peer: hello,
    })
}

type Reject = (CloseCode, &'static str);

/// Step 3: reads the client's hello and proof from the control stream and judges them.
async fn authenticate(
    conn: &Connection,
    secret: &Secret,
    streams: &mut Option<(SendStream, RecvStream)>,
) -> Result<Hello, Reject> {
    const VIOLATION: CloseCode = CloseCode::ProtocolViolation;
    let (_, recv) = streams.insert(
        conn.accept_bi()
            .await
            .map_err(|_| (VIOLATION, "no control stream"))?,
    );
    let handshake_frame =
        async |recv: &mut RecvStream| match recv_frame_bytes(recv, MAX_HANDSHAKE_FRAME_LEN).await {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err((VIOLATION, "control stream finished early")),
            Err(FrameError::Oversize { .. }) => Err((VIOLATION, "oversize handshake frame")),
            Err(_) => Err((VIOLATION, "malformed handshake frame")),
        };
    let hello_bytes = handshake_frame(recv).await?;
    // Only the version is read before authentication: it is frozen as the first field, and
    // checking it first lets a newer client learn the versions differ rather than misread
    // a changed proof format as a wrong secret.
    let (version, _) = postcard::take_from_bytes::<u32>(&hello_bytes)
        .map_err(|_| (VIOLATION, "malformed hello"))?;
    if version != PROTOCOL_VERSION {
        return Err((CloseCode::VersionMismatch, "protocol version differs"));
    }
    let proof_bytes = handshake_frame(recv).await?;
    let proof: AuthProof =
        decode_payload(&proof_bytes).map_err(|_| (VIOLATION, "malformed proof"))?;
    let km = keying_material(conn).ok_or((CloseCode::AuthFailed, "no keying material"))?;
    if !verify_auth_proof(secret, &km, &proof.mac) {
        return Err((CloseCode::AuthFailed, "wrong proof of the cluster secret"));
    }
    let hello: Hello = decode_payload(&hello_bytes).map_err(|_| (VIOLATION, "malformed hello"))?;
    if hello.role == Role::Coordinator {
        return Err((VIOLATION, "a coordinator does not connect to a coordinator"));
    }
    Ok(hello)
}
