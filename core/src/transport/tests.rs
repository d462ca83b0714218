//! Real QUIC on loopback: the handshake against good and misbehaving clients, the pending
//! cap and deadline, the exporter binding; and property tests of the frame codec.

use super::*;
use crate::protocol::MAX_HANDSHAKE_FRAME_LEN;
use proptest::prelude::*;
use serde::Deserialize;
use tokio::task::JoinHandle;

/// A safety net so a broken test fails instead of hanging; never a speed assertion.
const NET: Duration = Duration::from_secs(30);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(NET, f)
        .await
        .expect("test step hung for 30 s")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Msg {
    n: u64,
    text: String,
    data: Vec<u8>,
}

const KEY: [u8; 32] = [42; 32];

struct TestServer {
    addr: SocketAddr,
    pin: Fingerprint,
    _task: JoinHandle<()>,
}

/// A server that echoes every frame on the control stream and on any stream opened later,
/// and first sends the peer's role and node back so the client can see what the server saw.
fn start(options: ServerOptions) -> TestServer {
    let id = ServerIdentity::generate().expect("cert");
    let mut server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &id,
        Arc::new(Secret::from_bytes(KEY)),
        options,
    )
    .expect("bind");
    let addr = server.local_addr().expect("local addr");
    let pin = *server.fingerprint();
    let task = tokio::spawn(async move {
        while let Some(mut c) = server.accept().await {
            tokio::spawn(async move {
                let role = format!("{:?}", c.peer.role);
                if c.send(&role).await.is_err() {
                    return;
                }
                let conn = c.connection.clone();
                tokio::spawn(async move {
                    while let Ok((mut s, mut r)) = conn.accept_bi().await {
                        while let Ok(Some(m)) = recv_frame::<_, Msg>(&mut r).await {
                            if send_frame(&mut s, &m).await.is_err() {
                                break;
                            }
                        }
                    }
                });
                while let Ok(Some(m)) = c.recv::<Msg>().await {
                    if c.send(&m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    TestServer {
        addr,
        pin,
        _task: task,
    }
}

/// Short enough that the deadline tests finish fast, long enough that a loaded machine
/// (others compile on it) still completes an honest handshake in time.
fn quick() -> ServerOptions {
    ServerOptions {
        handshake_deadline: Duration::from_secs(2),
        ..ServerOptions::default()
    }
}

async fn good_client(s: &TestServer) -> AuthedConnection {
    let ep = client_endpoint(s.addr).expect("endpoint");
    let mut attempts = 0;
    let mut c = loop {
        match within(connect(
            &ep,
            s.addr,
            &s.pin,
            &Secret::from_bytes(KEY),
            Role::Worker,
        ))
        .await
        {
            Ok(c) => break c,
            // Only the deadline test's very short deadline can do this, on a busy machine;
            // a real worker retries the same way.
            Err(ConnectError::Rejected {
                code: CloseCode::HandshakeTimeout,
                ..
            }) if attempts < 10 => attempts += 1,
            Err(e) => panic!("a real client connects: {e}"),
        }
    };
    assert_eq!(c.peer.role, Role::Coordinator);
    assert_eq!(c.peer.protocol_version, PROTOCOL_VERSION);
    let seen: String = within(c.recv()).await.expect("frame").expect("role");
    assert_eq!(seen, "Worker");
    c
}

/// The server still serves a real client: control stream and a second stream both echo.
async fn assert_serves(s: &TestServer) {
    let mut c = good_client(s).await;
    let m = Msg {
        n: 7,
        text: "payment_type".into(),
        data: vec![1, 2, 3],
    };
    within(c.send(&m)).await.expect("send");
    let back: Msg = within(c.recv()).await.expect("recv").expect("echo");
    assert_eq!(back, m);
    // Streams beyond the control stream are allowed once authenticated.
    let (mut s2, mut r2) = within(c.connection.open_bi()).await.expect("open_bi");
    let big = Msg {
        n: 1,
        text: String::new(),
        data: vec![9; 300_000],
    };
    within(send_frame(&mut s2, &big)).await.expect("send big");
    let back: Msg = within(recv_frame(&mut r2))
        .await
        .expect("recv")
        .expect("echo");
    assert_eq!(back, big);
    c.close(CloseCode::Done, "");
}

/// What a misbehaving client does after TLS.
enum Act {
    /// Hello then a proof made with this key (over this connection's exporter).
    Prove([u8; 32]),
    /// Hello then this exact proof.
    Proof([u8; 32]),
    /// Hello with this protocol version, then the right proof.
    Version(u32),
    /// Hello and never a proof.
    HelloOnly,
    /// These raw bytes on the control stream.
    Raw(Vec<u8>),
    /// Open nothing, send nothing.
    Silent,
}

/// Runs `act` on a fresh TLS connection and returns the server's close code; asserts the
/// client never received a stream frame or datagram (no application data).
async fn misbehave(s: &TestServer, act: Act) -> CloseCode {
    let ep = client_endpoint(s.addr).expect("endpoint");
    let conn = within(connect_tls(&ep, s.addr, &s.pin, ALPN))
        .await
        .expect("TLS itself succeeds");
    run_act(&conn, act).await;
    let err = within(conn.closed()).await;
    let stats = conn.stats();
    assert_eq!(stats.frame_rx.stream, 0, "server sent stream data");
    assert_eq!(stats.frame_rx.datagram, 0, "server sent a datagram");
    match err {
        ConnectionError::ApplicationClosed(c) => CloseCode::from_code(c.error_code.into_inner()),
        other => panic!("expected an application close, got {other}"),
    }
}

async fn run_act(conn: &Connection, act: Act) {
    let hello = |v: u32| {
        let mut h = Hello::new(Role::Client);
        h.protocol_version = v;
        encode_frame(&h).expect("encode")
    };
    let bytes = match act {
        Act::Silent => return,
        Act::Raw(b) => b,
        Act::HelloOnly => hello(PROTOCOL_VERSION),
        Act::Prove(key) => {
            let km = keying_material(conn).expect("km");
            let mac = auth_proof(&Secret::from_bytes(key), &km);
            let mut b = hello(PROTOCOL_VERSION);
            b.extend(encode_frame(&AuthProof { mac }).expect("encode"));
            b
        }
        Act::Proof(mac) => {
            let mut b = hello(PROTOCOL_VERSION);
            b.extend(encode_frame(&AuthProof { mac }).expect("encode"));
            b
        }
        Act::Version(v) => {
            let km = keying_material(conn).expect("km");
            let mac = auth_proof(&Secret::from_bytes(KEY), &km);
            let mut b = hello(v);
            b.extend(encode_frame(&AuthProof { mac }).expect("encode"));
            b
        }
    };
    // The server may close before or while we write; that is the point.
    if let Ok((mut send, _recv)) = conn.open_bi().await {
        let _ = send.write_all(&bytes).await;
        // Keep the streams open until the server decides.
        let _ = conn.closed().await;
    }
}

#[tokio::test]
async fn real_client_authenticates_and_exchanges_frames() {
    let s = start(ServerOptions::default());
    assert_serves(&s).await;
    // A client too.
    let ep = client_endpoint(s.addr).expect("endpoint");
    let mut c = within(connect(
        &ep,
        s.addr,
        &s.pin,
        &Secret::from_bytes(KEY),
        Role::Client,
    ))
    .await
    .expect("client connects");
    let seen: String = within(c.recv()).await.expect("recv").expect("role");
    assert_eq!(seen, "Client");
}

#[tokio::test]
async fn wrong_secret_is_rejected_without_data() {
    let s = start(quick());
    assert_eq!(
        misbehave(&s, Act::Prove([1; 32])).await,
        CloseCode::AuthFailed
    );
    // Through the public API, the error says so.
    let ep = client_endpoint(s.addr).expect("endpoint");
    let err = within(connect(
        &ep,
        s.addr,
        &s.pin,
        &Secret::from_bytes([1; 32]),
        Role::Worker,
    ))
    .await
    .expect_err("wrong secret");
    assert!(
        matches!(
            err,
            ConnectError::Rejected {
                code: CloseCode::AuthFailed,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("wrong cluster secret"), "{err}");
    assert_serves(&s).await;
}

#[tokio::test]
async fn no_proof_runs_into_the_deadline() {
    let s = start(ServerOptions {
        handshake_deadline: Duration::from_millis(250),
        ..ServerOptions::default()
    });
    assert_eq!(
        misbehave(&s, Act::HelloOnly).await,
        CloseCode::HandshakeTimeout
    );
    assert_eq!(
        misbehave(&s, Act::Silent).await,
        CloseCode::HandshakeTimeout
    );
    assert_serves(&s).await;
}

#[tokio::test]
async fn wrong_alpn_fails_the_tls_handshake() {
    let s = start(quick());
    let ep = client_endpoint(s.addr).expect("endpoint");
    let err = within(connect_tls(&ep, s.addr, &s.pin, b"corral/0"))
        .await
        .expect_err("wrong ALPN");
    // The server's TLS stack aborts (no_application_protocol); no connection, so no data.
    assert!(
        matches!(
            err,
            ConnectError::Connection {
                source: ConnectionError::ConnectionClosed(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_serves(&s).await;
}

#[tokio::test]
async fn wrong_pin_is_refused_by_the_client() {
    let s = start(quick());
    let ep = client_endpoint(s.addr).expect("endpoint");
    let wrong = Fingerprint::of_der(b"not the certificate");
    let err = within(connect(
        &ep,
        s.addr,
        &wrong,
        &Secret::from_bytes(KEY),
        Role::Worker,
    ))
    .await
    .expect_err("wrong pin");
    match &err {
        ConnectError::FingerprintMismatch {
            expected,
            presented,
            ..
        } => {
            assert_eq!(*expected, wrong);
            assert_eq!(*presented, s.pin);
        }
        other => panic!("expected a fingerprint mismatch, got {other}"),
    }
    assert!(err.to_string().contains("stale"), "{err}");
    assert_serves(&s).await;
}

#[tokio::test]
async fn garbage_and_oversize_frames_are_protocol_violations() {
    let s = start(quick());
    // An oversize length prefix is refused as soon as it is read.
    let oversize = (MAX_HANDSHAKE_FRAME_LEN as u32 + 1).to_be_bytes().to_vec();
    assert_eq!(
        misbehave(&s, Act::Raw(oversize)).await,
        CloseCode::ProtocolViolation
    );
    let huge = vec![0xff; 4];
    assert_eq!(
        misbehave(&s, Act::Raw(huge)).await,
        CloseCode::ProtocolViolation
    );
    // A hello whose version is an overlong varint.
    let junk = [0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff].to_vec();
    assert_eq!(
        misbehave(&s, Act::Raw(junk)).await,
        CloseCode::ProtocolViolation
    );
    // A plausible hello, then a proof frame of the wrong size.
    let mut short_proof = encode_frame(&Hello::new(Role::Worker)).expect("encode");
    short_proof.extend([0, 0, 0, 31]);
    short_proof.extend([0u8; 31]);
    assert_eq!(
        misbehave(&s, Act::Raw(short_proof)).await,
        CloseCode::ProtocolViolation
    );
    // A hello with the right version but a garbage body (and a valid proof) fails after
    // authentication, still without data.
    let ep = client_endpoint(s.addr).expect("endpoint");
    let conn = within(connect_tls(&ep, s.addr, &s.pin, ALPN))
        .await
        .expect("tls");
    let km = keying_material(&conn).expect("km");
    // (The version is a one-byte varint while it is below 128.)
    let mut bad_body = vec![0, 0, 0, 3, PROTOCOL_VERSION as u8, 9, 0xff];
    bad_body.extend(
        encode_frame(&AuthProof {
            mac: auth_proof(&Secret::from_bytes(KEY), &km),
        })
        .expect("encode"),
    );
    run_act(&conn, Act::Raw(bad_body)).await;
    assert_eq!(conn.stats().frame_rx.stream, 0);
    assert!(matches!(
        conn.close_reason(),
        Some(ConnectionError::ApplicationClosed(c))
            if CloseCode::from_code(c.error_code.into_inner()) == CloseCode::ProtocolViolation
    ));
    // Bytes that end mid-frame.
    let ep2 = client_endpoint(s.addr).expect("endpoint");
    let conn = within(connect_tls(&ep2, s.addr, &s.pin, ALPN))
        .await
        .expect("tls");
    let (mut send, _recv) = within(conn.open_bi()).await.expect("open");
    send.write_all(&[0, 0, 0, 10, 1, 2]).await.expect("write");
    send.finish().expect("finish");
    let err = within(conn.closed()).await;
    assert!(
        matches!(&err, ConnectionError::ApplicationClosed(c)
            if CloseCode::from_code(c.error_code.into_inner()) == CloseCode::ProtocolViolation),
        "{err}"
    );
    assert_eq!(conn.stats().frame_rx.stream, 0);
    assert_serves(&s).await;
}

#[tokio::test]
async fn other_protocol_version_is_told_so() {
    let s = start(quick());
    assert_eq!(
        misbehave(&s, Act::Version(PROTOCOL_VERSION + 1)).await,
        CloseCode::VersionMismatch
    );
    assert_serves(&s).await;
}

#[tokio::test]
async fn a_proof_is_bound_to_its_connection() {
    let s = start(quick());
    let ep = client_endpoint(s.addr).expect("endpoint");
    let a = within(connect_tls(&ep, s.addr, &s.pin, ALPN))
        .await
        .expect("tls a");
    let b = within(connect_tls(&ep, s.addr, &s.pin, ALPN))
        .await
        .expect("tls b");
    let km_a = keying_material(&a).expect("km a");
    let km_b = keying_material(&b).expect("km b");
    assert_ne!(km_a, km_b);
    let proof_a = auth_proof(&Secret::from_bytes(KEY), &km_a);
    // Relayed onto b: rejected, no data.
    run_act(&b, Act::Proof(proof_a)).await;
    assert_eq!(b.stats().frame_rx.stream, 0);
    assert!(matches!(
        b.close_reason(),
        Some(ConnectionError::ApplicationClosed(c))
            if CloseCode::from_code(c.error_code.into_inner()) == CloseCode::AuthFailed
    ));
    // On its own connection the same proof is accepted: the server greets.
    let (mut send, mut recv) = within(a.open_bi()).await.expect("open");
    let mut out = encode_frame(&Hello::new(Role::Worker)).expect("encode");
    out.extend(encode_frame(&AuthProof { mac: proof_a }).expect("encode"));
    send.write_all(&out).await.expect("write");
    let hello: Hello = within(recv_frame(&mut recv))
        .await
        .expect("recv")
        .expect("greeting");
    assert_eq!(hello.role, Role::Coordinator);
}

#[tokio::test]
async fn pending_connections_are_capped() {
    let s = start(ServerOptions {
        // Long enough that the stalled connections stay pending during the test; the test
        // ends them itself and never waits for this.
        handshake_deadline: Duration::from_secs(60),
        tls_deadline: Duration::from_secs(60),
        max_pending: 2,
        ..ServerOptions::default()
    });
    let ep = client_endpoint(s.addr).expect("endpoint");
    let stalled_1 = within(connect_tls(&ep, s.addr, &s.pin, ALPN))
        .await
        .expect("tls 1");
    let stalled_2 = within(connect_tls(&ep, s.addr, &s.pin, ALPN))
        .await
        .expect("tls 2");
    // Both hold a slot (the server took it before answering their TLS), so a third is
    // refused at once, before TLS.
    let err = within(connect(
        &ep,
        s.addr,
        &s.pin,
        &Secret::from_bytes(KEY),
        Role::Worker,
    ))
    .await
    .expect_err("over the cap");
    assert!(matches!(err, ConnectError::Busy { .. }), "{err}");
    assert!(err.is_transient());
    // Freeing the slots lets a real client in (after the server notices the closes).
    stalled_1.close(0u32.into(), b"");
    stalled_2.close(0u32.into(), b"");
    let mut attempts = 0;
    let mut c = loop {
        match within(connect(
            &ep,
            s.addr,
            &s.pin,
            &Secret::from_bytes(KEY),
            Role::Worker,
        ))
        .await
        {
            Ok(c) => break c,
            Err(ConnectError::Busy { .. }) if attempts < 200 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(e) => panic!("real client after the cap cleared: {e}"),
        }
    };
    let seen: String = within(c.recv()).await.expect("recv").expect("role");
    assert_eq!(seen, "Worker");
    // Authenticated connections do not count against the cap.
    let _c2 = within(connect(
        &ep,
        s.addr,
        &s.pin,
        &Secret::from_bytes(KEY),
        Role::Worker,
    ))
    .await
    .expect("second");
    let _c3 = within(connect(
        &ep,
        s.addr,
        &s.pin,
        &Secret::from_bytes(KEY),
        Role::Worker,
    ))
    .await
    .expect("third");
}

#[tokio::test]
async fn a_flood_from_one_address_does_not_keep_other_addresses_out() {
    let s = start(ServerOptions {
        // The flood's connections stay pending for the whole test; it ends them itself.
        handshake_deadline: Duration::from_secs(60),
        tls_deadline: Duration::from_secs(60),
        max_pending: 8,
        max_pending_per_address: 3,
        ..ServerOptions::default()
    });
    // The flood comes from 127.0.0.2 (every 127/8 address is this host), the worker from
    // 127.0.0.1. Both prove their address first (Retry is on).
    let flood_ep = Endpoint::client("127.0.0.2:0".parse().expect("addr")).expect("endpoint");
    let mut silent = Vec::new();
    for i in 0..3 {
        let c = within(connect_tls(&flood_ep, s.addr, &s.pin, ALPN))
            .await
            .unwrap_or_else(|e| panic!("silent connection {i}: {e}"));
        silent.push(c);
    }
    let err = within(connect(
        &flood_ep,
        s.addr,
        &s.pin,
        &Secret::from_bytes(KEY),
        Role::Worker,
    ))
    .await
    .expect_err("over its address's share");
    assert!(matches!(err, ConnectError::Busy { .. }), "{err}");
    // A worker from another address gets in at once, while the flood still holds its places.
    let ep = client_endpoint(s.addr).expect("endpoint");
    let mut c = within(connect(
        &ep,
        s.addr,
        &s.pin,
        &Secret::from_bytes(KEY),
        Role::Worker,
    ))
    .await
    .expect("a worker from another address is not refused");
    let seen: String = within(c.recv()).await.expect("recv").expect("role");
    assert_eq!(seen, "Worker");
    assert!(
        silent.iter().all(|c| c.close_reason().is_none()),
        "the flood's connections were still pending"
    );
}

#[tokio::test]
async fn connect_cluster_uses_the_directory() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = ClusterDir::create_in(t.path(), "c").expect("dir");
    let secret = Arc::new(dir.create_secret().expect("secret"));
    let id = ServerIdentity::generate().expect("cert");
    let mut server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &id,
        secret,
        ServerOptions::default(),
    )
    .expect("bind");
    let addr = server.local_addr().expect("addr");
    dir.write_coordinator(&crate::cluster_dir::CoordinatorInfo::for_this_process(
        addr,
        id.fingerprint(),
    ))
    .expect("write");
    let accept = tokio::spawn(async move {
        let c = server.accept().await.expect("authed");
        (c.peer.role, server)
    });
    let c = within(connect_cluster(&dir, Role::Client))
        .await
        .expect("connect");
    assert_eq!(c.peer.role, Role::Coordinator);
    let (role, server) = within(accept).await.expect("join");
    assert_eq!(role, Role::Client);
    server.close();
    // A coordinator.json of another protocol version is caught before connecting.
    let mut info = dir.read_coordinator().expect("read");
    info.protocol_version += 1;
    dir.write_coordinator(&info).expect("write");
    let err = within(connect_cluster(&dir, Role::Client))
        .await
        .expect_err("version");
    assert!(matches!(err, ConnectError::VersionMismatch { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Frame codec

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn decode_all<T: DeserializeOwned>(bytes: &[u8]) -> Vec<Result<T, String>> {
    rt().block_on(async {
        let mut r = bytes;
        let mut out = Vec::new();
        loop {
            match recv_frame::<_, T>(&mut r).await {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    })
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        any::<u64>(),
        ".{0,40}",
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(n, text, data)| Msg { n, text, data })
}

proptest! {
    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_all::<Msg>(&bytes);
        let _ = decode_all::<Hello>(&bytes);
        let _ = decode_all::<AuthProof>(&bytes);
        let _ = decode_all::<Vec<String>>(&bytes);
    }

    #[test]
    fn framed_random_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Well-framed garbage reaches the postcard decoder rather than the length check.
        let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
        bytes.extend(&payload);
        let _ = decode_all::<Msg>(&bytes);
        let _ = decode_all::<Hello>(&bytes);
        let _ = decode_all::<Option<Vec<(u8, String)>>>(&bytes);
    }

    #[test]
    fn frames_round_trip(msgs in proptest::collection::vec(msg(), 0..8)) {
        let mut bytes = Vec::new();
        rt().block_on(async {
            for m in &msgs {
                send_frame(&mut bytes, m).await.expect("send");
            }
        });
        let back: Vec<Msg> = decode_all::<Msg>(&bytes)
            .into_iter()
            .map(|r| r.expect("decode"))
            .collect();
        prop_assert_eq!(back, msgs);
    }

    #[test]
    fn a_cut_frame_is_truncated_not_a_panic(m in msg(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_frame(&m).expect("encode");
        let at = cut.index(bytes.len());
        let got = decode_all::<Msg>(&bytes[..at]);
        if at == 0 {
            prop_assert!(got.is_empty());
        } else {
            prop_assert_eq!(got.len(), 1);
            prop_assert!(got[0].is_err());
        }
    }
}

#[test]
fn oversize_prefix_is_refused_before_reading() {
    let bytes = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
    let err = rt()
        .block_on(recv_frame::<_, Msg>(&mut &bytes[..]))
        .expect_err("oversize");
    assert!(matches!(err, FrameError::Oversize { .. }), "{err}");
    // Sending refuses to make one, too.
    let big = vec![0u8; MAX_FRAME_LEN + 1];
    assert!(matches!(
        encode_frame(&big),
        Err(FrameError::Oversize { .. })
    ));
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = postcard::to_stdvec(&5u32).expect("encode");
    bytes.push(0);
    assert!(matches!(
        decode_payload::<u32>(&bytes),
        Err(FrameError::TrailingBytes(1))
    ));
}
