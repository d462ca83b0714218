//! Mail notifications while nobody watches (`[notify] mail` was set when the cluster
//! started): each tick's look goes through a [`Detector`]; a notice not yet claimed for mail
//! (by this or any other process, see [`crate::notify::claim`]) is mailed, and the decisions
//! log says so (or why it could not be).

use super::{Policy, Tick};
use crate::backend::{BackendError, Observed, State};
use crate::config::Config;
use crate::notify::mail::Mailer;
use crate::notify::{self, Channel, Detector};
use crate::slurm::template::JobRole;

pub struct Notify {
    detector: Detector,
    mailer: Result<Option<Mailer>, String>,
    said_no_mailer: bool,
}

impl Notify {
    /// Mail as the config says (read now: the supervisor runs with the user's config).
    pub fn new() -> Notify {
        let (mailer, minutes) = match Config::load() {
            Ok(c) => (Mailer::from_config(&c.notify), c.notify.walltime_minutes),
            Err(e) => (Err(e.to_string()), 10),
        };
        Notify {
            detector: Detector::new(minutes),
            mailer,
            said_no_mailer: false,
        }
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

/// What the detector needs of the backend's view, from the tick's own look (no second
/// squeue): the head job's state and time left, the workers asked for, every job's view.
fn observed(t: &Tick<'_>) -> Observed {
    let head = t
        .jobs
        .jobs
        .iter()
        .filter(|j| j.role == JobRole::Head)
        .filter_map(|j| t.views.get(&j.id))
        .find(|v| v.is_active());
    let state = match head.map(|v| v.state.as_str()) {
        Some("PENDING") => State::Pending,
        Some(_) => State::Running,
        None => State::Unknown,
    };
    Observed {
        state,
        detail: String::new(),
        asked_workers: t.jobs.asked_workers(),
        left_secs: head.and_then(|v| v.left_secs),
        jobs: t
            .jobs
            .jobs
            .iter()
            .filter_map(|j| t.views.get(&j.id).cloned())
            .collect(),
        core_hours: 0.0,
    }
}

#[async_trait::async_trait]
impl Policy for Notify {
    fn name(&self) -> &'static str {
        "notify"
    }

    async fn tick(&mut self, t: &mut Tick<'_>) -> Result<(), BackendError> {
        let o = observed(t);
        let notices = self
            .detector
            .detect(&t.cluster.record.name, Some(&o), t.snapshot.as_ref());
        let mailer = match &self.mailer {
            Ok(Some(m)) => m.clone(),
            Ok(None) => return Ok(()),
            Err(e) => {
                if !self.said_no_mailer {
                    self.said_no_mailer = true;
                    t.decide("no mail will be sent", e.clone());
                }
                return Ok(());
            }
        };
        for n in notices {
            let claimed = notify::claim(t.cluster.dir.path(), Channel::Mail, &n)
                .map_err(|e| BackendError::Failed(format!("cannot record a notification: {e}")))?;
            if !claimed {
                continue;
            }
            match mailer.send(&n).await {
                Ok(()) => t.decide(format!("mailed {}: {}", mailer.to, n.title), n.body),
                Err(e) => t.decide(format!("could not mail {}: {}", mailer.to, n.title), e),
            }
        }
        Ok(())
    }
}
