//! How the CLI shows a backend's progress ([`corral_core::backend::Event`]): one line in
//! words per event on stderr (stdout stays for data), or one JSON object per line with
//! `--json`; the same line twice in a row is said once. Also where the CLI gets its backends.

use corral_core::backend::{Backends, Event, Events};
use corral_core::config::Config;
use tokio::sync::mpsc;

/// How many events may wait for the printer.
const QUEUE: usize = 64;

/// The backends of this process: SLURM as the config describes it (`[slurm] api`: the
/// command-line tools or slurmrestd), and the local ones.
pub fn backends(config: &Config) -> Backends {
    Backends::new(corral_core::slurm::client::from_config(&config.slurm))
}

/// Prints events as they come, until every sender is gone.
pub struct Printer {
    events: Events,
    task: tokio::task::JoinHandle<()>,
}

impl Printer {
    /// `prefix` starts each line (e.g. `corral batch: `); `json`: one JSON object per line.
    pub fn start(prefix: &str, json: bool) -> Printer {
        let (events, rx) = Events::channel(QUEUE);
        let prefix = prefix.to_string();
        let task = tokio::spawn(print_all(rx, prefix, json));
        Printer { events, task }
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Waits until everything sent so far is printed.
    pub async fn finish(self) {
        drop(self.events);
        let _ = self.task.await;
    }
}

async fn print_all(mut rx: mpsc::Receiver<Event>, prefix: String, json: bool) {
    let mut last = String::new();
    while let Some(event) = rx.recv().await {
        let line = if json {
            serde_json::to_string(&event).unwrap_or_default()
        } else {
            format!("{prefix}{}", event.words())
        };
        if line != last {
            eprintln!("{line}");
            last = line;
        }
    }
}
