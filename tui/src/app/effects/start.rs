//! The wizard's effects: a start estimate, and submitting (or starting) a cluster.

use corral_core::backend::Events;
use corral_core::model::ClusterSpec;
use corral_core::slurm::SubmitOptions;
use corral_core::slurm::template::{self, JobRole};

use super::super::view::Backend;
use super::{Ctx, agent};

pub(super) async fn estimate(ctx: &Ctx, spec: &ClusterSpec) -> Result<String, String> {
    let dir = ctx.clusters.join(&spec.name);
    let script = template::render(spec, JobRole::Head, spec.workers, &dir, &agent().words())
        .map_err(|e| e.to_string())?;
    let est = ctx
        .backends
        .slurm_client()
        .estimate(&script, &SubmitOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("{} on {}", est.start, est.nodes))
}

/// Starts a cluster: a SLURM cluster is submitted (its pending screen follows it), a local
/// one returns once every worker is connected.
pub(super) async fn submit(ctx: &Ctx, spec: &ClusterSpec, backend: Backend) -> Result<(), String> {
    match backend {
        Backend::Slurm => {
            ctx.backends
                .slurm(agent())
                .start(spec, &Events::none())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(cluster = %spec.name, "submitted");
        }
        Backend::Local => {
            crate::cmd::up::start_local(&ctx.backends, spec, &Events::none())
                .await
                .map_err(|e| format!("{e:#}"))?;
            tracing::info!(cluster = %spec.name, "local cluster started");
        }
    }
    Ok(())
}
