//! What the dashboard tests run beside corral: long-lived processes read line by line (a
//! Python HTTP server, a Dask scheduler and workers from the test venv, `corral dashboard`),
//! plain HTTP/1.1 requests, and headless Chromium (`tests/chromium/shot.py`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a background process may take to print the line a test waits for.
pub const STARTUP: Duration = Duration::from_secs(90);

/// A process running for the test, killed when dropped. Its stdout and stderr lines arrive on
/// one channel (read by two threads that end with the process).
pub struct Bg {
    pub what: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

impl Bg {
    pub fn spawn(what: &str, cmd: &mut Command) -> Bg {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for r in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Bg {
            what: what.to_owned(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) for which `f` gives something; panics with what was
    /// printed if none comes within `within` or the process ends first.
    pub fn wait_line<T>(&mut self, within: Duration, mut f: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let got = f(&line);
                    self.seen.push(line);
                    if let Some(v) = got {
                        return v;
                    }
                }
                Err(e) => panic!(
                    "{}: no expected line ({e:?}); it printed:\n{}",
                    self.what,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to exit; its status and everything it printed.
    pub fn wait_exit(&mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let deadline = std::time::Instant::now() + within;
        loop {
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // The reader threads finish once the pipes close.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
                    self.seen.push(l);
                }
                return (st, self.seen.join("\n"));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not exit within {within:?}; it printed:\n{}",
                self.what,
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test venv's Python (`CORRAL_TEST_PYTHON`, else `<target>/pyenv/bin/python`), which
/// scripts/test fills with dask, distributed, bokeh and prometheus_client.
pub fn venv_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRAL_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let bins = crate::bins::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    bins.parent()
        .map(|t| t.join("pyenv/bin/python"))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Whether the venv has Dask's distributed and bokeh; absent is a failure under CI.
pub fn require_dask() -> Option<PathBuf> {
    let py = venv_python();
    let ok = Command::new(&py)
        .args(["-c", "import distributed, bokeh"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    assert!(
        !crate::in_ci(),
        "{} lacks distributed/bokeh in CI (scripts/test installs them)",
        py.display()
    );
    eprintln!(
        "skipping: {} has no distributed/bokeh (pip install 'dask[distributed]' bokeh)",
        py.display()
    );
    None
}

/// Chromium, or `None` (a failure under CI, where scripts/test installs it).
pub fn require_chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(PathBuf::from(name));
        }
    }
    assert!(
        !crate::in_ci(),
        "chromium is required in CI (scripts/test installs it)"
    );
    eprintln!("skipping: chromium is not installed (apt-get install chromium)");
    None
}

/// A Dask scheduler on 127.0.0.1 (plain TCP: these tests are about the dashboard), its
/// dashboard on a loopback port; returns it, its address and its dashboard's.
pub fn dask_scheduler(py: &Path, dir: &Path) -> (Bg, String, SocketAddr) {
    let mut s = Bg::spawn(
        "dask scheduler",
        Command::new(py)
            .args([
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
            ])
            .current_dir(dir),
    );
    let mut addr = None;
    let dash = s.wait_line(STARTUP, |l| {
        if let Some(a) = l.split("Scheduler at:").nth(1) {
            addr = Some(a.trim().to_owned());
        }
        let url = l.split("dashboard at:").nth(1)?.trim();
        let hostport = url.strip_prefix("http://")?.split('/').next()?;
        hostport.parse::<SocketAddr>().ok()
    });
    let addr = match addr {
        Some(a) => a,
        None => s.wait_line(STARTUP, |l| {
            l.split("Scheduler at:").nth(1).map(|a| a.trim().to_owned())
        }),
    };
    (s, addr, dash)
}

/// A Dask worker of `threads` threads joined to `scheduler`.
pub fn dask_worker(py: &Path, dir: &Path, scheduler: &str, threads: u32) -> Bg {
    let mut w = Bg::spawn(
        "dask worker",
        Command::new(py)
            .args([
                "-m",
                "distributed.cli.dask_worker",
                scheduler,
                "--nthreads",
                &threads.to_string(),
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
            ])
            .current_dir(dir),
    );
    w.wait_line(STARTUP, |l| l.contains("Registered to:").then_some(()));
    w
}

/// `GET target` with an optional cookie over plain HTTP/1.1; the whole response as text.
pub fn http_get(addr: SocketAddr, target: &str, cookie: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("GET {target} on {addr}: {e}"));
    String::from_utf8_lossy(&out).into_owned()
}

/// The `name=value` a response's `Set-Cookie` sets.
pub fn set_cookie(response: &str) -> Option<String> {
    response
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// What `tests/chromium/shot.py` saw once Bokeh had rendered the page (or gave up).
#[derive(Debug, serde::Deserialize, Default)]
#[serde(default)]
pub struct Rendered {
    pub title: String,
    pub canvases: u32,
    pub painted: u32,
    pub documents: u32,
    pub titles: Vec<String>,
}

/// Loads `url` in headless Chromium with a new empty profile, waits for Bokeh to render,
/// saves the screenshot to `png` and the DOM to `html`.
pub fn chromium_shot(chromium: &Path, url: &str, png: &Path, html: &Path) -> Rendered {
    let profile = tempfile::tempdir().expect("profile dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("chromium/shot.py");
    let out = crate::process::run(
        Command::new("python3").arg(&script).args([
            chromium.as_os_str(),
            url.as_ref(),
            png.as_os_str(),
            html.as_os_str(),
            profile.path().as_os_str(),
        ]),
        Duration::from_secs(150),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = std::fs::read_to_string(profile.path().join("chromium.log")).unwrap_or_default();
    assert!(out.success(), "{out}\n--- chromium.log\n{log}");
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("shot.py printed no JSON ({e}): {out}"))
}

/// `corral dashboard NAME --port 0` from `env`; returns it and the link it printed.
pub fn corral_dashboard(env: &crate::cluster::Env, name: &str) -> (Bg, String) {
    let mut d = Bg::spawn(
        "corral dashboard",
        &mut env.corral(&["dashboard", name, "--port", "0"]),
    );
    let url = d.wait_line(STARTUP, |l| {
        l.starts_with("http://127.0.0.1:").then(|| l.to_owned())
    });
    (d, url)
}

/// `http://127.0.0.1:P/path?q` → (127.0.0.1:P, `/path?q`).
pub fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (host.parse().expect("host:port"), target.to_owned())
}
