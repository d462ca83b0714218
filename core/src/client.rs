//! The client API of the CLI (and later the TUI): connect to a cluster's coordinator, watch
//! snapshots, run queries, drain workers, restrict a query's resources, shut the cluster down.
//!
//! Each request runs on its own QUIC stream (see [`crate::protocol`]). Long-lived answers — a
//! subscription, a query's progress — are read by a task owned by the returned handle (reading
//! frames is not cancel-safe, so a `select!` must never drive it directly) into a small bounded
//! channel; dropping the handle stops the task and the stream.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quinn::{RecvStream, SendStream};
use tokio::sync::mpsc;

use crate::aggregate::{Query, QueryResult};
use crate::cluster_dir::ClusterDir;
use crate::protocol::{
    ClientRequest, CloseCode, Hello, QueryFailure, QueryId, QueryOptions, QueryProgress,
    QueryReport, Restriction, Role, Snapshot, ToClient, WorkerId,
};
use crate::tasks::AbortOnDrop;
use crate::transport::{ConnectError, FrameError, connect_cluster, recv_frame, send_frame};

/// How long a simple request (snapshot, drain, …) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("talking to the coordinator: {0}")]
    Frame(#[from] FrameError),
    #[error("the coordinator closed the connection: {0}")]
    Closed(String),
    #[error("the coordinator did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the coordinator refused the request: {0}")]
    Refused(String),
    #[error("unexpected answer from the coordinator: {0}")]
    Unexpected(String),
    #[error("{error}")]
    QueryFailed { error: String, files: Vec<PathBuf> },
    #[error("{0}")]
    Input(String),
}

/// A connection to a cluster's coordinator.
pub struct ClusterClient {
    connection: quinn::Connection,
    // The handshake's control stream stays open for the life of the connection.
    _control: (SendStream, RecvStream),
    coordinator: Hello,
    dir: ClusterDir,
}

/// How long a query's follower looks for a coordinator that took over (restarted, or a
/// replacement head job) after its stream broke.
pub const REATTACH_FOR: Duration = Duration::from_secs(120);

impl Drop for ClusterClient {
    fn drop(&mut self) {
        self.connection
            .close(quinn::VarInt::from_u32(CloseCode::Done.code()), b"");
    }
}

fn closed(conn: &quinn::Connection, e: FrameError) -> ClientError {
    match conn.close_reason() {
        Some(r) => ClientError::Closed(r.to_string()),
        None => ClientError::Frame(e),
    }
}

impl ClusterClient {
    /// Connects to the coordinator named in `dir`'s `coordinator.json` and authenticates.
    pub async fn connect(dir: &ClusterDir) -> Result<ClusterClient, ClientError> {
        let c = connect_cluster(dir, Role::Client).await?;
        Ok(ClusterClient {
            connection: c.connection,
            _control: (c.send, c.recv),
            coordinator: c.peer,
            dir: dir.clone(),
        })
    }

    /// The coordinator's hello (node, version).
    pub fn coordinator(&self) -> &Hello {
        &self.coordinator
    }

    async fn open(&self, req: &ClientRequest) -> Result<RecvStream, ClientError> {
        let (mut send, recv) = self
            .connection
            .open_bi()
            .await
            .map_err(|e| ClientError::Closed(e.to_string()))?;
        send_frame(&mut send, req)
            .await
            .map_err(|e| closed(&self.connection, e))?;
        let _ = send.finish();
        Ok(recv)
    }

    async fn one(&self, req: ClientRequest) -> Result<ToClient, ClientError> {
        let mut recv = self.open(&req).await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, recv_frame::<_, ToClient>(&mut recv)).await {
            Ok(Ok(Some(ToClient::Refused { message }))) => Err(ClientError::Refused(message)),
            Ok(Ok(Some(m))) => Ok(m),
            Ok(Ok(None)) => Err(ClientError::Closed("the request stream ended".into())),
            Ok(Err(e)) => Err(closed(&self.connection, e)),
            Err(_) => Err(ClientError::Timeout(REQUEST_TIMEOUT)),
        }
    }

    /// The cluster now.
    pub async fn snapshot(&self) -> Result<Snapshot, ClientError> {
        match self.one(ClientRequest::Snapshot).await? {
            ToClient::Snapshot(s) => Ok(*s),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Snapshots as the cluster changes, at most 4 a second.
    pub async fn subscribe(&self) -> Result<Subscription, ClientError> {
        let mut recv = self.open(&ClientRequest::Subscribe).await?;
        let (tx, rx) = mpsc::channel(2);
        let conn = self.connection.clone();
        let task = AbortOnDrop::spawn(async move {
            loop {
                let item = match recv_frame::<_, ToClient>(&mut recv).await {
                    Ok(Some(ToClient::Snapshot(s))) => Ok(*s),
                    Ok(Some(other)) => Err(ClientError::Unexpected(format!("{other:?}"))),
                    Ok(None) => Err(ClientError::Closed("the subscription ended".into())),
                    Err(e) => Err(closed(&conn, e)),
                };
                let end = item.is_err();
                if tx.send(item).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Subscription { rx, _task: task })
    }

    /// Submits a query; the handle yields its progress and its end.
    pub async fn submit(
        &self,
        query: Query,
        options: QueryOptions,
    ) -> Result<QueryHandle, ClientError> {
        let mut recv = self.open(&ClientRequest::Submit { query, options }).await?;
        let (id, queued_behind) =
            match tokio::time::timeout(REQUEST_TIMEOUT, recv_frame::<_, ToClient>(&mut recv)).await
            {
                Ok(Ok(Some(ToClient::Accepted {
                    query,
                    queued_behind,
                }))) => (query, queued_behind),
                Ok(Ok(Some(ToClient::Refused { message }))) => {
                    return Err(ClientError::Refused(message));
                }
                Ok(Ok(Some(other))) => return Err(ClientError::Unexpected(format!("{other:?}"))),
                Ok(Ok(None)) => return Err(ClientError::Closed("the query stream ended".into())),
                Ok(Err(e)) => return Err(closed(&self.connection, e)),
                Err(_) => return Err(ClientError::Timeout(REQUEST_TIMEOUT)),
            };
        let (tx, rx) = mpsc::channel(8);
        let mut conn = self.connection.clone();
        let dir = self.dir.clone();
        let task = AbortOnDrop::spawn(async move {
            // A coordinator taken over by another keeps the query; this holds the new link.
            let mut _client: Option<ClusterClient> = None;
            loop {
                let ev = match recv_frame::<_, ToClient>(&mut recv).await {
                    Ok(Some(ToClient::Progress(p))) => QueryEvent::Progress(p),
                    Ok(Some(ToClient::Done(r))) => QueryEvent::Done(r),
                    Ok(Some(ToClient::Failed(f))) => QueryEvent::Failed(f),
                    Ok(Some(ToClient::Refused { message })) => {
                        QueryEvent::Lost(ClientError::Refused(message).to_string())
                    }
                    Ok(Some(other)) => QueryEvent::Lost(format!("unexpected answer: {other:?}")),
                    Ok(None) => QueryEvent::Lost("the coordinator ended the query stream".into()),
                    Err(e) => {
                        let why = closed(&conn, e).to_string();
                        match reattach(&dir, id).await {
                            Ok((c, r)) => {
                                conn = c.connection.clone();
                                _client = Some(c);
                                recv = r;
                                continue;
                            }
                            Err(e) => QueryEvent::Lost(format!("{why}; {e}")),
                        }
                    }
                };
                let end = !matches!(ev, QueryEvent::Progress(_));
                if tx.send(ev).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(QueryHandle {
            id,
            queued_behind,
            rx,
            _task: task,
        })
    }

    /// Stops giving work to the workers of SLURM job `slurm_job_id`; returns them.
    pub async fn drain(&self, slurm_job_id: u64) -> Result<Vec<WorkerId>, ClientError> {
        match self.one(ClientRequest::Drain { slurm_job_id }).await? {
            ToClient::Drained { workers } => Ok(workers),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Retires the newest `count` workers of SLURM job `slurm_job_id`: they get nothing new
    /// and exit once their assigned tasks are done. Returns them.
    pub async fn retire(
        &self,
        slurm_job_id: u64,
        count: u32,
    ) -> Result<Vec<WorkerId>, ClientError> {
        match self
            .one(ClientRequest::Retire {
                slurm_job_id,
                count,
            })
            .await?
        {
            ToClient::Drained { workers } => Ok(workers),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Drains these workers (a local cluster's scale-down, before their processes are
    /// stopped): they get nothing new. Returns those the coordinator knew.
    pub async fn drain_workers(&self, workers: &[WorkerId]) -> Result<Vec<WorkerId>, ClientError> {
        match self
            .one(ClientRequest::DrainWorkers {
                workers: workers.to_vec(),
            })
            .await?
        {
            ToClient::Drained { workers } => Ok(workers),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Limits the workers/cores the next assignments may use; returns the limits in force.
    pub async fn restrict(&self, r: Restriction) -> Result<Restriction, ClientError> {
        match self.one(ClientRequest::Restrict(r)).await? {
            ToClient::Restricted(r) => Ok(r),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Cancels a queued or running query: every worker stops it and the next query starts.
    /// Returns false when the query is neither queued nor running (it ended already).
    pub async fn cancel(&self, query: QueryId) -> Result<bool, ClientError> {
        match self.one(ClientRequest::Cancel { query }).await {
            Ok(ToClient::Cancelled { .. }) => Ok(true),
            Err(ClientError::Refused(_)) => Ok(false),
            Ok(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
            Err(e) => Err(e),
        }
    }

    /// Opens a stream to the cluster's dashboard (see [`ClientRequest::Dashboard`]): once this
    /// returns, the streams carry the dashboard's TCP bytes. Refused (with the coordinator's
    /// words) when the cluster has no dashboard or carries too many streams already.
    pub async fn open_dashboard(&self) -> Result<(SendStream, RecvStream), ClientError> {
        let (mut send, mut recv) = self
            .connection
            .open_bi()
            .await
            .map_err(|e| ClientError::Closed(e.to_string()))?;
        send_frame(&mut send, &ClientRequest::Dashboard)
            .await
            .map_err(|e| closed(&self.connection, e))?;
        match tokio::time::timeout(REQUEST_TIMEOUT, recv_frame::<_, ToClient>(&mut recv)).await {
            Ok(Ok(Some(ToClient::DashboardOpen))) => Ok((send, recv)),
            Ok(Ok(Some(ToClient::Refused { message }))) => Err(ClientError::Refused(message)),
            Ok(Ok(Some(other))) => Err(ClientError::Unexpected(format!("{other:?}"))),
            Ok(Ok(None)) => Err(ClientError::Closed("the dashboard stream ended".into())),
            Ok(Err(e)) => Err(closed(&self.connection, e)),
            Err(_) => Err(ClientError::Timeout(REQUEST_TIMEOUT)),
        }
    }

    /// Resolves when the connection to the coordinator is gone, with why.
    pub async fn closed(&self) -> String {
        self.connection.closed().await.to_string()
    }

    /// Asks this coordinator to hand over to the caller (a replacement coordinator).
    pub async fn hand_over(&self) -> Result<(), ClientError> {
        match self.one(ClientRequest::HandOver).await {
            Ok(ToClient::HandingOver) => Ok(()),
            // It may close its endpoint before its answer arrives.
            Err(ClientError::Closed(_)) | Err(ClientError::Frame(_)) => Ok(()),
            Ok(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
            Err(e) => Err(e),
        }
    }

    /// Shuts the cluster down (workers, then the coordinator).
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        match self.one(ClientRequest::Shutdown).await {
            Ok(ToClient::ShuttingDown) => Ok(()),
            // The coordinator may close the connection before its answer arrives.
            Err(ClientError::Closed(_)) | Err(ClientError::Frame(_)) => Ok(()),
            Ok(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
            Err(e) => Err(e),
        }
    }
}

/// Follows query `id` again on whatever coordinator `dir` names now, for at most
/// [`REATTACH_FOR`]: the coordinator that ran it may have been restarted or replaced.
async fn reattach(dir: &ClusterDir, id: QueryId) -> Result<(ClusterClient, RecvStream), String> {
    let deadline = tokio::time::Instant::now() + REATTACH_FOR;
    let mut pause = Duration::from_millis(250);
    let mut last = String::from("no coordinator yet");
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        let c = match ClusterClient::connect(dir).await {
            Ok(c) => c,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let mut recv = match c.open(&ClientRequest::Attach { query: id }).await {
            Ok(r) => r,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, recv_frame::<_, ToClient>(&mut recv)).await {
            Ok(Ok(Some(ToClient::Accepted { .. }))) => return Ok((c, recv)),
            Ok(Ok(Some(ToClient::Refused { message }))) => {
                return Err(format!("the coordinator that took over says: {message}"));
            }
            other => last = format!("{other:?}"),
        }
    }
    Err(format!(
        "no coordinator took the query over within {} s (last: {last})",
        REATTACH_FOR.as_secs()
    ))
}

/// A subscription to snapshots; dropping it ends it.
pub struct Subscription {
    rx: mpsc::Receiver<Result<Snapshot, ClientError>>,
    _task: AbortOnDrop<()>,
}

impl Subscription {
    /// The next snapshot; an error ends the subscription (`None` after it).
    pub async fn next(&mut self) -> Option<Result<Snapshot, ClientError>> {
        self.rx.recv().await
    }

    /// The underlying receiver, to `select!` on (cancel-safe).
    pub fn receiver(&mut self) -> &mut mpsc::Receiver<Result<Snapshot, ClientError>> {
        &mut self.rx
    }
}

/// What a submitted query says.
#[derive(Debug)]
pub enum QueryEvent {
    Progress(QueryProgress),
    Done(Box<QueryReport>),
    Failed(QueryFailure),
    /// The connection or the stream broke before the query ended.
    Lost(String),
}

/// A submitted query. Dropping it (or the client) before its end cancels it: nobody is left
/// to read its result.
pub struct QueryHandle {
    pub id: QueryId,
    /// Queries ahead of it when it was accepted.
    pub queued_behind: u32,
    rx: mpsc::Receiver<QueryEvent>,
    _task: AbortOnDrop<()>,
}

impl QueryHandle {
    /// The next event; `None` after the last one.
    pub async fn next(&mut self) -> Option<QueryEvent> {
        self.rx.recv().await
    }

    /// Waits for the end, ignoring progress.
    pub async fn wait(mut self) -> Result<QueryReport, ClientError> {
        while let Some(ev) = self.rx.recv().await {
            match ev {
                QueryEvent::Progress(_) => {}
                QueryEvent::Done(r) => return Ok(*r),
                QueryEvent::Failed(f) => {
                    return Err(ClientError::QueryFailed {
                        error: f.error,
                        files: f.files,
                    });
                }
                QueryEvent::Lost(why) => return Err(ClientError::Closed(why)),
            }
        }
        Err(ClientError::Closed("the query stream ended".into()))
    }
}

impl QueryReport {
    /// The query's result.
    pub fn result(&self) -> &QueryResult {
        &self.result.0
    }
}

/// Makes a query's inputs independent of this process's working directory: relative paths
/// become absolute, globs are expanded here (sorted, like the engine) into absolute paths. The
/// coordinator and workers may run elsewhere (another node, another directory).
pub fn resolve_inputs(inputs: &[String], cwd: &Path) -> Result<Vec<String>, ClientError> {
    let abs = |p: &Path| -> String {
        let p = if p.is_absolute() {
            p.to_owned()
        } else {
            cwd.join(p)
        };
        p.to_string_lossy().into_owned()
    };
    let mut out = Vec::new();
    for input in inputs {
        // The engine's rule (see `is_glob_pattern`): glob characters make a pattern, always.
        if !crate::aggregate::is_glob_pattern(input) {
            out.push(abs(Path::new(input)));
            continue;
        }
        let pattern = abs(Path::new(input));
        let matches = glob::glob(&pattern)
            .map_err(|e| ClientError::Input(format!("invalid glob pattern {input:?}: {e}")))?;
        let mut n = 0;
        for m in matches {
            let p = m.map_err(|e| ClientError::Input(format!("{e}")))?;
            out.push(p.to_string_lossy().into_owned());
            n += 1;
        }
        if n == 0 {
            return Err(ClientError::Input(format!(
                "glob {input:?} matches no file"
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_become_absolute_and_globs_expand() {
        let d = tempfile::tempdir().expect("tmp");
        for n in ["b.csv", "a.csv", "c.txt"] {
            std::fs::write(d.path().join(n), "x\n").expect("write");
        }
        let got = resolve_inputs(&["*.csv".into(), "c.txt".into()], d.path()).expect("resolve");
        let want: Vec<String> = ["a.csv", "b.csv", "c.txt"]
            .iter()
            .map(|n| d.path().join(n).to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, want);
        let abs = d.path().join("a.csv").to_string_lossy().into_owned();
        assert_eq!(
            resolve_inputs(std::slice::from_ref(&abs), Path::new("/elsewhere")).expect("abs"),
            vec![abs]
        );
        assert!(resolve_inputs(&["*.parquet".into()], d.path()).is_err());
        // A file literally named `*.csv` does not replace the glob: it is one of its matches;
        // bracketed, the name means that file alone.
        std::fs::write(d.path().join("*.csv"), "x\n").expect("write");
        let got = resolve_inputs(&["*.csv".into()], d.path()).expect("resolve");
        let names: Vec<String> = got
            .iter()
            .map(|p| p.rsplit('/').next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(names, ["*.csv", "a.csv", "b.csv"]);
        let got = resolve_inputs(&["[*].csv".into()], d.path()).expect("resolve");
        assert_eq!(
            got,
            vec![d.path().join("*.csv").to_string_lossy().into_owned()]
        );
        // A missing plain path is passed on: the coordinator names it.
        assert_eq!(
            resolve_inputs(&["missing.csv".into()], d.path()).expect("plain"),
            vec![d.path().join("missing.csv").to_string_lossy().into_owned()]
        );
    }
}
