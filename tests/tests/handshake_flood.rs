//! A stranger floods the real coordinator with silent connections that complete TLS and then
//! say nothing, from one address, while a worker joins from another: the worker gets in while
//! the flood goes on, the flood is held to its address's share, and the coordinator's log does
//! not grow by a line per stranger.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use corral_core::cluster_dir::ClusterDir;
use corral_core::security::{PinnedServerVerifier, crypto_provider};
use corral_tests::cluster::{Env, wait_for};

/// A TLS-only QUIC connection from `endpoint`, pinned like a real client, that never sends a
/// byte of corral's handshake.
async fn silent_connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    pin: corral_core::security::Fingerprint,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let provider = crypto_provider();
    let verifier = Arc::new(PinnedServerVerifier::new(pin, provider.clone()));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![corral_core::protocol::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic config");
    let config = quinn::ClientConfig::new(Arc::new(quic));
    endpoint
        .connect_with(config, addr, corral_core::security::SERVER_NAME)
        .expect("connect")
        .await
}

#[derive(Default)]
struct FloodCounts {
    held: AtomicU64,
    refused: AtomicU64,
}

#[test]
fn a_worker_joins_while_one_address_floods_the_coordinator() {
    let env = Env::new("flood");
    env.up("f", 1, 1, &[]);
    let dir = ClusterDir::open_path(&env.cluster_dir("f")).expect("cluster dir");
    let info = dir.read_coordinator().expect("coordinator.json");
    let (addr, pin) = (info.socket_addr(), info.fingerprint().expect("pin"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(FloodCounts::default());
    // 300 connections kept in flight from 127.0.0.2 (every 127/8 address is this host): each
    // completes TLS and stays silent until the coordinator drops it, then comes back.
    let flood = {
        let (stop, counts) = (stop.clone(), counts.clone());
        rt.spawn(async move {
            let endpoint =
                quinn::Endpoint::client("127.0.0.2:0".parse().expect("addr")).expect("endpoint");
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..300 {
                let (endpoint, stop, counts) = (endpoint.clone(), stop.clone(), counts.clone());
                set.spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match silent_connect(&endpoint, addr, pin).await {
                            Ok(c) => {
                                counts.held.fetch_add(1, Ordering::Relaxed);
                                let _ =
                                    tokio::time::timeout(Duration::from_secs(30), c.closed()).await;
                            }
                            Err(_) => {
                                counts.refused.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                });
            }
            while set.join_next().await.is_some() {}
        })
    };
    // The flood is on: its address's share is full and it is being refused.
    assert!(
        wait_for(Duration::from_secs(60), || counts
            .held
            .load(Ordering::Relaxed)
            >= 64
            && counts.refused.load(Ordering::Relaxed) > 0),
        "the flood never filled its share: {} held, {} refused",
        counts.held.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed)
    );
    // A second worker process joins from 127.0.0.1 while the flood goes on.
    let t0 = std::time::Instant::now();
    env.ok(&["scale", "f", "--workers", "2"]);
    let joined = wait_for(Duration::from_secs(60), || {
        env.status("f")["snapshot"]["workers"]
            .as_array()
            .is_some_and(|w| w.iter().filter(|w| w["state"] == "Alive").count() == 2)
    });
    let flooding = !flood.is_finished();
    // Figures for the record (not asserted: timing is for benchmarks).
    eprintln!(
        "flood: worker joined {:.2} s after `scale` started; {} silent connections held, {} refused",
        t0.elapsed().as_secs_f64(),
        counts.held.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed)
    );
    stop.store(true, Ordering::Relaxed);
    assert!(joined, "the worker did not get in: {}", env.status("f"));
    assert!(flooding, "the flood stopped before the worker joined");
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(40), flood).await;
    });
    // Queries still run, and strangers are not a log line each.
    let st = env.status("f");
    assert_eq!(st["state"], "running", "{st}");
    let log = std::fs::read_to_string(env.cluster_dir("f").join("logs/coordinator.log"))
        .expect("coordinator log");
    let lines = log.lines().filter(|l| l.contains("127.0.0.2")).count();
    let strangers = counts.held.load(Ordering::Relaxed) + counts.refused.load(Ordering::Relaxed);
    assert!(
        lines <= 2,
        "{lines} log lines about 127.0.0.2 for {strangers} strangers:\n{log}"
    );
}
