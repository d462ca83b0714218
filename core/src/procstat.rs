//! What Linux says about a process and its node, from `/proc`: CPU time, resident memory,
//! load average, command line. Workers report these every second; `corral down` checks a
//! recorded pid still is the process it started (pids are reused) before signalling it.

use std::path::Path;

/// `/proc/PID/stat` counts CPU time in USER_HZ ticks, which Linux fixes at 100 for userspace.
const USER_HZ: f64 = 100.0;

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(p) => format!("/proc/{p}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

/// User + system CPU seconds of `pid` (`None`: this process) so far.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(proc_path(pid, "stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Resident memory of `pid` (`None`: this process) in bytes (`VmRSS`).
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    status_kb(pid, "VmRSS:")
}

/// Peak resident memory (`VmHWM`) in bytes.
pub fn peak_rss_bytes(pid: Option<u32>) -> Option<u64> {
    status_kb(pid, "VmHWM:")
}

fn status_kb(pid: Option<u32>, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(proc_path(pid, "status")).ok()?;
    status.lines().find_map(|l| {
        let kb = l.strip_prefix(field)?.trim().strip_suffix("kB")?;
        kb.trim().parse::<u64>().ok().map(|k| k * 1024)
    })
}

/// The node's 1, 5 and 15 minute load averages.
pub fn load_avg() -> Option<[f32; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f32>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The arguments `pid` was started with; `None` if it is gone (or a zombie, whose command
/// line is empty).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(
        raw.split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Whether `pid` is a live process whose command line names `dir` (so it is one of the
/// processes corral started for that cluster, not a stranger that got the pid later).
pub fn runs_for(pid: u32, dir: &Path) -> bool {
    let dir = dir.to_string_lossy();
    cmdline(pid).is_some_and(|args| args.iter().any(|a| a == dir.as_ref()))
}

/// Measures CPU use between two calls, as a percentage of `cores`.
#[derive(Debug)]
pub struct CpuMeter {
    pid: Option<u32>,
    last: Option<(std::time::Instant, f64)>,
}

impl CpuMeter {
    pub fn new(pid: Option<u32>) -> CpuMeter {
        let mut m = CpuMeter { pid, last: None };
        m.sample(1);
        m
    }

    /// CPU use since the previous call in percent of `cores` (0 on the first call or when
    /// `/proc` cannot be read).
    pub fn sample(&mut self, cores: u32) -> f32 {
        let now = std::time::Instant::now();
        let Some(cpu) = cpu_seconds(self.pid) else {
            return 0.0;
        };
        let pct = match self.last {
            Some((t, c)) => {
                let wall = now.duration_since(t).as_secs_f64();
                if wall > 0.0 {
                    (100.0 * (cpu - c) / (wall * f64::from(cores.max(1)))) as f32
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, cpu));
        pct.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_visible() {
        assert!(cpu_seconds(None).is_some());
        assert!(rss_bytes(None).is_some_and(|r| r > 0));
        assert!(load_avg().is_some());
        let me = cmdline(std::process::id()).expect("own cmdline");
        assert!(!me.is_empty());
        assert!(!runs_for(
            std::process::id(),
            Path::new("/no/such/cluster/dir")
        ));
    }
}
