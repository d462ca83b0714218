//! QUIC endpoints, the frame codec, and the authentication handshake.
//!
//! Every connection is quinn over rustls (ring provider, TLS 1.3, ALPN
//! [`crate::protocol::ALPN`]). The client opens one bidirectional *control stream* and runs the
//! handshake on it:
//!
//! 1. TLS: the client accepts only the pinned certificate ([`PinnedServerVerifier`]); both
//!    sides must agree on ALPN `corral/1`.
//! 2. client → server: [`Hello`] (protocol version first), then [`AuthProof`] =
//!    HMAC-SHA256(secret, TLS exporter of this connection). Sent together, no round trip.
//! 3. The server checks the version, then the proof (constant time), then decodes the hello.
//!    Any failure closes the connection with a [`CloseCode`] and nothing else: an
//!    unauthenticated peer never receives a byte of application data.
//! 4. server → client: its own [`Hello`]. Only now does the server lift the tight stream and
//!    flow-control limits it gave the stranger, and hand the connection to the application.
//!
//! The whole server side of steps 1–4 has a deadline (5 s by default), and the number of
//! connections in steps 1–4 at once is capped; connections over the cap are refused before
//! any cryptography is done.
//!
//! Frames are a `u32` big-endian length then a postcard payload of at most
//! [`MAX_FRAME_LEN`] bytes; decoding garbage gives a [`FrameError`], never a panic.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{
    Connection, ConnectionError, Endpoint, RecvStream, SendStream, TransportConfig, VarInt,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cluster_dir::{ClusterDir, ClusterDirError};
use crate::protocol::{ALPN, AuthProof, CloseCode, Hello, MAX_FRAME_LEN, PROTOCOL_VERSION, Role};
use crate::security::{
    AUTH_EXPORTER_LABEL, Fingerprint, PinnedServerVerifier, SERVER_NAME, Secret, ServerIdentity,
    auth_proof, crypto_provider,
};

/// QUIC keep-alive: frequent enough that a lost peer is noticed within the idle timeout.
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// A connection silent for this long is dead (a killed worker, a crashed coordinator).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits for the whole connect + handshake: a little more than the
/// server's own deadline ([`HANDSHAKE_DEADLINE`]), past which the attempt is dead anyway and a
/// new one (with backoff) is the way forward.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Flow control for a stranger: the handshake frames are a few hundred bytes.
const UNAUTHED_RECEIVE_WINDOW: u32 = 64 * 1024;
/// Flow control once authenticated: room for a few maximum frames in flight.
const AUTHED_RECEIVE_WINDOW: u32 = 4 * MAX_FRAME_LEN as u32;
/// Streams a peer may open at once once authenticated (a stranger gets just the control one).
const AUTHED_MAX_STREAMS: u32 = 256;

/// A frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversize { len: u64, max: usize },
    #[error("the stream ended in the middle of a frame")]
    Truncated,
    #[error("undecodable frame: {0}")]
    Decode(postcard::Error),
    #[error("frame has {0} bytes left over after its message")]
    TrailingBytes(usize),
    #[error("message could not be encoded: {0}")]
    Encode(postcard::Error),
    #[error("stream error: {0}")]
    Io(#[from] io::Error),
}

/// Errors of setting up an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("QUIC configuration: {0}")]
    Quic(String),
}

/// Why a client could not get an authenticated connection to a coordinator.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Endpoint(#[from] TransportError),
    #[error(transparent)]
    ClusterDir(#[from] ClusterDirError),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: quinn::ConnectError,
    },
    #[error(
        "the server at {addr} presented certificate {presented}, not the coordinator's \
         {expected}: coordinator.json is stale (the coordinator restarted or is gone) or \
         something else listens there"
    )]
    FingerprintMismatch {
        addr: SocketAddr,
        expected: Fingerprint,
        presented: Fingerprint,
    },
    #[error("the coordinator at {addr} is busy with other new connections; retry shortly")]
    Busy { addr: SocketAddr },
    #[error("the coordinator at {addr} refused the connection: {code}")]
    Rejected { addr: SocketAddr, code: CloseCode },
    #[error(
        "the coordinator at {addr} speaks corral protocol {theirs}, this corral speaks \
         {PROTOCOL_VERSION}; use the same corral version for the TUI and the agents"
    )]
    VersionMismatch { addr: SocketAddr, theirs: u32 },
    #[error("no answer from {addr} within {:?}", CONNECT_TIMEOUT)]
    Timeout { addr: SocketAddr },
    #[error("connection to {addr} failed: {source}")]
    Connection {
        addr: SocketAddr,
        source: ConnectionError,
    },
    #[error("handshake with {addr} failed: {source}")]
    Frame {
        addr: SocketAddr,
        source: FrameError,
    },
    #[error("the server at {addr} answered as a {role:?}, not a coordinator")]
    NotACoordinator { addr: SocketAddr, role: Role },
}

impl ConnectError {
    /// Worth retrying soon (the coordinator is up but momentarily full, or not answering yet).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Busy { .. }
                | ConnectError::Timeout { .. }
                | ConnectError::Rejected {
                    code: CloseCode::HandshakeTimeout,
                    ..
                }
        )
    }

    /// Retrying cannot fix it: a wrong secret, another corral version, a certificate or
    /// cluster directory that is not the coordinator's.
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectError::Rejected { code, .. } => {
                matches!(code, CloseCode::AuthFailed | CloseCode::VersionMismatch)
            }
            ConnectError::VersionMismatch { .. } | ConnectError::NotACoordinator { .. } => true,
            ConnectError::ClusterDir(d) => !matches!(
                d,
                ClusterDirError::CoordinatorNotStarted { .. }
                    | ClusterDirError::Io { .. }
                    | ClusterDirError::Json { .. }
            ),
            _ => false,
        }
    }
}

/// Jittered exponential backoff between connection attempts: many workers refused at once
/// (a burst over the coordinator's caps) come back spread out, not in lockstep.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            next: min,
            min,
            max: max.max(min),
        }
    }

    /// The pause before the next attempt: the current step times a random factor in
    /// [0.5, 1.5); the step doubles up to the maximum.
    pub fn pause(&mut self) -> Duration {
        // The operating system's generator; a failure only loses the jitter.
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        let unit = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
        let d = self.next.mul_f64(0.5 + unit);
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// After a success: start small again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

// ---------------------------------------------------------------------------------------------
// Frames

/// Encodes `msg` as one frame (length prefix included).
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = postcard::to_extend(msg, vec![0u8; 4]).map_err(FrameError::Encode)?;
    let len = buf.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::Oversize {
            len: len as u64,
            max: MAX_FRAME_LEN,
        });
    }
    // len <= MAX_FRAME_LEN < u32::MAX, checked above.
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Decodes one frame's payload; the whole payload must be the message.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (msg, rest) = postcard::take_from_bytes(payload).map_err(FrameError::Decode)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// Writes `msg` as one frame.
pub async fn send_frame<W, T>(w: &mut W, msg: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin + ?Sized,
    T: Serialize + ?Sized,
{
    let buf = encode_frame(&msg)?;
    w.write_all(&buf).await?;
    Ok(())
}

/// Reads one frame; `Ok(None)` if the stream ended cleanly before it.
pub async fn recv_frame<R, T>(r: &mut R) -> Result<Option<T>, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
    T: DeserializeOwned,
{
    match recv_frame_bytes(r, MAX_FRAME_LEN).await? {
        Some(payload) => decode_payload(&payload).map(Some),
        None => Ok(None),
    }
}

/// Reads one frame's payload of at most `max` bytes; `Ok(None)` on a clean end of stream.
/// The buffer grows with the data actually received, so a lying length prefix costs nothing.
pub async fn recv_frame_bytes<R>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(header);
    if len as usize > max {
        return Err(FrameError::Oversize {
            len: u64::from(len),
            max,
        });
    }
    let mut payload = Vec::with_capacity((len as usize).min(64 * 1024));
    (&mut *r)
        .take(u64::from(len))
        .read_to_end(&mut payload)
        .await?;
    if payload.len() != len as usize {
        return Err(FrameError::Truncated);
    }
    Ok(Some(payload))
}

// ---------------------------------------------------------------------------------------------
// Connections

/// A connection whose peer proved the cluster secret (server side) or that proved it to the
/// pinned coordinator (client side), with the control stream the handshake ran on.
#[derive(Debug)]
pub struct AuthedConnection {
    pub connection: Connection,
    /// The control stream: the application's first stream, already open in both directions.
    pub send: SendStream,
    pub recv: RecvStream,
    /// The peer's hello: role, version, node.
    pub peer: Hello,
}

impl AuthedConnection {
    pub fn remote_address(&self) -> SocketAddr {
        self.connection.remote_address()
    }

    /// Sends one message on the control stream.
    pub async fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), FrameError> {
        send_frame(&mut self.send, msg).await
    }

    /// Receives one message from the control stream; `None` when the peer finished it.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        recv_frame(&mut self.recv).await
    }

    /// Closes the whole connection with `code`.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.connection
            .close(VarInt::from_u32(code.code()), reason.as_bytes());
    }
}

fn transport_config(unauthenticated_server: bool) -> Result<TransportConfig, TransportError> {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_idle_timeout(Some(
        IDLE_TIMEOUT
            .try_into()
            .map_err(|e| TransportError::Quic(format!("idle timeout: {e}")))?,
    ));
    if unauthenticated_server {
        // A stranger may open the control stream and nothing else, and may make us buffer
        // only a little; the limits are lifted per connection after authentication.
        t.max_concurrent_bidi_streams(VarInt::from_u32(1));
        t.max_concurrent_uni_streams(VarInt::from_u32(0));
        t.receive_window(VarInt::from_u32(UNAUTHED_RECEIVE_WINDOW));
        // Datagrams cannot be re-enabled after the handshake; corral uses streams only.
        t.datagram_receive_buffer_size(None);
    }
    Ok(t)
}

/// A server endpoint bound to `bind` (port 0 lets the kernel choose), presenting `identity`,
/// with ALPN `corral/1`, TLS 1.3 and the ring provider. Most callers want [`Server::bind`],
/// which adds the authenticating accept loop.
pub fn server_endpoint(
    bind: SocketAddr,
    identity: &ServerIdentity,
) -> Result<Endpoint, TransportError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![identity.certificate().clone()], identity.private_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TransportError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport_config(true)?));
    endpoint(bind, Some(config))
}

/// The UDP socket's receive buffer we ask for (the kernel caps it at `net.core.rmem_max`). The
/// default (~200 KiB) overflows when thousands of workers connect at once, and every dropped
/// handshake packet costs a retransmission timeout or a whole connection attempt.
const UDP_RECEIVE_BUFFER: usize = 8 << 20;

fn endpoint(
    bind: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> Result<Endpoint, TransportError> {
    let err = |source| TransportError::Bind { addr: bind, source };
    let socket = std::net::UdpSocket::bind(bind).map_err(err)?;
    // Best effort: a smaller buffer still works, it only drops more in a burst.
    if let Ok(state) = quinn::udp::UdpSocketState::new((&socket).into()) {
        let _ = state.set_recv_buffer_size((&socket).into(), UDP_RECEIVE_BUFFER);
    }
    Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(err)
}

/// A client endpoint on an ephemeral port of the same address family as `remote`. It never
/// accepts connections: workers and clients do not listen.
pub fn client_endpoint(remote: SocketAddr) -> Result<Endpoint, TransportError> {
    let bind: SocketAddr = match remote {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    endpoint(bind, None)
}

fn client_config(
    pin: Fingerprint,
    alpn: &[u8],
) -> Result<(quinn::ClientConfig, Arc<PinnedServerVerifier>), TransportError> {
    let provider = crypto_provider();
    let verifier = Arc::new(PinnedServerVerifier::new(pin, provider.clone()));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    // No resumption: every connection sees and checks the certificate, and nothing about a
    // cluster outlives the process.
    tls.resumption = rustls::client::Resumption::disabled();
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TransportError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport_config(false)?));
    Ok((config, verifier))
}

/// The TLS connection only, before corral's handshake (used by [`connect`], and by tests that
/// play a misbehaving client).
async fn connect_tls(
    endpoint: &Endpoint,
    addr: SocketAddr,
    pin: &Fingerprint,
    alpn: &[u8],
) -> Result<Connection, ConnectError> {
    let (config, verifier) = client_config(*pin, alpn)?;
    let connecting = endpoint
        .connect_with(config, addr, SERVER_NAME)
        .map_err(|source| ConnectError::Connect { addr, source })?;
    match connecting.await {
        Ok(c) => Ok(c),
        Err(e) => Err(match verifier.mismatch() {
            Some(presented) => ConnectError::FingerprintMismatch {
                addr,
                expected: *pin,
                presented,
            },
            None => map_connection_error(addr, e),
        }),
    }
}

fn map_connection_error(addr: SocketAddr, e: ConnectionError) -> ConnectError {
    match e {
        ConnectionError::ConnectionClosed(c)
            if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            ConnectError::Busy { addr }
        }
        ConnectionError::ApplicationClosed(c) => ConnectError::Rejected {
            addr,
            code: CloseCode::from_code(c.error_code.into_inner()),
        },
        ConnectionError::TimedOut => ConnectError::Timeout { addr },
        source => ConnectError::Connection { addr, source },
    }
}

fn keying_material(conn: &Connection) -> Option<[u8; 32]> {
    let mut km = [0u8; 32];
    conn.export_keying_material(&mut km, AUTH_EXPORTER_LABEL, b"")
        .ok()?;
    Some(km)
}

/// Connects to the coordinator at `addr`, accepting only the certificate `pin`, proves
/// `secret`, and returns the authenticated connection with its control stream.
pub async fn connect(
    endpoint: &Endpoint,
    addr: SocketAddr,
    pin: &Fingerprint,
    secret: &Secret,
    role: Role,
) -> Result<AuthedConnection, ConnectError> {
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        connect_inner(endpoint, addr, pin, secret, role),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout { addr }),
    }
}

async fn connect_inner(
    endpoint: &Endpoint,
    addr: SocketAddr,
    pin: &Fingerprint,
    secret: &Secret,
    role: Role,
) -> Result<AuthedConnection, ConnectError> {
    let conn = connect_tls(endpoint, addr, pin, ALPN).await?;
    let result = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(FrameError::from_conn)?;
        let km = keying_material(&conn).ok_or(FrameError::Io(io::Error::other(
            "TLS session exports no keying material",
        )))?;
        let mut out = encode_frame(&Hello::new(role))?;
        out.extend(encode_frame(&AuthProof {
            mac: auth_proof(secret, &km),
        })?);
        send.write_all(&out).await.map_err(io::Error::from)?;
        let peer: Option<Hello> = recv_frame(&mut recv).await?;
        Ok::<_, FrameError>((send, recv, peer))
    }
    .await;
    let fail = |source| match conn.close_reason() {
        // The server closing on us explains the failure better than the stream error.
        Some(e) => map_connection_error(addr, e),
        None => {
            conn.close(VarInt::from_u32(CloseCode::ProtocolViolation.code()), b"");
            ConnectError::Frame { addr, source }
        }
    };
    let (send, recv, peer) = result.map_err(fail)?;
    let Some(peer) = peer else {
        return Err(fail(FrameError::Truncated));
    };
    if peer.role != Role::Coordinator {
        conn.close(VarInt::from_u32(CloseCode::ProtocolViolation.code()), b"");
        return Err(ConnectError::NotACoordinator {
            addr,
            role: peer.role,
        });
    }
    if peer.protocol_version != PROTOCOL_VERSION {
        conn.close(VarInt::from_u32(CloseCode::VersionMismatch.code()), b"");
        return Err(ConnectError::VersionMismatch {
            addr,
            theirs: peer.protocol_version,
        });
    }
    Ok(AuthedConnection {
        connection: conn,
        send,
        recv,
        peer,
    })
}

/// Connects to the coordinator of `dir` as `role`, with the address, pin and protocol version
/// from its `coordinator.json` and the secret from its file.
pub async fn connect_cluster(
    dir: &ClusterDir,
    role: Role,
) -> Result<AuthedConnection, ConnectError> {
    let info = dir.read_coordinator()?;
    let addr = info.socket_addr();
    if info.protocol_version != PROTOCOL_VERSION {
        return Err(ConnectError::VersionMismatch {
            addr,
            theirs: info.protocol_version,
        });
    }
    let pin = info.fingerprint().map_err(ClusterDirError::from)?;
    let secret = dir.load_secret()?;
    let endpoint = client_endpoint(addr)?;
    // The connection keeps the endpoint's driver alive after this handle is dropped.
    connect(&endpoint, addr, &pin, &secret, role).await
}

impl FrameError {
    fn from_conn(e: ConnectionError) -> Self {
        FrameError::Io(io::Error::new(io::ErrorKind::NotConnected, e))
    }
}

mod admission;
mod server;

pub use server::{
    HANDSHAKE_DEADLINE, MAX_PENDING, MAX_PENDING_PER_ADDRESS, Server, ServerOptions, TLS_DEADLINE,
};

#[cfg(test)]
mod tests;
