//! The dashboard tunnel over real QUIC on loopback: an in-process coordinator, a client, the
//! proxy, and plain TCP servers standing in for the dashboard.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::proxy::{Proxy, ProxyEvent};
use crate::client::{ClientError, ClusterClient};
use crate::cluster_dir::ClusterDir;
use crate::coordinator::{Control, Coordinator, CoordinatorOptions};
use crate::protocol::MAX_DASHBOARD_STREAMS;
use crate::tasks::AbortOnDrop;

const LONG: Duration = Duration::from_secs(30);

struct Cluster {
    _tmp: tempfile::TempDir,
    ctl: mpsc::Sender<Control>,
    client: Arc<ClusterClient>,
    server: tokio::task::JoinHandle<Result<(), crate::coordinator::CoordinatorError>>,
}

async fn cluster(dashboard: Option<SocketAddr>) -> Cluster {
    let t = tempfile::tempdir().expect("tmp");
    let dir = ClusterDir::create_in(t.path(), "dash").expect("cluster dir");
    dir.create_secret().expect("secret");
    let mut opts = CoordinatorOptions::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
    opts.dashboard = dashboard;
    let coordinator = Coordinator::bind(dir.clone(), opts).expect("bind");
    let (ctl, ctl_rx) = mpsc::channel(4);
    let server = tokio::spawn(coordinator.run(ctl_rx));
    let client = Arc::new(ClusterClient::connect(&dir).await.expect("client"));
    Cluster {
        _tmp: t,
        ctl,
        client,
        server,
    }
}

/// Echoes every connection's bytes back, and ends its side once the peer ended its own.
/// Reports each connection's end on `ended`.
async fn echo_server() -> (SocketAddr, AbortOnDrop<()>, mpsc::Receiver<u64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel(256);
    let task = AbortOnDrop::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            conns.spawn(async move {
                let (mut r, mut w) = s.split();
                let n = tokio::io::copy(&mut r, &mut w).await.unwrap_or(0);
                let _ = w.shutdown().await;
                let _ = tx.send(n).await;
            });
        }
    });
    (addr, task, rx)
}

/// Answers every request with `200` and a body naming its path, then closes.
async fn http_server() -> (SocketAddr, AbortOnDrop<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = AbortOnDrop::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut s, _)) = l.accept().await {
            conns.spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while super::gate::head_end(&buf).is_none() {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = super::gate::parse_head(&buf).expect("http");
                let body = match head.target.as_str() {
                    "/json/identity.json" => r#"{"workers": {"tls://10.0.0.2:4000": {"host": "10.0.0.2", "nthreads": 4, "memory_limit": 8000000000, "status": "running", "metrics": {"memory": 1000000, "task_counts": {"executing": 4, "memory": 7}}}}}"#.to_owned(),
                    "/json/counts.json" => r#"{"processing": 4, "memory": 7, "erred": 0}"#.to_owned(),
                    "/metrics" => "dask_scheduler_prefix_state_totals_total{state=\"memory\",task_prefix_name=\"read-csv\"} 7.0\n".to_owned(),
                    other => format!("dashboard page {other}"),
                };
                let r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(r.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

/// `GET target` on `addr` with an optional cookie; the whole response as text.
async fn get(addr: SocketAddr, target: &str, cookie: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    tokio::time::timeout(LONG, s.read_to_end(&mut out))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_a_dashboard_says_so_and_only_loopback_is_registered() {
    let c = cluster(None).await;
    assert!(!c.client.snapshot().await.expect("snapshot").dashboard);
    let Err(ClientError::Refused(why)) = c.client.open_dashboard().await else {
        panic!("a stream to no dashboard was opened");
    };
    assert!(
        why.contains("no dashboard") && why.contains("--dask"),
        "{why}"
    );
    // A registered address nothing listens on: the coordinator says so.
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = gone.local_addr().expect("addr");
    drop(gone);
    c.ctl
        .send(Control::Dashboard(Some(addr)))
        .await
        .expect("control");
    // Another node's address is never a dashboard: refused, the registration stays. (The
    // walltime mark after it shows in a snapshot once both were handled, in order.)
    c.ctl
        .send(Control::Dashboard(Some(
            "10.1.2.3:8787".parse().expect("addr"),
        )))
        .await
        .expect("control");
    c.ctl.send(Control::WalltimeEnding).await.expect("control");
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let s = c.client.snapshot().await.expect("snapshot");
        if s.walltime_ending {
            assert!(s.dashboard);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "controls never handled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Err(ClientError::Refused(why)) = c.client.open_dashboard().await else {
        panic!("a stream to a closed port was opened");
    };
    assert!(
        why.contains("does not answer") && why.contains(&addr.to_string()),
        "{why}"
    );
    c.client.shutdown().await.expect("shutdown");
    let _ = tokio::time::timeout(LONG, c.server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_cross_both_ways_intact_and_ends_pass_through() {
    let (echo, _echo_task, mut ended) = echo_server().await;
    let c = cluster(Some(echo)).await;
    assert!(c.client.snapshot().await.expect("snapshot").dashboard);
    // 3 MiB out and back: many times the copy buffers, so flow control has to work.
    let data = pattern(3 << 20);
    let (mut send, mut recv) = c.client.open_dashboard().await.expect("open");
    let writer = {
        let data = data.clone();
        async move {
            send.write_all(&data).await.expect("write");
            // Our end: the echo server sees EOF and ends its side, which reaches us as EOF.
            send.finish().expect("finish");
        }
    };
    let reader = async {
        let mut back = Vec::new();
        recv.read_to_end(64 << 20)
            .await
            .map(|b| back = b)
            .expect("read");
        back
    };
    let ((), back) = tokio::time::timeout(LONG, async { tokio::join!(writer, reader) })
        .await
        .expect("the echo in time");
    assert!(
        back == data,
        "{} bytes came back, {} sent",
        back.len(),
        data.len()
    );
    assert_eq!(ended.recv().await, Some(data.len() as u64));

    // A dropped stream (the browser went away) closes the dashboard's connection too.
    let (mut send, recv) = c.client.open_dashboard().await.expect("open");
    send.write_all(b"partial").await.expect("write");
    drop((send, recv));
    let n = tokio::time::timeout(LONG, ended.recv())
        .await
        .expect("the dashboard's connection closed");
    assert!(n.is_some());
    c.client.shutdown().await.expect("shutdown");
    let _ = tokio::time::timeout(LONG, c.server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_cap_are_refused_until_one_closes() {
    let (echo, _echo_task, mut ended) = echo_server().await;
    let c = cluster(Some(echo)).await;
    let mut open = Vec::new();
    for _ in 0..MAX_DASHBOARD_STREAMS {
        open.push(
            c.client
                .open_dashboard()
                .await
                .expect("open within the cap"),
        );
    }
    let Err(ClientError::Refused(why)) = c.client.open_dashboard().await else {
        panic!("a stream over the cap was opened");
    };
    assert!(why.contains(&MAX_DASHBOARD_STREAMS.to_string()), "{why}");
    // One ends cleanly: its place is free once the coordinator saw both ends.
    let (mut send, mut recv) = open.pop().expect("one");
    send.finish().expect("finish");
    let _ = recv.read_to_end(1024).await;
    assert!(ended.recv().await.is_some());
    let mut again = None;
    let deadline = tokio::time::Instant::now() + LONG;
    while tokio::time::Instant::now() < deadline {
        match c.client.open_dashboard().await {
            Ok(s) => {
                again = Some(s);
                break;
            }
            // The coordinator frees the place just after the dashboard's end reached us.
            Err(ClientError::Refused(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(again.is_some(), "the freed place was never given again");
    c.client.shutdown().await.expect("shutdown");
    let _ = tokio::time::timeout(LONG, c.server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_admits_the_link_then_the_cookie_and_refuses_everyone_else() {
    let (http, _http_task) = http_server().await;
    let c = cluster(Some(http)).await;
    let mut proxy = Proxy::start(
        c.client.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        "corral dashboard dash",
    )
    .await
    .expect("proxy");
    let addr = proxy.local_addr();
    assert!(addr.ip().is_loopback());

    // A stranger on this machine: 403, and the words say what to do.
    let r = get(addr, "/status", None).await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("corral dashboard dash"), "{r}");
    assert!(!r.contains("dashboard page"), "{r}");

    // The printed link: a cookie and a redirect to the page without the token.
    let url = proxy.login_url("/status");
    let target = url.split_once(&addr.to_string()).expect("url").1.to_owned();
    let r = get(addr, &target, None).await;
    assert!(r.starts_with("HTTP/1.1 303"), "{r}");
    assert!(r.contains("Location: /status\r\n"), "{r}");
    let set = r
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .expect("a cookie")
        .to_owned();
    let cookie = set.split(';').next().expect("name=value").to_owned();
    assert_eq!(cookie, proxy.cookie());
    // Spent: the same link in another browser opens nothing.
    let r = get(addr, &target, None).await;
    assert!(
        r.starts_with("HTTP/1.1 403") && r.contains("used already"),
        "{r}"
    );

    // With the cookie, pages come from the dashboard, through the coordinator.
    let r = get(addr, "/status", Some(&cookie)).await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("dashboard page /status"),
        "{r}"
    );

    // The TUI's reader: reqwest through the proxy with the cookie.
    let reader =
        super::dask::DaskReader::new(&format!("http://{addr}"), &proxy.cookie()).expect("reader");
    let view = reader.read().await.expect("dask view");
    assert_eq!(view.workers.len(), 1);
    assert_eq!(
        (view.workers[0].processing, view.workers[0].in_memory),
        (4, 7)
    );
    assert_eq!(view.counts.processing, 4);
    assert_eq!(view.prefixes[0].prefix, "read-csv");

    // The cluster goes down: the proxy says so.
    c.client.shutdown().await.expect("shutdown");
    let ev = tokio::time::timeout(LONG, async {
        loop {
            match proxy.events().recv().await {
                Some(ProxyEvent::ClusterGone { why }) => return why,
                Some(_) => {}
                None => panic!("the proxy ended without saying why"),
            }
        }
    })
    .await
    .expect("the end noticed");
    assert!(!ev.is_empty());
    let _ = tokio::time::timeout(LONG, c.server).await;
}
