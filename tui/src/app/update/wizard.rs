//! The new-cluster wizard: its fields, the partition picker, the start estimate, submitting.

use corral_core::model::ClusterSpec;

use super::super::keymap::Action;
use super::super::msg::Cmd;
use super::super::state::{App, Attached, Popup, Screen, Severity};
use super::super::view::{Backend, Limits};
use super::super::wizard::{FIELDS, SlurmReach, WizField};

impl App {
    pub(super) fn on_limits(&mut self, result: Result<Limits, String>) -> Vec<Cmd> {
        match result {
            Ok(limits) => {
                self.limits = Some(limits);
                self.wizard.slurm = SlurmReach::Ready;
                self.maybe_estimate()
            }
            Err(e) => {
                self.wizard.slurm = SlurmReach::Unavailable(e);
                if self.wizard.backend == Backend::Slurm && self.limits.is_none() {
                    // Nothing to submit to: offer what works here instead of a dead form.
                    self.wizard.backend = Backend::Local;
                }
                Vec::new()
            }
        }
    }

    pub(super) fn on_estimate(
        &mut self,
        spec: ClusterSpec,
        result: Result<String, String>,
    ) -> Vec<Cmd> {
        if self.wizard.estimate_for.as_ref() == Some(&spec) {
            self.wizard.estimate = Some(result);
        }
        Vec::new()
    }

    pub(super) fn wizard_action(&mut self, action: Action) -> Vec<Cmd> {
        let field = self.wizard.field();
        match action {
            Action::Down => {
                self.wizard.focus = (self.wizard.focus + 1).min(FIELDS.len() - 1);
                self.maybe_estimate()
            }
            Action::Up => {
                self.wizard.focus = self.wizard.focus.saturating_sub(1);
                self.maybe_estimate()
            }
            Action::Left | Action::Right => {
                let step = if action == Action::Left { -1 } else { 1 };
                match field {
                    WizField::Partition => {
                        self.wizard.cycle_partition(self.limits.as_ref(), step);
                        self.maybe_estimate()
                    }
                    WizField::Backend => {
                        self.wizard.toggle_backend();
                        self.maybe_estimate()
                    }
                    _ => Vec::new(),
                }
            }
            Action::Open => match field {
                WizField::Submit => self.submit(),
                WizField::Partition => {
                    if let Some(l) = &self.limits {
                        let selected = match &self.wizard.partition {
                            Some(n) => l.partitions.iter().position(|p| &p.name == n),
                            None => l.partitions.iter().position(|p| p.is_default),
                        }
                        .unwrap_or(0);
                        self.popup = Some(Popup::Picker { selected });
                    }
                    Vec::new()
                }
                WizField::Backend => {
                    self.wizard.toggle_backend();
                    Vec::new()
                }
                _ => self.wizard_action(Action::Down),
            },
            Action::Submit => self.submit(),
            Action::DeleteChar => {
                if let Some(t) = self.wizard.text_mut() {
                    t.pop();
                }
                Vec::new()
            }
            Action::Back => {
                self.nav.pop();
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Asks for a start estimate when the request is clean and differs from the last one
    /// asked about (so typing does not run `sbatch --test-only` per key).
    pub(super) fn maybe_estimate(&mut self) -> Vec<Cmd> {
        if self.wizard.backend != Backend::Slurm || self.limits.is_none() {
            return Vec::new();
        }
        let checked = self
            .wizard
            .check(self.limits.as_ref(), &self.cluster_names());
        match checked.spec {
            Some(spec) if checked.problems.is_empty() => {
                if self.wizard.estimate_for.as_ref() == Some(&spec) {
                    return Vec::new();
                }
                self.wizard.estimate_for = Some(spec.clone());
                self.wizard.estimate = None;
                vec![Cmd::EstimateStart(spec)]
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn submit(&mut self) -> Vec<Cmd> {
        if self.wizard.submitting {
            return Vec::new();
        }
        let checked = self
            .wizard
            .check(self.limits.as_ref(), &self.cluster_names());
        let spec = match (checked.spec.clone(), checked.problems.first()) {
            (Some(spec), None) => spec,
            (_, first) => {
                let msg = first.map_or("fix the fields marked ✗".to_string(), |p| {
                    p.message.clone()
                });
                if let Some(p) = first
                    && let Some(i) = FIELDS
                        .iter()
                        .position(|f| f.verdict_field() == Some(p.field))
                {
                    self.wizard.focus = i;
                }
                self.flash = Some((format!("cannot submit yet: {msg}"), Severity::Error));
                return Vec::new();
            }
        };
        let backend = self.wizard.backend;
        self.wizard.submitting = true;
        self.wizard.error = None;
        let mut a = Attached::new(spec.name.clone(), backend, self.now);
        a.job = None;
        a.workers_asked = Some(spec.workers);
        self.attached = Some(a);
        self.nav = vec![Screen::Home, Screen::Pending];
        vec![Cmd::Submit { spec, backend }]
    }

    pub(super) fn on_submitted(
        &mut self,
        name: String,
        result: Result<Backend, String>,
    ) -> Vec<Cmd> {
        self.wizard.submitting = false;
        match result {
            Ok(backend) => {
                self.flash = Some((
                    format!("{name}: submitted ({})", backend.label()),
                    Severity::Info,
                ));
                match self.attached_mut(&name) {
                    Some(_) => vec![Cmd::Attach { name }, Cmd::ListClusters],
                    None => vec![Cmd::ListClusters],
                }
            }
            Err(e) => {
                self.wizard.error = Some(e.clone());
                self.flash = Some((format!("{name}: not submitted: {e}"), Severity::Error));
                if self.attached.as_ref().is_some_and(|a| a.name == name) {
                    self.attached = None;
                    self.nav = vec![Screen::Home, Screen::Wizard];
                }
                vec![Cmd::ListClusters]
            }
        }
    }

    pub(super) fn picker_action(&mut self, action: Action) -> Vec<Cmd> {
        let len = self.limits.as_ref().map_or(0, |l| l.partitions.len());
        let Some(Popup::Picker { selected }) = &mut self.popup else {
            return Vec::new();
        };
        match action {
            Action::Up | Action::Down | Action::Top | Action::Bottom => {
                Self::move_sel(selected, len, action);
                Vec::new()
            }
            Action::Confirm => {
                let i = *selected;
                self.popup = None;
                if let Some(p) = self.limits.as_ref().and_then(|l| l.partitions.get(i)) {
                    self.wizard.partition = Some(p.name.clone());
                }
                self.maybe_estimate()
            }
            Action::Back => {
                self.popup = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}
