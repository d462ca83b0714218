//! Scaling and cancelling a cluster through its backend (the same path as `corral scale`
//! and `corral down`).

use std::sync::Arc;

use corral_core::backend::Events;

use super::super::view::CancelReport;
use super::Ctx;

/// Scales a cluster by `delta` workers through its backend: a SLURM cluster submits a worker
/// job, or drains and cancels the newest ones (one shared path with `corral scale`); a local
/// one starts or stops processes.
pub(super) async fn scale(ctx: Arc<Ctx>, name: &str, delta: i32) -> Result<String, String> {
    let mut cluster = ctx.cluster(name)?;
    // Its supervisor decides the count; a change by hand would be undone at its next look.
    if let corral_core::cluster_record::Backend::Slurm { spec, .. } = &cluster.record.backend
        && let Some(a) = spec.supervise.adapt
    {
        return Err(format!(
            "{name} adapts within {} workers; `corral scale {name} --adapt off` first to scale by hand",
            a.range
        ));
    }
    let backend = ctx.backends.for_record(&cluster.record);
    let target =
        |now: u32| (i64::from(now) + i64::from(delta)).clamp(0, i64::from(u32::MAX)) as u32;
    backend
        .scale(&mut cluster, &target, &Events::none())
        .await
        .map_err(|e| e.to_string())
}

/// Stops a cluster through its backend: drained, its jobs cancelled or processes stopped.
pub(super) async fn cancel(ctx: Arc<Ctx>, name: &str) -> Result<CancelReport, String> {
    let mut cluster = ctx
        .cluster(name)
        .map_err(|e| format!("{e}; nothing to cancel"))?;
    let backend = ctx.backends.for_record(&cluster.record);
    let report = backend
        .stop(&mut cluster, "corral TUI", &Events::none())
        .await
        .map_err(|e| e.to_string())?;
    let how = match &report.processes {
        None => "cancelled".to_string(),
        Some(p) if p.left.is_empty() => "stopped".to_string(),
        Some(p) => format!("stopped, but {} process(es) still run", p.left.len()),
    };
    Ok(CancelReport {
        core_hours: report.core_hours,
        how,
    })
}
