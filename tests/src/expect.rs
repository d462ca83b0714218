//! What end-to-end tests check a cluster against: exact counts from `expected.json`, the counts
//! a `corral query --json` printed, processes that still name a cluster directory, and a `PATH`
//! on which `corral` is the binary under test.

use std::path::Path;

/// `payment_type` counts over all files, from `corral gen taxi`'s `expected.json`.
pub fn expected_counts(data: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(data.join("expected.json")).expect("expected.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("expected.json is JSON");
    v["payment_type"].clone()
}

/// The `{key: count}` of the `corral query --json` line in `stdout` (other lines — CMD's own,
/// corral's progress — are skipped).
pub fn counts_in(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("{\"cluster\""))
        .unwrap_or_else(|| panic!("no query JSON line in:\n{stdout}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let mut counts = serde_json::Map::new();
    for g in v["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("groups in {v}"))
    {
        let key = g["key"][0].as_str().expect("key").to_string();
        counts.insert(key, g["count"].clone());
    }
    serde_json::Value::Object(counts)
}

/// Processes whose command line names the cluster directory `dir`.
pub fn processes_of(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .collect()
}

/// `PATH` with the directory of the binaries under test first, so CMD's `corral` is this one.
pub fn path_with_bins() -> String {
    let bins = crate::bins::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The only cluster in the test's state directory (batch names its clusters itself).
pub fn only_cluster(env: &crate::cluster::Env) -> String {
    let dir = env.path().join("state/corral/clusters");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert_eq!(names.len(), 1, "one cluster expected: {names:?}");
    names[0].clone()
}
