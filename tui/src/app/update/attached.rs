//! Pending and Dashboard, the two screens of the attached cluster: its job's state, its
//! snapshots, and the keys that act on it (scale, cancel, logs, query, sweep, panes).

use super::super::keymap::Action;
use super::super::msg::Cmd;
use super::super::query_form::QueryForm;
use super::super::state::{
    App, PANES, Pane, Popup, SORT_KEYS, Screen, Severity, THROUGHPUT_SAMPLES,
};
use super::super::view::{CancelReport, ClusterSnapshot, ClusterState, JobStatusView, WorkerView};

/// The workers of a cluster that has ended: none is alive any more. Those still alive ended
/// with it (listed as left, unless the cluster `failed`); those already lost stay lost.
fn end_workers(workers: &mut [WorkerView], failed: bool) {
    for w in workers.iter_mut().filter(|w| w.alive) {
        w.alive = false;
        w.left = !failed;
    }
}

impl App {
    pub(super) fn on_job_status(&mut self, name: &str, status: JobStatusView) -> Vec<Cmd> {
        if let Some(a) = self.attached_mut(name) {
            if !matches!(status.state.as_str(), "PENDING" | "RUNNING" | "CONFIGURING")
                && a.ended.is_none()
                && !a.ending
            {
                a.ended = Some(format!("job {} is {}", status.job_id, status.state));
            }
            let waits = matches!(status.state.as_str(), "PENDING" | "CONFIGURING")
                && !a.snapshot.as_ref().is_some_and(|s| s.authenticated);
            a.job = Some(status);
            // Attached without knowing the state (`corral attach`, `corral up`): a job
            // that still waits belongs on Pending, which opens the dashboard by itself.
            if waits && self.screen() == Screen::Dashboard {
                self.replace_top(Screen::Pending);
            }
        }
        Vec::new()
    }

    pub(super) fn on_snapshot(&mut self, mut snap: ClusterSnapshot) -> Vec<Cmd> {
        let name = snap.name.clone();
        let pending = self.screen() == Screen::Pending;
        let Some(a) = self.attached_mut(&name) else {
            return Vec::new();
        };
        if matches!(snap.state, ClusterState::Ended | ClusterState::Failed) {
            // No coordinator lists the workers of an ended cluster: keep the last
            // ones seen, none of them alive any more.
            if snap.workers.is_empty()
                && let Some(last) = &a.snapshot
            {
                snap.workers = last.workers.clone();
            }
            end_workers(&mut snap.workers, snap.state == ClusterState::Failed);
        }
        a.throughput.push(snap.bytes_per_s().max(0.0) as u64);
        if a.throughput.len() > THROUGHPUT_SAMPLES {
            let extra = a.throughput.len() - THROUGHPUT_SAMPLES;
            a.throughput.drain(..extra);
        }
        if snap.state == ClusterState::Ended && a.ended.is_none() {
            a.ended = Some("the cluster has ended".into());
        }
        if let Some(q) = &snap.query {
            a.progress = Some(q.clone());
        }
        a.lost = None;
        a.selected = a.selected.min(snap.workers.len().saturating_sub(1));
        let running = snap.state == ClusterState::Running;
        a.snapshot = Some(snap);
        if pending && running {
            self.replace_top(Screen::Dashboard);
        }
        Vec::new()
    }

    /// Keys of Pending and Dashboard (both show the attached cluster).
    pub(super) fn attached_action(&mut self, action: Action) -> Vec<Cmd> {
        let Some(a) = self.attached.as_mut() else {
            return self.detach();
        };
        match action {
            Action::Detach | Action::Back => self.detach(),
            Action::Dashboard => {
                self.replace_top(Screen::Dashboard);
                Vec::new()
            }
            Action::Cancel => {
                if a.ended.is_some() {
                    self.flash = Some((format!("{} has already ended", a.name), Severity::Info));
                } else {
                    self.popup = Some(Popup::ConfirmCancel {
                        name: a.name.clone(),
                        core_hours: a.snapshot.as_ref().and_then(|s| s.core_hours_used),
                    });
                }
                Vec::new()
            }
            Action::Logs => {
                let name = a.name.clone();
                self.popup = Some(Popup::Logs {
                    lines: Vec::new(),
                    scroll: 0,
                    loading: true,
                });
                vec![Cmd::ReadLogs { name }]
            }
            Action::Query => {
                let mut form = a
                    .last_query
                    .as_ref()
                    .map_or_else(QueryForm::default, QueryForm::from_query);
                form.history = self.sql_history.clone();
                self.popup = Some(Popup::QueryForm(form));
                Vec::new()
            }
            Action::Sweep => {
                if a.last_query.is_none() {
                    self.flash = Some((
                        "run a query first (r): the sweep repeats it on 1, 2, 4, … cores".into(),
                        Severity::Info,
                    ));
                    return Vec::new();
                }
                self.nav.push(Screen::Scaling);
                self.start_sweep()
            }
            Action::ScaleUp | Action::ScaleDown => {
                self.popup = Some(Popup::AskWorkers {
                    add: action == Action::ScaleUp,
                    input: String::new(),
                });
                Vec::new()
            }
            Action::NextPane | Action::PrevPane => {
                let i = PANES.iter().position(|p| *p == a.focus).unwrap_or(0);
                let n = PANES.len();
                let next = if action == Action::NextPane {
                    i + 1
                } else {
                    i + n - 1
                };
                a.focus = PANES[next % n];
                Vec::new()
            }
            Action::Up | Action::Down | Action::Top | Action::Bottom => {
                match a.focus {
                    Pane::Workers => {
                        let len = a.snapshot.as_ref().map_or(0, |s| s.workers.len());
                        Self::move_sel(&mut a.selected, len, action);
                    }
                    Pane::Result => {
                        let len = match &a.result {
                            Some(Ok(r)) => r.rows.len(),
                            _ => 0,
                        };
                        Self::move_sel(&mut a.result_scroll, len, action);
                    }
                    Pane::Tasks => {}
                }
                Vec::new()
            }
            Action::SortNext => {
                let i = SORT_KEYS.iter().position(|k| *k == a.sort).unwrap_or(0);
                a.sort = SORT_KEYS[(i + 1) % SORT_KEYS.len()];
                Vec::new()
            }
            Action::SortReverse => {
                a.sort_desc = !a.sort_desc;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The scale popup: how many workers to add or remove.
    pub(super) fn ask_action(&mut self, action: Action) -> Vec<Cmd> {
        let Some(Popup::AskWorkers { add, input }) = &mut self.popup else {
            return Vec::new();
        };
        match action {
            Action::DeleteChar => {
                input.pop();
                Vec::new()
            }
            Action::Back => {
                self.popup = None;
                Vec::new()
            }
            Action::Confirm => {
                let n = input.parse::<i32>().unwrap_or(0);
                let add = *add;
                if n < 1 {
                    self.flash =
                        Some(("type how many workers (1 or more)".into(), Severity::Error));
                    return Vec::new();
                }
                self.popup = None;
                let Some(a) = self.attached.as_ref() else {
                    return Vec::new();
                };
                let delta = if add { n } else { -n };
                self.flash = Some((
                    if add {
                        format!(
                            "{}: asking for {} more…",
                            a.name,
                            corral_core::text::count(n.unsigned_abs(), "worker")
                        )
                    } else {
                        format!(
                            "{}: removing {}…",
                            a.name,
                            corral_core::text::count(n.unsigned_abs(), "worker")
                        )
                    },
                    Severity::Info,
                ));
                vec![Cmd::Scale {
                    name: a.name.clone(),
                    delta,
                }]
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn on_confirm(&mut self, yes: bool) -> Vec<Cmd> {
        let Some(Popup::ConfirmCancel { name, .. }) = self.popup.take() else {
            return Vec::new();
        };
        if !yes {
            self.flash = Some((format!("kept {name}: it keeps running"), Severity::Info));
            return Vec::new();
        }
        if let Some(a) = self.attached_mut(&name) {
            a.ending = true;
        }
        if let Some(row) = self.home.clusters.iter_mut().find(|c| c.name == name) {
            row.state = ClusterState::Ending;
        }
        self.flash = Some((format!("cancelling {name}…"), Severity::Info));
        vec![Cmd::Cancel { name }]
    }

    pub(super) fn on_cancelled(
        &mut self,
        name: String,
        result: Result<CancelReport, String>,
    ) -> Vec<Cmd> {
        match result {
            Ok(report) => {
                let text = format!(
                    "{name} ended: {}, {:.2} core-hours used",
                    report.how, report.core_hours
                );
                if let Some(a) = self.attached_mut(&name) {
                    a.ending = false;
                    a.ended = Some(text.clone());
                    if let Some(s) = &mut a.snapshot {
                        s.state = ClusterState::Ended;
                        end_workers(&mut s.workers, false);
                    }
                }
                if let Some(row) = self.home.clusters.iter_mut().find(|c| c.name == name) {
                    row.state = ClusterState::Ended;
                }
                self.flash = Some((text, Severity::Info));
            }
            Err(e) => {
                if let Some(a) = self.attached_mut(&name) {
                    a.ending = false;
                }
                self.flash = Some((format!("{name}: cancel failed: {e}"), Severity::Error));
            }
        }
        vec![Cmd::ListClusters]
    }
}
