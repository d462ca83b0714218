//! `corral-agent simulate`: a load tool, not a test. Opens N authenticated worker connections
//! to a running coordinator (one UDP endpoint for all of them), each registering with no
//! slots and reporting every second (spread over the second), answering plans, taking no work;
//! then measures the coordinator's CPU and memory from `/proc` for a while and prints them.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use corral_core::cluster_dir::ClusterDir;
use corral_core::procstat;
use corral_core::protocol::{Registration, Role, ToWorker, WorkerMsg, WorkerReport};
use corral_core::transport::{self, AuthedConnection, recv_frame, send_frame};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cli::SimulateArgs;

/// How long one simulated worker keeps trying to connect (a real one: its orphan timeout).
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

#[derive(serde::Serialize)]
struct Measurement {
    workers: usize,
    connect_seconds: f64,
    measure_seconds: f64,
    coordinator_pid: u32,
    coordinator_cpu_pct_of_one_core: f64,
    coordinator_rss_bytes: u64,
    coordinator_peak_rss_bytes: u64,
    simulator_cpu_pct_of_one_core: f64,
    still_connected: usize,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let dir = ClusterDir::open_path(&args.cluster)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(simulate(dir, args))
}

/// Connects like a worker does: refusals and timeouts are retried with jittered backoff (a
/// burst of thousands is over the coordinator's caps by design) until `CONNECT_DEADLINE`.
async fn connect_one(
    endpoint: &quinn::Endpoint,
    info: &corral_core::cluster_dir::CoordinatorInfo,
    secret: &corral_core::security::Secret,
    retries: &Retries,
) -> anyhow::Result<AuthedConnection> {
    let pin = info.fingerprint()?;
    let deadline = Instant::now() + CONNECT_DEADLINE;
    let mut backoff = transport::Backoff::new(Duration::from_millis(25), Duration::from_secs(2));
    loop {
        match transport::connect(endpoint, info.socket_addr(), &pin, secret, Role::Worker).await {
            Ok(c) => return Ok(c),
            Err(e) if !e.is_permanent() && Instant::now() < deadline => {
                retries.note(&e);
                tokio::time::sleep(backoff.pause()).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Why connections had to be retried, by kind (printed with the measurement).
#[derive(Default)]
struct Retries(std::sync::Mutex<std::collections::BTreeMap<String, u64>>);

impl Retries {
    fn note(&self, e: &transport::ConnectError) {
        let kind = match e {
            transport::ConnectError::Busy { .. } => "refused (busy)".to_owned(),
            transport::ConnectError::Timeout { .. } => "timed out".to_owned(),
            other => other.to_string(),
        };
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(kind).or_insert(0) += 1;
    }

    fn summary(&self) -> String {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.is_empty() {
            return "no retries".into();
        }
        let parts: Vec<String> = m.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!("retried: {}", parts.join(", "))
    }
}

/// One simulated worker: register, report every second, answer plans.
async fn heartbeat(mut c: AuthedConnection, i: usize, n: usize, live: Arc<AtomicUsize>) {
    let reg = WorkerMsg::Register(Registration {
        node: format!("sim-{i}"),
        pid: std::process::id(),
        cores: 1,
        slurm: None,
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
    });
    if c.send(&reg).await.is_err() || c.send(&WorkerMsg::Slots { free: 0 }).await.is_err() {
        return;
    }
    live.fetch_add(1, Ordering::Relaxed);
    let AuthedConnection {
        connection,
        mut send,
        mut recv,
        ..
    } = c;
    let (tx, mut plans) = tokio::sync::mpsc::channel(4);
    // The reader owns nothing but the stream; it ends with the connection.
    let reader = async move {
        while let Ok(Some(m)) = recv_frame::<_, ToWorker>(&mut recv).await {
            match m {
                ToWorker::Plan { query, .. } if tx.send(query).await.is_err() => return,
                ToWorker::Shutdown { .. } => return,
                _ => {}
            }
        }
    };
    let writer = async move {
        // Spread the reports over the second, as real workers started at different times are.
        let offset = Duration::from_micros((i as u64 * 1_000_000) / n.max(1) as u64);
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + offset, Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let r = WorkerMsg::Report(WorkerReport {
                        load_avg: procstat::load_avg().unwrap_or_default(),
                        ..WorkerReport::default()
                    });
                    if send_frame(&mut send, &r).await.is_err() {
                        return;
                    }
                }
                Some(query) = plans.recv() => {
                    let m = WorkerMsg::PlanChecked { query, unreadable: vec![] };
                    if send_frame(&mut send, &m).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    drop(connection);
    live.fetch_sub(1, Ordering::Relaxed);
}

async fn simulate(dir: ClusterDir, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let info = dir.read_coordinator()?;
    let secret = Arc::new(dir.load_secret()?);
    let endpoint = transport::client_endpoint(info.socket_addr())?;
    let live = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let info = Arc::new(info);
    let mut tasks = JoinSet::new();
    let t0 = Instant::now();
    eprintln!(
        "opening {} worker connections to {}…",
        args.workers,
        info.socket_addr()
    );
    let retries = Arc::new(Retries::default());
    let mut connecting = JoinSet::new();
    for i in 0..args.workers {
        let (endpoint, info, secret, gate, retries) = (
            endpoint.clone(),
            info.clone(),
            secret.clone(),
            gate.clone(),
            retries.clone(),
        );
        connecting.spawn(async move {
            let _permit = gate.acquire_owned().await.ok();
            (i, connect_one(&endpoint, &info, &secret, &retries).await)
        });
    }
    let mut failed = 0;
    while let Some(r) = connecting.join_next().await {
        match r {
            Ok((i, Ok(c))) => {
                tasks.spawn(heartbeat(c, i, args.workers, live.clone()));
            }
            Ok((i, Err(e))) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("worker {i}: {e:#}");
                }
            }
            Err(e) => bail!("a connecting task failed: {e}"),
        }
    }
    let connect_seconds = t0.elapsed().as_secs_f64();
    if failed > 0 {
        bail!(
            "{failed} of {} connections failed ({})",
            args.workers,
            retries.summary()
        );
    }
    // Let registrations land and the first reports settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!(
        "{} connected in {connect_seconds:.2} s ({}); measuring the coordinator for {} s…",
        live.load(Ordering::Relaxed),
        retries.summary(),
        args.seconds
    );
    let pid = info.pid;
    let (c0, s0, m0) = (
        procstat::cpu_seconds(Some(pid)).context("cannot read the coordinator's /proc")?,
        procstat::cpu_seconds(None).unwrap_or(0.0),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(args.seconds.max(1))).await;
    let wall = m0.elapsed().as_secs_f64();
    let c1 = procstat::cpu_seconds(Some(pid)).context("the coordinator is gone")?;
    let s1 = procstat::cpu_seconds(None).unwrap_or(0.0);
    let m = Measurement {
        workers: args.workers,
        connect_seconds,
        measure_seconds: wall,
        coordinator_pid: pid,
        coordinator_cpu_pct_of_one_core: 100.0 * (c1 - c0) / wall,
        coordinator_rss_bytes: procstat::rss_bytes(Some(pid)).unwrap_or(0),
        coordinator_peak_rss_bytes: procstat::peak_rss_bytes(Some(pid)).unwrap_or(0),
        simulator_cpu_pct_of_one_core: 100.0 * (s1 - s0) / wall,
        still_connected: live.load(Ordering::Relaxed),
    };
    if args.json {
        println!("{}", serde_json::to_string(&m)?);
    } else {
        println!(
            "{} workers heartbeating: coordinator CPU {:.1} % of one core, RSS {:.1} MB (peak {:.1} MB); \
             simulator CPU {:.1} %; {} still connected; connecting took {:.2} s",
            m.workers,
            m.coordinator_cpu_pct_of_one_core,
            m.coordinator_rss_bytes as f64 / 1e6,
            m.coordinator_peak_rss_bytes as f64 / 1e6,
            m.simulator_cpu_pct_of_one_core,
            m.still_connected,
            m.connect_seconds
        );
    }
    tasks.abort_all();
    endpoint.close(quinn::VarInt::from_u32(0), b"");
    Ok(ExitCode::SUCCESS)
}
