//! Helpers of the Dask-mode tests: the Python that has dask and distributed (the venv
//! `scripts/test` fills: `CORRAL_TEST_PYTHON`, else `<target>/pyenv/bin/python`), the shipped
//! `assets/nyc-taxi.py`, what it prints, and the Dask processes of a cluster.

use std::path::{Path, PathBuf};

/// The Python with dask, distributed and bokeh.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRAL_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let bins = crate::bins::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    bins.parent()
        .map(|t| t.join("pyenv/bin/python"))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// `PATH` with the binaries under test and the test Python's directory first (so CMD's
/// `python3`, the shebang of the shipped script, has dask).
pub fn path_with_python() -> String {
    let py = python();
    let dir = py.parent().map(Path::to_path_buf).unwrap_or_default();
    format!("{}:{}", dir.display(), crate::expect::path_with_bins())
}

/// The shipped script, `assets/nyc-taxi.py`.
pub fn nyc_taxi_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/nyc-taxi.py")
}

/// The `TYPE COUNT` lines nyc-taxi.py prints, as `{type: count}` (other lines skipped).
pub fn taxi_counts(stdout: &str) -> serde_json::Value {
    let mut counts = serde_json::Map::new();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        if let (Some(k), Some(n), None) = (words.next(), words.next(), words.next())
            && k.parse::<i64>().is_ok()
            && let Ok(n) = n.parse::<u64>()
        {
            counts.insert(k.to_string(), n.into());
        }
    }
    serde_json::Value::Object(counts)
}

/// The Dask processes (the launcher's) whose command line names the cluster directory `dir`.
pub fn dask_processes(dir: &Path) -> Vec<u32> {
    crate::expect::processes_of(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("dask/launch.py"))
                .unwrap_or(false)
        })
        .collect()
}

/// The children of `pid` (by `PPid` in /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PPid:"))
                    .is_some_and(|v| v.trim() == pid.to_string())
            })
        })
        .collect()
}

/// Scatters 40 numbers over the workers (data with no lineage: lost if a worker holding it
/// stopped without handing it over), says `running` in a file, then adds 1 to each of them five
/// times over in 200 slow tasks (about 25 s on two threads: the test scales meanwhile), waits
/// until the test says it scaled, and adds 1 to each scattered number again.
pub const SCALED_JOB: &str = r#"
import sys, time, pathlib
from distributed import Client
marker, scaled = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
with Client(sys.argv[1], timeout="30s") as c:
    data = c.scatter(list(range(40)), broadcast=False)
    holders = {w for ws in c.who_has(data).values() for w in ws}
    def slow_inc(x):
        time.sleep(0.25)
        return x + 1
    tasks = c.map(slow_inc, [data[i % 40] for i in range(200)], pure=False)
    marker.write_text("running %d\n" % len(holders))
    first = c.submit(sum, tasks).result(timeout=300)
    while not scaled.exists():
        time.sleep(0.1)
    second = c.submit(sum, c.map(lambda x: x + 1, data, pure=False)).result(timeout=300)
    print("sums", first, second, len(c.scheduler_info()["workers"]))
"#;
