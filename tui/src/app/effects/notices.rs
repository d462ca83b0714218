//! What the attached cluster's watch adds for notifications and adaptive scaling:
//! - notices (`corral_core::notify`) detected from each look and snapshot, each claimed for
//!   the terminal channel (so another TUI, or this one restarted, does not repeat it) and
//!   posted as `Msg::Notice` with its bell and OSC 9/777 escapes;
//! - the adaptive-scaling range and latest decision from the supervisor's decisions log.

use std::collections::HashSet;
use std::path::PathBuf;

use corral_core::backend::Observed;
use corral_core::cluster_record::Backend as RecordBackend;
use corral_core::notify::{self, Channel, Detector};
use corral_core::protocol::Snapshot;

use super::super::msg::Msg;
use super::super::view::AdaptView;
use super::Ctx;
use super::seen::Seen;

/// Decisions read from the log for the header (the latest) and its count.
const DECISIONS_READ: usize = 1000;

pub(super) struct Notices {
    name: String,
    dir: PathBuf,
    detector: Detector,
    on: bool,
    /// Keys this watch already settled (claimed or found claimed): no file check again.
    settled: HashSet<String>,
}

impl Notices {
    pub(super) fn new(ctx: &Ctx, name: &str) -> Notices {
        Notices {
            name: name.to_string(),
            dir: ctx.clusters.join(name),
            detector: Detector::new(ctx.notify.walltime_minutes),
            on: ctx.notify.terminal,
            settled: HashSet::new(),
        }
    }

    /// The notices of one look that this terminal is first to claim, as messages.
    pub(super) fn look(
        &mut self,
        observed: Option<&Observed>,
        snapshot: Option<&Snapshot>,
    ) -> Vec<Msg> {
        if !self.on {
            return Vec::new();
        }
        let mut out = Vec::new();
        for n in self.detector.detect(&self.name, observed, snapshot) {
            if !self.settled.insert(n.key.clone()) {
                continue;
            }
            match notify::claim(&self.dir, Channel::Terminal, &n) {
                Ok(true) => out.push(Msg::Notice {
                    name: self.name.clone(),
                    alert: notify::terminal::sequence(&n),
                    title: n.title,
                    body: n.body,
                }),
                Ok(false) => {}
                Err(e) => tracing::warn!("cannot record notification {}: {e}", n.key),
            }
        }
        out
    }
}

/// The attached cluster's adaptive scaling as the header shows it.
pub(super) fn adapt_view(seen: &Seen) -> Option<AdaptView> {
    let RecordBackend::Slurm { spec, .. } = &seen.cluster.record.backend else {
        return None;
    };
    let setting = spec.supervise.adapt?;
    let decisions: Vec<_> = corral_core::supervisor::decisions(&seen.cluster.dir, DECISIONS_READ)
        .into_iter()
        .filter(|d| d.policy == "adapt")
        .collect();
    Some(AdaptView {
        range: setting.range.to_string(),
        decisions: decisions.len(),
        last: decisions
            .last()
            .map(|d| (d.at_unix, format!("{} ({})", d.what, d.why))),
    })
}
