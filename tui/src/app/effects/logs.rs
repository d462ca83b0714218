//! The cluster's log files, for the log view.

use std::path::PathBuf;

use super::Ctx;

/// The last lines of every log of the cluster (head job output/error, agents' logs), newest
/// file first.
pub(super) fn read_logs(ctx: &Ctx, name: &str) -> Result<Vec<String>, String> {
    const TAIL: usize = 200;
    let dir = ctx.dir(name)?;
    let logs = dir.logs_dir();
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&logs)
        .map_err(|e| format!("{}: {e}", logs.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let t = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, e.path())
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut out = Vec::new();
    for (_, path) in files {
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        out.push(format!("── {} ──", path.display()));
        out.extend(
            lines[lines.len().saturating_sub(TAIL)..]
                .iter()
                .map(|l| (*l).to_string()),
        );
    }
    Ok(out)
}
