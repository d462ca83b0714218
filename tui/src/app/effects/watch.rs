//! Following an attached cluster: its jobs until a coordinator listens, then the
//! coordinator's snapshot stream (reconnecting when it is lost).

use std::sync::Arc;

use tokio::sync::mpsc;

use corral_core::client::ClusterClient;

use super::super::convert;
use super::super::msg::Msg;
use super::super::runtime::now_unix;
use super::super::view::{Backend, ClusterSnapshot, ClusterState};
use super::notices::{Notices, adapt_view};
use super::seen::Seen;
use super::{Ctx, WATCH_EVERY};

async fn look(ctx: &Arc<Ctx>, name: &str) -> Look {
    look_at(ctx, name).await
}

pub(super) async fn watch(ctx: Arc<Ctx>, tx: mpsc::Sender<Msg>, name: String) {
    let mut last: Vec<Msg> = Vec::new();
    let mut last_error = String::new();
    let mut notices = Notices::new(&ctx, &name);
    loop {
        let look = look(&ctx, &name).await;
        for m in notices.look(look.observed.as_ref(), None) {
            if tx.send(m).await.is_err() {
                return;
            }
        }
        // Post only what changed: an idle cluster must not cause redraws.
        if look.msgs != last {
            for m in look.msgs.iter().cloned() {
                if tx.send(m).await.is_err() {
                    return;
                }
            }
            last = look.msgs.clone();
        }
        if look.has_coordinator {
            match stream(&ctx, &tx, &name, look.context, look.observed, &mut notices).await {
                Ok(()) => return,
                Err(e) => {
                    if e != last_error {
                        let reason = e.clone();
                        if tx
                            .send(Msg::Detached {
                                name: name.clone(),
                                reason,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        last_error = e;
                    }
                    last.clear();
                }
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// Connected: forwards snapshots (≤ 4 Hz, the coordinator's pace) and, every few seconds,
/// the SLURM side (job state, walltime). Returns `Ok` when the app went away, `Err` when the
/// connection did.
async fn stream(
    ctx: &Arc<Ctx>,
    tx: &mpsc::Sender<Msg>,
    name: &str,
    mut context: convert::Context,
    mut observed: Option<corral_core::backend::Observed>,
    notices: &mut Notices,
) -> Result<(), String> {
    let dir = ctx.dir(name)?;
    let client = Arc::new(
        ClusterClient::connect(&dir)
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut sub = client.subscribe().await.map_err(|e| e.to_string())?;
    // A Dask cluster's own view, read through the dashboard tunnel while it has one.
    let mut dask: Option<super::dask::DaskFeed> = None;
    let mut slurm_every = tokio::time::interval(WATCH_EVERY * 3);
    slurm_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    slurm_every.tick().await;
    let mut last_status: Option<Msg> = None;
    let mut last_adapt: Option<Msg> = None;
    loop {
        tokio::select! {
            item = sub.receiver().recv() => match item {
                Some(Ok(s)) => {
                    for m in notices.look(observed.as_ref(), Some(&s)) {
                        if tx.send(m).await.is_err() {
                            return Ok(());
                        }
                    }
                    if s.dashboard && dask.is_none() {
                        match super::dask::DaskFeed::start(client.clone(), name.to_owned(), tx.clone()).await {
                            Ok(f) => dask = Some(f),
                            Err(e) => {
                                let msg = Msg::Dask { name: name.to_owned(), result: Err(e) };
                                if tx.send(msg).await.is_err() {
                                    return Ok(());
                                }
                            }
                        }
                    } else if !s.dashboard {
                        dask = None;
                    }
                    let snap = convert::snapshot(&s, &context, now_unix());
                    if tx.send(Msg::Snapshot(snap)).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the coordinator ended the subscription".into()),
            },
            _ = slurm_every.tick() => {
                let look = look(ctx, name).await;
                context = look.context;
                observed = look.observed;
                let adapt = look.msgs.iter().find(|m| matches!(m, Msg::Adapt { .. })).cloned();
                if adapt.is_some() && adapt != last_adapt {
                    if let Some(m) = adapt.clone()
                        && tx.send(m).await.is_err()
                    {
                        return Ok(());
                    }
                    last_adapt = adapt;
                }
                let status = look.msgs.into_iter().find(|m| matches!(m, Msg::JobStatus { .. }));
                if status.is_some() && status != last_status {
                    if let Some(m) = status.clone()
                        && tx.send(m).await.is_err()
                    {
                        return Ok(());
                    }
                    last_status = status;
                }
            }
        }
    }
}

/// One look at an attached cluster.
struct Look {
    /// The head job's status, and a snapshot of what is known without a connection.
    msgs: Vec<Msg>,
    /// What the directory and SLURM add to the coordinator's snapshots.
    context: convert::Context,
    has_coordinator: bool,
    /// The backend's view (for notices), when it answered.
    observed: Option<corral_core::backend::Observed>,
}

async fn look_at(ctx: &Ctx, name: &str) -> Look {
    let cluster = match ctx.cluster(name) {
        Ok(c) => c,
        Err(e) => {
            return Look {
                msgs: vec![Msg::Detached {
                    name: name.into(),
                    reason: e.to_string(),
                }],
                context: convert::Context::default(),
                has_coordinator: false,
                observed: None,
            };
        }
    };
    let seen = Seen::of(ctx, cluster).await;
    let now = now_unix();
    let mut msgs = Vec::new();
    if let Some(v) = seen.head() {
        msgs.push(Msg::JobStatus {
            name: name.into(),
            status: convert::job_status(v, seen.head_submitted()),
        });
    }
    if let Err(e) = &seen.observed {
        msgs.push(Msg::Detached {
            name: name.into(),
            reason: format!("cannot ask SLURM: {e}"),
        });
    }
    if backend_is_slurm(&seen) {
        msgs.push(Msg::Adapt {
            name: name.into(),
            adapt: adapt_view(&seen),
        });
    }
    let core_hours = seen.observed.as_ref().ok().map(|o| o.core_hours);
    let state = seen.state();
    let backend = seen.backend();
    let walltime_end = seen.walltime_end(now);
    let coord = seen.coord.as_ref();
    let context = convert::Context {
        backend: Some(backend),
        address: coord.map(|c| c.socket_addr().to_string()),
        walltime_end,
        job_ids: seen.jobs.ids().iter().map(|j| j.0).collect(),
        workers_asked: seen.workers_asked(),
        core_hours_used: core_hours,
        slurm_state: (backend == Backend::Slurm).then_some(state),
    };
    // Only a cluster past pending has a dashboard to show.
    if !matches!(state, ClusterState::Pending | ClusterState::Unknown) || coord.is_some() {
        msgs.push(Msg::Snapshot(ClusterSnapshot {
            name: name.into(),
            backend,
            state,
            address: context.address.clone(),
            authenticated: false,
            not_connected: Some(if coord.is_some() {
                "connecting…".into()
            } else if state == ClusterState::Ended {
                "the cluster has ended".into()
            } else {
                "the coordinator has not started yet".into()
            }),
            walltime_end,
            job_ids: context.job_ids.clone(),
            workers_asked: context.workers_asked,
            workers: Vec::new(),
            tasks: Default::default(),
            query: None,
            core_hours_used: core_hours,
            dashboard: false,
        }));
    }
    Look {
        msgs,
        context,
        has_coordinator: coord.is_some() && state != ClusterState::Ended,
        observed: seen.observed.as_ref().ok().cloned(),
    }
}

fn backend_is_slurm(seen: &Seen) -> bool {
    seen.backend() == Backend::Slurm
}
