//! Strangers against the real coordinator process: a wrong secret, no proof at all, a wrong
//! ALPN, garbage frames. Each is rejected without a byte of application data, and the
//! coordinator keeps serving the real client. And a cluster directory others can read is
//! refused with the fix in the message.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use corral_core::cluster_dir::ClusterDir;
use corral_core::protocol::{CloseCode, Hello, Role};
use corral_core::security::{PinnedServerVerifier, Secret, crypto_provider};
use corral_core::transport::{self, ConnectError, encode_frame};
use corral_tests::cluster::Env;

/// A TLS-only QUIC connection to the coordinator, pinned like a real client, with `alpn`.
async fn raw_connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    pin: corral_core::security::Fingerprint,
    alpn: &[u8],
) -> Result<quinn::Connection, String> {
    let provider = crypto_provider();
    let verifier = Arc::new(PinnedServerVerifier::new(pin, provider.clone()));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let config = quinn::ClientConfig::new(Arc::new(quic));
    let connecting = endpoint
        .connect_with(config, addr, corral_core::security::SERVER_NAME)
        .map_err(|e| e.to_string())?;
    connecting.await.map_err(|e| e.to_string())
}

/// Reads whatever the coordinator sends on `recv` until the connection ends: must be nothing.
async fn received(recv: &mut quinn::RecvStream) -> usize {
    let mut n = 0;
    let mut buf = [0u8; 1024];
    while let Ok(Some(k)) = recv.read(&mut buf).await {
        n += k;
    }
    n
}

fn close_code(conn: &quinn::Connection) -> Option<CloseCode> {
    match conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(a)) => {
            Some(CloseCode::from_code(a.error_code.into_inner()))
        }
        _ => None,
    }
}

#[test]
fn strangers_are_rejected_and_the_real_client_is_served() {
    let env = Env::new("sec");
    let data = env.gen_taxi("d", 1, 5_000, 0.0);
    env.up("s", 1, 1, &[]);
    let dir = ClusterDir::open_path(&env.cluster_dir("s")).expect("cluster dir");
    let info = dir.read_coordinator().expect("coordinator.json");
    let addr = info.socket_addr();
    let pin = info.fingerprint().expect("pin");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let endpoint = transport::client_endpoint(addr).expect("endpoint");

        // A wrong secret: refused with AuthFailed, no hello back.
        let wrong = Secret::generate().expect("random");
        match transport::connect(&endpoint, addr, &pin, &wrong, Role::Client).await {
            Err(ConnectError::Rejected { code, .. }) => assert_eq!(code, CloseCode::AuthFailed),
            other => panic!("a wrong secret must be rejected, got {other:?}"),
        }

        // A wrong ALPN: the TLS handshake itself fails.
        let r = raw_connect(&endpoint, addr, pin, b"corral/0").await;
        assert!(r.is_err(), "a wrong ALPN must not connect");

        // Garbage instead of a hello: a protocol violation, nothing sent back.
        let conn = raw_connect(&endpoint, addr, pin, b"corral/1")
            .await
            .expect("tls");
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        let _ = send.write_all(&garbage).await;
        assert_eq!(received(&mut recv).await, 0, "garbage got an answer");
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
        assert_eq!(close_code(&conn), Some(CloseCode::ProtocolViolation));

        // A hello and no proof of the secret: cut at the handshake deadline, nothing sent.
        let conn = raw_connect(&endpoint, addr, pin, b"corral/1")
            .await
            .expect("tls");
        let (mut send, mut recv) = conn.open_bi().await.expect("stream");
        let hello = encode_frame(&Hello::new(Role::Client)).expect("hello");
        send.write_all(&hello).await.expect("send hello");
        assert_eq!(received(&mut recv).await, 0, "no proof, yet an answer");
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
        assert_eq!(close_code(&conn), Some(CloseCode::HandshakeTimeout));

        // No secret file at all: the client refuses before sending anything.
        let t = tempfile::tempdir().expect("tmp");
        let copy = ClusterDir::create_in(t.path(), "copy").expect("dir");
        dir.write_coordinator(&info).expect("keep");
        copy.write_coordinator(&info)
            .expect("coordinator.json copy");
        let err = corral_core::client::ClusterClient::connect(&copy)
            .await
            .err()
            .expect("no secret, no connection");
        assert!(err.to_string().contains("secret"), "{err}");
    });

    // The real client is still served, queries included.
    let st = env.status("s");
    assert_eq!(st["state"], "running", "{st}");
    let glob = data.join("*.csv").to_string_lossy().into_owned();
    let q = env.ok(&["query", "s", "--by", "payment_type", &glob]);
    assert!(q.stdout.contains("payment_type"), "{q}");
}

#[test]
fn a_cluster_directory_others_can_read_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("perm");
    let t = tempfile::tempdir().expect("tmp");
    let dir = ClusterDir::create_in(t.path(), "open").expect("dir");
    dir.create_secret().expect("secret");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.path().to_string_lossy().into_owned();
    let out = env.run_cmd(&mut env.agent(&["coordinator", "--cluster", &path]));
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains("chmod 700") && out.stderr.contains(&path),
        "the message must say how to fix it: {out}"
    );
    assert!(!dir.coordinator_file().exists());
    let out = env.run_cmd(&mut env.agent(&["worker", "--cluster", &path]));
    assert!(!out.success() && out.stderr.contains("chmod 700"), "{out}");
}
