//! Queries on a cluster: one run with progress, a sweep over core counts, earlier runs from
//! the ledger.

use tokio::sync::mpsc;

use corral_core::aggregate::Query;
use corral_core::client::{ClusterClient, QueryEvent, resolve_inputs};
use corral_core::protocol::QueryOptions;
use corral_core::scaling::Point;

use super::super::convert;
use super::super::msg::Msg;
use super::Ctx;

/// Runs `query` on `name`, posting progress; the result as the result table wants it.
pub(super) async fn run_query(
    ctx: &Ctx,
    tx: &mpsc::Sender<Msg>,
    name: &str,
    mut query: Query,
) -> Result<super::super::view::ResultView, String> {
    let dir = ctx.dir(name)?;
    query.inputs = resolve_inputs(&query.inputs, &ctx.cwd).map_err(|e| e.to_string())?;
    let client = ClusterClient::connect(&dir)
        .await
        .map_err(|e| e.to_string())?;
    let mut handle = client
        .submit(query, QueryOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    while let Some(ev) = handle.next().await {
        match ev {
            QueryEvent::Progress(p) => {
                let progress = convert::progress(&p);
                let _ = tx
                    .send(Msg::QueryProgress {
                        name: name.to_string(),
                        progress,
                    })
                    .await;
            }
            QueryEvent::Done(r) => {
                return Ok(convert::result_view(
                    r.result(),
                    u64::from(r.tasks),
                    r.seconds,
                    r.workers,
                    u64::from(r.cores),
                ));
            }
            QueryEvent::Failed(f) => return Err(f.error),
            QueryEvent::Lost(why) => return Err(why),
        }
    }
    Err("the query stream ended without a result".into())
}

/// Runs `query` once per core count (the shared sweep, `crate::sweep`), posting each runtime.
pub(super) async fn sweep(
    ctx: &Ctx,
    tx: &mpsc::Sender<Msg>,
    name: &str,
    mut query: Query,
    cores: &[u32],
) -> Result<(), String> {
    let dir = ctx.dir(name)?;
    query.inputs = resolve_inputs(&query.inputs, &ctx.cwd).map_err(|e| e.to_string())?;
    let on_step = |step: crate::sweep::Step| {
        let msg = Msg::SweepPoint {
            name: name.to_string(),
            step,
        };
        async move { tx.send(msg).await.is_ok() }
    };
    crate::sweep::run(&dir, &query, cores, QueryOptions::default(), on_step)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

/// Earlier runtimes of `query` from the cluster's ledger (`ledger.jsonl`, written by the
/// coordinator: one `"event": "query"` line per finished query with `query`, `cores`,
/// `seconds`, `ok`). The ledger records resolved inputs, so `query` is resolved the same way
/// first. Lines of another shape are skipped: history is not worth failing over.
pub(super) fn ledger_points(ctx: &Ctx, name: &str, query: &Query) -> Vec<Point> {
    let Ok(dir) = ctx.dir(name) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(dir.ledger_file()) else {
        return Vec::new();
    };
    let mut q = query.clone();
    if let Ok(inputs) = resolve_inputs(&q.inputs, &ctx.cwd) {
        q.inputs = inputs;
    }
    let Ok(want) = serde_json::to_value(&q) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("event").and_then(|e| e.as_str()) == Some("query"))
        .filter(|v| v.get("ok").and_then(serde_json::Value::as_bool) == Some(true))
        .filter(|v| v.get("query") == Some(&want))
        .filter_map(|v| {
            let cores = u32::try_from(v.get("cores")?.as_u64()?).ok()?;
            let seconds = v.get("seconds")?.as_f64()?;
            Some(Point { cores, seconds })
        })
        .collect()
}
