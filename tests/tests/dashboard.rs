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
