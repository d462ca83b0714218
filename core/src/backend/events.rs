//! Progress as data: what a backend is doing, sent over a bounded channel. The CLI prints
//! events (a line in words, or one JSON object per line with `--json`); the TUI turns them into
//! messages. Nothing under `core/` prints.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::model::JobId;

/// One step of starting, following, scaling or stopping a cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A SLURM job was submitted.
    Submitted { job: JobId, workers: u32 },
    /// Agent processes were started on this machine (coordinator and workers).
    Started { processes: usize },
    /// The job waits in the queue; `words` says why in plain words.
    Pending {
        job: JobId,
        reason: String,
        words: String,
        never_starts: bool,
    },
    /// SLURM's estimate of when a pending job starts.
    Estimate { start: String, nodes: String },
    /// The job runs (on these nodes).
    Running { job: Option<JobId>, nodes: String },
    /// Something is awaited that has no other event (e.g. the coordinator to listen).
    Waiting { what: String },
    /// The coordinator listens at this address.
    Listening { address: String },
    /// Workers connected to the coordinator, of those asked for.
    Workers { connected: u32, asked: u32 },
    /// A transient failure (e.g. the SLURM controller restarting); tried again after `after`.
    Retrying {
        what: String,
        error: String,
        #[serde(rename = "after_ms", serialize_with = "millis")]
        after: Duration,
    },
    /// A step of scaling or stopping, in words (drained, cancelled, signalled).
    Step { words: String },
    /// The cluster ended; how, in words.
    Ended { how: String },
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Event {
    /// The event as a person reads it, one line.
    pub fn words(&self) -> String {
        match self {
            Event::Submitted { job, workers } => format!(
                "submitted job {job} ({})",
                crate::text::count(*workers, "worker")
            ),
            Event::Started { processes } => format!(
                "started {processes} process{} on this machine",
                if *processes == 1 { "" } else { "es" }
            ),
            Event::Pending { words, .. } => words.clone(),
            Event::Estimate { start, nodes } => {
                format!("SLURM estimates it starts at {start} on {nodes}")
            }
            Event::Running {
                job: Some(job),
                nodes,
            } => format!("running on {nodes} (job {job})"),
            Event::Running { job: None, nodes } => format!("running on {nodes}"),
            Event::Waiting { what } => format!("waiting for {what}"),
            Event::Listening { address } => format!("the coordinator listens on {address}"),
            Event::Workers { connected, asked } => format!("workers {connected}/{asked} connected"),
            Event::Retrying { what, error, after } => {
                format!("{what}: {error}; retrying in {:.1} s", after.as_secs_f64())
            }
            Event::Step { words } => words.clone(),
            Event::Ended { how } => format!("ended: {how}"),
        }
    }
}

/// Where a backend sends its events. Sending waits while the channel is full (the consumer
/// sets the pace); a consumer that went away is not an error — the work goes on unobserved.
#[derive(Debug, Clone, Default)]
pub struct Events {
    tx: Option<mpsc::Sender<Event>>,
}

impl Events {
    /// Events for a receiver: `capacity` of them may wait.
    pub fn channel(capacity: usize) -> (Events, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Events { tx: Some(tx) }, rx)
    }

    /// Nobody listens (tests, callers that only want the result).
    pub fn none() -> Events {
        Events { tx: None }
    }

    pub async fn emit(&self, event: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_words_and_as_json() {
        let e = Event::Retrying {
            what: "squeue".into(),
            error: "the SLURM controller is not reachable".into(),
            after: Duration::from_millis(1500),
        };
        assert_eq!(
            e.words(),
            "squeue: the SLURM controller is not reachable; retrying in 1.5 s"
        );
        let json = serde_json::to_value(&e).expect("json");
        assert_eq!(json["event"], "retrying");
        assert_eq!(json["after_ms"], 1500);
        assert_eq!(
            Event::Workers {
                connected: 1,
                asked: 8
            }
            .words(),
            "workers 1/8 connected"
        );
        assert_eq!(
            Event::Submitted {
                job: JobId(7),
                workers: 1
            }
            .words(),
            "submitted job 7 (1 worker)"
        );
    }

    #[tokio::test]
    async fn a_consumer_that_left_does_not_stop_the_work() {
        let (events, rx) = Events::channel(1);
        drop(rx);
        events
            .emit(Event::Step {
                words: "still fine".into(),
            })
            .await;
        Events::none().emit(Event::Ended { how: "x".into() }).await;
    }
}
