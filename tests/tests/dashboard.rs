//! `corral dashboard` end to end with the real binaries: a local cluster whose coordinator
//! registered a dashboard (`CORRAL_AGENT_DASHBOARD`, what corral sets for a Dask cluster's
//! scheduler), the one-time link, the cookie, 403 for everyone else, the cluster going down;
//! and headless Chromium rendering the Dask scheduler's `/status` through it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use corral_tests::cluster::Env;
use corral_tests::web::{self, Bg};

/// `python3 -m http.server` on a free loopback port serving `dir`; returns it and its address.
fn http_server(dir: &std::path::Path) -> (Bg, std::net::SocketAddr) {
    let mut s = Bg::spawn(
        "python3 -m http.server",
        Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .current_dir(dir),
    );
    // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    let port: u16 = s.wait_line(web::STARTUP, |l| {
        l.split(" port ").nth(1)?.split(' ').next()?.parse().ok()
    });
    (s, ([127, 0, 0, 1], port).into())
}

#[test]
fn the_link_holder_gets_the_dashboard_and_everyone_else_403() {
    let env = Env::new("dash");
    let pages = env.path().join("pages");
    std::fs::create_dir_all(&pages).expect("mkdir");
    std::fs::write(pages.join("status"), "the head node's dashboard page\n").expect("page");
    let (_server, addr) = http_server(&pages);
    env.up(
        "dash",
        1,
        1,
        &[("CORRAL_AGENT_DASHBOARD", &addr.to_string())],
    );

    let (mut dash, url) = web::corral_dashboard(&env, "dash");
    let (proxy, target) = web::split_url(&url);
    assert!(proxy.ip().is_loopback(), "{url}");
    assert_ne!(proxy.port(), addr.port(), "the proxy is its own port");
    assert!(target.starts_with("/status?corral_token="), "{url}");
    // The words: one-time link, ssh -L with this port.
    let ssh = dash.wait_line(web::STARTUP, |l| {
        l.contains("ssh -N -L").then(|| l.to_owned())
    });
    assert!(
        ssh.contains(&format!("-L {0}:127.0.0.1:{0}", proxy.port())),
        "{ssh}"
    );

    // Someone else on this machine, without the link: 403 saying what to do, no page.
    let r = web::http_get(proxy, "/status", None);
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("corral dashboard dash"), "{r}");
    assert!(!r.contains("head node's dashboard page"), "{r}");

    // The link: a cookie and a redirect to the page without the token.
    let r = web::http_get(proxy, &target, None);
    assert!(r.starts_with("HTTP/1.1 303"), "{r}");
    assert!(r.contains("\r\nLocation: /status\r\n"), "{r}");
    let cookie = web::set_cookie(&r).expect("a cookie");
    // Spent: the same link a second time (another browser) opens nothing.
    let r = web::http_get(proxy, &target, None);
    assert!(
        r.starts_with("HTTP/1.1 403") && r.contains("used already"),
        "{r}"
    );

    // With the cookie: the page, from the server on the coordinator's loopback, through QUIC.
    let r = web::http_get(proxy, "/status", Some(&cookie));
    assert!(
        r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"),
        "{r}"
    );
    assert!(r.ends_with("the head node's dashboard page\n"), "{r}");
    // A page the server does not have: its own 404, passed through.
    let r = web::http_get(proxy, "/nothing-here", Some(&cookie));
    assert!(r.contains(" 404 "), "{r}");

    // `corral status` says there is one and how to see it.
    let st = env.ok(&["status", "dash"]);
    assert!(
        st.stdout.contains("`corral dashboard dash` serves it here"),
        "{st}"
    );

    // The cluster goes down: `corral dashboard` says so and fails.
    env.ok(&["down", "dash"]);
    let (status, printed) = dash.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{printed}");
    assert!(printed.contains("cluster dash went away"), "{printed}");
    // And refuses to start on a cluster that is down.
    let out = env.run(&["dashboard", "dash"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("cluster dash is down"), "{out}");
}

#[test]
fn a_cluster_without_a_dashboard_says_so() {
    let env = Env::new("nodash");
    env.up("plain", 1, 1, &[]);
    let out = env.run(&["dashboard", "plain"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("cluster plain has no dashboard") && out.stderr.contains("--dask"),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
    let st = env.ok(&["status", "plain"]);
    assert!(!st.stdout.contains("dashboard"), "{st}");
}

/// Where the test leaves its screenshot: `<target>/dashboard-status.png` (CI keeps it).
fn artefact(name: &str) -> PathBuf {
    let bins = corral_tests::bins::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    bins.parent().unwrap_or(&bins).join(name)
}

#[test]
fn chromium_renders_the_dask_status_page_through_corral_dashboard() {
    let Some(chromium) = web::require_chromium() else {
        return;
    };
    let Some(py) = web::require_dask() else {
        return;
    };
    let env = Env::new("dash-chromium");
    let (_scheduler, sched_addr, dash_addr) = web::dask_scheduler(&py, env.path());
    let _worker = web::dask_worker(&py, env.path(), &sched_addr, 1);
    env.up(
        "daskdash",
        1,
        1,
        &[("CORRAL_AGENT_DASHBOARD", &dash_addr.to_string())],
    );
    let (_dash, url) = web::corral_dashboard(&env, "daskdash");
    let png = artefact("dashboard-status.png");
    let html = artefact("dashboard-status.html");
    let _ = std::fs::remove_file(&png);
    let seen = web::chromium_shot(&chromium, &url, &png, &html);
    // Bokeh received its document over the websocket, through the tunnel, and drew it.
    assert_eq!(seen.title, "Dask: Status", "{seen:?}");
    assert!(seen.documents >= 1 && seen.painted >= 3, "{seen:?}");
    for plot in ["Task Stream", "Progress", "Bytes stored per worker"] {
        assert!(
            seen.titles.iter().any(|t| t.contains(plot)),
            "no {plot:?} plot: {seen:?}"
        );
    }
    let dom = std::fs::read_to_string(&html).expect("dom");
    assert!(
        dom.contains("status-processing") && dom.contains("bokeh"),
        "{dom}"
    );
    // A real screenshot: a PNG of the window's size (1280×900), not an error page's few bytes.
    let bytes = std::fs::read(&png).expect("screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(bytes[16..20].try_into().expect("width")),
        u32::from_be_bytes(bytes[20..24].try_into().expect("height")),
    );
    assert!(w >= 1000 && h >= 600, "{w}x{h}");
    assert!(bytes.len() > 20_000, "{} bytes", bytes.len());
    eprintln!("screenshot: {}", png.display());
}

/// A Dask client that maps `inc` over 0..20 (7 raises), waits for the results, says `done`,
/// and keeps its futures (so the results stay in the workers' memory) until killed.
const DASK_JOB: &str = r#"
import sys, time
from distributed import Client, wait
c = Client(sys.argv[1])
def inc(x):
    if x == 7:
        raise ValueError("seven")
    return x + 1
fs = c.map(inc, range(20))
wait(fs)
print("done", sum(f.status == "finished" for f in fs), sum(f.status == "error" for f in fs), flush=True)
time.sleep(600)
"#;

#[test]
fn the_tui_shows_dasks_workers_and_task_totals_through_the_tunnel() {
    if !corral_tests::tmux::require() {
        return;
    }
    let Some(py) = web::require_dask() else {
        return;
    };
    let env = Env::new("dash-tui");
    let (_scheduler, sched_addr, dash_addr) = web::dask_scheduler(&py, env.path());
    let _worker = web::dask_worker(&py, env.path(), &sched_addr, 2);
    let mut job = Bg::spawn(
        "dask client",
        Command::new(&py)
            .args(["-c", DASK_JOB, &sched_addr])
            .current_dir(env.path()),
    );
    let counts = job.wait_line(web::STARTUP, |l| l.strip_prefix("done ").map(str::to_owned));
    assert_eq!(counts, "19 1", "{:?}", job.seen);
    env.up(
        "tuidask",
        1,
        1,
        &[("CORRAL_AGENT_DASHBOARD", &dash_addr.to_string())],
    );
    let q = |p: &std::path::Path| corral_tests::tmux::sh_quote(&p.display().to_string());
    let cmd = format!(
        "env XDG_STATE_HOME={} XDG_CONFIG_HOME={} {} --no-mouse attach tuidask; sleep 600",
        q(&env.path().join("state")),
        q(&env.path().join("config")),
        q(&corral_tests::bins::corral()),
    );
    let session = corral_tests::tmux::Session::start("dash-tui", 120, 40, &cmd);
    let long = Duration::from_secs(60);
    // Dask's own numbers, read from the scheduler through the tunnel.
    let screen = session.wait_text(
        "Dask · 1 worker · processing 0 · in memory 19 · erred 1",
        long,
    );
    assert!(screen.contains("DASK WORKER"), "{screen}");
    let screen = session.wait_text("task stream: 19 done · 1 erred", long);
    assert!(screen.contains("inc 19 (1 erred)"), "{screen}");
    // The worker's row: its address, 2 threads, nothing processing, 19 results, 1 erred.
    let row = screen
        .lines()
        .find(|l| l.contains("tcp://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no Dask worker row: {screen}"));
    let cells: Vec<&str> = row
        .trim_matches(|c: char| c == '│' || c.is_whitespace())
        .split_whitespace()
        .collect();
    assert_eq!(
        cells.first().map(|c| c.starts_with("tcp://")),
        Some(true),
        "{row}"
    );
    assert_eq!(cells.get(1), Some(&"2"), "threads: {row}");
    assert_eq!(&cells[cells.len() - 3..], ["0", "19", "1"], "{row}");
    // corral's own worker is still listed.
    assert!(screen.contains("Workers (1)"), "{screen}");
}
