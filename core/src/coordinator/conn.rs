//! One task per authenticated connection: a worker's (registration, then its messages in and
//! its outbox out) or a client's (one handler per request stream). The tasks only move frames
//! between the network and the state task; they decide nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use quinn::{RecvStream, SendStream, VarInt};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info};

use crate::protocol::{ClientRequest, CloseCode, ToClient, WorkerMsg};
use crate::transport::{AuthedConnection, FrameError, recv_frame, send_frame};

use super::dashboard::{self, Dashboards};
use super::state::{Event, Frame};

/// A worker must register this soon after the handshake.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);
/// A client must send its request this soon after opening a stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued to one worker before it counts as not reading (a plan, assignments, …).
pub(crate) const WORKER_OUTBOX: usize = 1024;
/// Snapshots go to a subscriber at most this often.
pub(crate) const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(250);
/// Progress messages buffered for a submitter; more are dropped (the next one comes soon).
const PROGRESS_BUFFER: usize = 16;

/// What connection tasks share.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub events: mpsc::Sender<Event>,
    pub next_worker: Arc<AtomicU64>,
    pub snapshots: watch::Receiver<Option<Frame>>,
    /// Subscribed clients; snapshots are only built while there are some.
    pub subscribers: Arc<AtomicUsize>,
    /// Where dashboard streams lead, and how many are open.
    pub dashboards: Dashboards,
}

fn is_violation(e: &FrameError) -> bool {
    matches!(
        e,
        FrameError::Oversize { .. } | FrameError::Decode(_) | FrameError::TrailingBytes(_)
    )
}

fn close(conn: &quinn::Connection, code: CloseCode, why: &str) {
    conn.close(VarInt::from_u32(code.code()), why.as_bytes());
}

/// A worker's connection, from registration to goodbye.
pub(crate) async fn worker(c: AuthedConnection, ctx: Ctx) {
    let AuthedConnection {
        connection,
        mut send,
        mut recv,
        peer,
    } = c;
    let reg =
        match tokio::time::timeout(REGISTER_TIMEOUT, recv_frame::<_, WorkerMsg>(&mut recv)).await {
            Ok(Ok(Some(WorkerMsg::Register(r)))) => r,
            other => {
                debug!(node = %peer.node, ?other, "worker did not register");
                close(
                    &connection,
                    CloseCode::ProtocolViolation,
                    "expected a registration",
                );
                return;
            }
        };
    let id = ctx.next_worker.fetch_add(1, Ordering::Relaxed);
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(WORKER_OUTBOX);
    let joined = Event::WorkerJoined {
        id,
        reg,
        out: out_tx,
        conn: Some(connection.clone()),
    };
    if ctx.events.send(joined).await.is_err() {
        return;
    }
    let events = ctx.events.clone();
    let reader = async {
        loop {
            match recv_frame::<_, WorkerMsg>(&mut recv).await {
                Ok(Some(msg)) => {
                    if events.send(Event::FromWorker { id, msg }).await.is_err() {
                        return "the coordinator is stopping".to_owned();
                    }
                }
                Ok(None) => return "the worker finished its stream".to_owned(),
                Err(e) => {
                    if is_violation(&e) {
                        close(&connection, CloseCode::ProtocolViolation, "bad frame");
                    }
                    return format!("connection: {e}");
                }
            }
        }
    };
    let writer = async {
        while let Some(f) = out_rx.recv().await {
            if let Err(e) = send.write_all(&f).await {
                return format!("cannot send: {e}");
            }
        }
        // The state let go of this worker (shutdown or lost): say goodbye properly.
        let _ = send.finish();
        "dismissed".to_owned()
    };
    let why = tokio::select! {
        w = reader => w,
        w = writer => {
            // Give the worker a moment to read the goodbye and close first.
            let _ = tokio::time::timeout(Duration::from_millis(500), connection.closed()).await;
            w
        }
    };
    let _ = ctx.events.send(Event::WorkerLeft { id, why }).await;
}

/// A client's connection: each request on its own stream, handled concurrently.
pub(crate) async fn client(c: AuthedConnection, ctx: Ctx) {
    let AuthedConnection {
        connection,
        send: _control_send,
        recv: _control_recv,
        peer,
    } = c;
    info!(node = %peer.node, remote = %connection.remote_address(), "client connected");
    let mut handlers = JoinSet::new();
    loop {
        tokio::select! {
            bi = connection.accept_bi() => match bi {
                Ok((s, r)) => {
                    handlers.spawn(request(s, r, ctx.clone()));
                }
                Err(_) => break,
            },
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
        }
    }
    debug!(node = %peer.node, "client gone");
    // Dropping `handlers` aborts whatever the client left running (e.g. a subscription).
}

/// Counts a subscriber for as long as it lives.
struct Subscribed(Arc<AtomicUsize>);

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn write(send: &mut SendStream, f: &[u8]) -> Result<(), FrameError> {
    Ok(AsyncWriteExt::write_all(send, f).await?)
}

async fn reply(send: &mut SendStream, msg: &ToClient) -> Result<(), FrameError> {
    send_frame(send, msg).await
}

async fn ask<T>(ctx: &Ctx, make: impl FnOnce(oneshot::Sender<T>) -> Event) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    ctx.events.send(make(tx)).await.ok()?;
    rx.await.ok()
}

async fn request(mut send: SendStream, mut recv: RecvStream, ctx: Ctx) {
    let req = match tokio::time::timeout(REQUEST_TIMEOUT, recv_frame::<_, ClientRequest>(&mut recv))
        .await
    {
        Ok(Ok(Some(r))) => r,
        Ok(Err(e)) if is_violation(&e) => {
            let _ = reply(
                &mut send,
                &ToClient::Refused {
                    message: format!("request not understood: {e}"),
                },
            )
            .await;
            let _ = send.finish();
            return;
        }
        _ => return,
    };
    if matches!(req, ClientRequest::Dashboard) {
        // The stream becomes the dashboard connection's bytes: no frames after the answer.
        return dashboard::serve(send, recv, &ctx.dashboards).await;
    }
    let _ = serve(req, &mut send, &ctx).await;
    let _ = send.finish();
    // Keep the stream until the client has read the answer (or gave up).
    let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
}

async fn serve(req: ClientRequest, send: &mut SendStream, ctx: &Ctx) -> Result<(), FrameError> {
    match req {
        ClientRequest::Snapshot => {
            if let Some(f) = ask(ctx, |reply| Event::SnapshotNow { reply }).await {
                write(send, &f).await?;
            }
        }
        ClientRequest::Subscribe => {
            ctx.subscribers.fetch_add(1, Ordering::Relaxed);
            let _guard = Subscribed(ctx.subscribers.clone());
            let mut rx = ctx.snapshots.clone();
            rx.mark_unchanged();
            if let Some(f) = ask(ctx, |reply| Event::SnapshotNow { reply }).await {
                write(send, &f).await?;
            }
            // The first change goes out at once; then at most one per interval.
            loop {
                if rx.changed().await.is_err() {
                    break;
                }
                let f = rx.borrow_and_update().clone();
                if let Some(f) = f {
                    write(send, &f).await?;
                }
                tokio::time::sleep(SNAPSHOT_INTERVAL).await;
            }
        }
        ClientRequest::Submit { .. } | ClientRequest::Attach { .. } => {
            let (ptx, mut prx) = mpsc::channel(PROGRESS_BUFFER);
            let (dtx, mut drx) = oneshot::channel();
            let ev = match req {
                ClientRequest::Submit { query, options } => Event::Submit {
                    query,
                    options,
                    progress: ptx,
                    done: dtx,
                },
                ClientRequest::Attach { query } => Event::Attach {
                    query,
                    progress: ptx,
                    done: dtx,
                },
                _ => return Ok(()),
            };
            if ctx.events.send(ev).await.is_err() {
                return reply(send, &refused("the coordinator is stopping")).await;
            }
            // Whatever ends this handler before the query's end (the client went away, the
            // stream broke) cancels the query: nobody is left to read its result.
            let mut owner = Submitted {
                events: ctx.events.clone(),
                query: None,
            };
            let mut progress_open = true;
            loop {
                tokio::select! {
                    biased;
                    p = prx.recv(), if progress_open => match p {
                        Some(m) => {
                            if let ToClient::Accepted { query, .. } = &m {
                                owner.query = Some(*query);
                            }
                            reply(send, &m).await?
                        }
                        None => progress_open = false,
                    },
                    d = &mut drx => {
                        owner.query = None;
                        // Progress sent before the end goes first.
                        while let Ok(m) = prx.try_recv() {
                            if !matches!(m, ToClient::Progress(_)) {
                                reply(send, &m).await?;
                            }
                        }
                        match d {
                            Ok(m) => reply_end(send, &m).await?,
                            Err(_) => reply(send, &refused("the coordinator stopped")).await?,
                        }
                        break;
                    }
                }
            }
        }
        ClientRequest::Cancel { query } => {
            let found = ask(ctx, |reply| Event::Cancel {
                query,
                reason: "a client asked".into(),
                reply: Some(reply),
            })
            .await;
            let answer = match found {
                Some(true) => ToClient::Cancelled { query },
                Some(false) => refused(&format!("query {query} is neither queued nor running")),
                None => refused("the coordinator is stopping"),
            };
            reply(send, &answer).await?;
        }
        ClientRequest::Drain { slurm_job_id } => {
            let ids = ask(ctx, |reply| Event::Drain {
                slurm_job_id,
                reply,
            })
            .await
            .unwrap_or_default();
            reply(send, &ToClient::Drained { workers: ids }).await?;
        }
        ClientRequest::Retire {
            slurm_job_id,
            count,
        } => {
            let ids = ask(ctx, |reply| Event::Retire {
                slurm_job_id,
                count,
                reply,
            })
            .await
            .unwrap_or_default();
            reply(send, &ToClient::Drained { workers: ids }).await?;
        }
        ClientRequest::Restrict(r) => {
            if let Some(r) = ask(ctx, |reply| Event::Restrict {
                restriction: r,
                reply,
            })
            .await
            {
                reply(send, &ToClient::Restricted(r)).await?;
            }
        }
        ClientRequest::HandOver => {
            if ask(ctx, |reply| Event::HandOver { reply }).await.is_some() {
                reply(send, &ToClient::HandingOver).await?;
            }
        }
        ClientRequest::Shutdown => {
            if ask(ctx, |reply| Event::Shutdown { reply }).await.is_some() {
                reply(send, &ToClient::ShuttingDown).await?;
            }
        }
        // Served by `request` before it gets here (the stream is not frames afterwards).
        ClientRequest::Dashboard => {}
        ClientRequest::DrainWorkers { workers } => {
            let ids = ask(ctx, |reply| Event::DrainWorkers { workers, reply })
                .await
                .unwrap_or_default();
            reply(send, &ToClient::Drained { workers: ids }).await?;
        }
    }
    Ok(())
}

/// Sends a query's end; a result too large for one message becomes a failure that says so,
/// rather than a stream that just ends.
async fn reply_end(send: &mut SendStream, m: &ToClient) -> Result<(), FrameError> {
    match reply(send, m).await {
        Err(FrameError::Oversize { len, max }) => {
            let ToClient::Done(r) = m else {
                return Err(FrameError::Oversize { len, max });
            };
            let failure = crate::protocol::QueryFailure {
                query: r.query,
                error: format!(
                    "the result is {:.0} MiB, over the {} MiB one message may carry: too many \
                     groups ({}); group by fewer or coarser columns",
                    len as f64 / f64::from(1 << 20),
                    max >> 20,
                    r.result.0.groups.len()
                ),
                files: vec![],
                seconds: r.seconds,
            };
            reply(send, &ToClient::Failed(failure)).await
        }
        other => other,
    }
}

/// A submitted query whose submitter is still listening; dropped before the query's end, it
/// cancels the query.
struct Submitted {
    events: mpsc::Sender<Event>,
    query: Option<crate::protocol::QueryId>,
}

impl Drop for Submitted {
    fn drop(&mut self) {
        if let Some(query) = self.query.take() {
            // A full queue only delays it: the state also notices the closed answer channel
            // on its next tick.
            let _ = self.events.try_send(Event::Cancel {
                query,
                reason: "the client that submitted it went away".into(),
                reply: None,
            });
        }
    }
}

fn refused(message: &str) -> ToClient {
    ToClient::Refused {
        message: message.to_owned(),
    }
}
