//! Home: the cluster list; opening a cluster (attach) and leaving it (detach).

use super::super::keymap::Action;
use super::super::msg::Cmd;
use super::super::state::{App, Attached, Popup, Screen, Severity};
use super::super::view::{Backend, ClusterRow, ClusterState};
use super::super::wizard::{SlurmReach, Wizard};

impl App {
    pub(super) fn on_clusters(&mut self, result: Result<Vec<ClusterRow>, String>) -> Vec<Cmd> {
        match result {
            Ok(rows) => {
                self.home.clusters = rows;
                self.home.loaded = true;
                self.home.error = None;
                let n = self.home.visible().len();
                self.home.selected = self.home.selected.min(n.saturating_sub(1));
            }
            Err(e) => {
                self.home.loaded = true;
                self.home.error = Some(e);
            }
        }
        Vec::new()
    }

    pub(super) fn home_action(&mut self, action: Action) -> Vec<Cmd> {
        match action {
            Action::Up | Action::Down | Action::Top | Action::Bottom => {
                let len = self.home.visible().len();
                Self::move_sel(&mut self.home.selected, len, action);
                Vec::new()
            }
            Action::New => {
                let names = self.cluster_names();
                self.wizard = Wizard::new(&self.defaults, &names);
                if self.limits.is_some() {
                    self.wizard.slurm = SlurmReach::Ready;
                }
                self.nav.push(Screen::Wizard);
                vec![Cmd::FetchLimits]
            }
            Action::Open => match self.home.selected_row() {
                Some(row) => {
                    let (name, backend, state) = (row.name.clone(), row.backend, row.state);
                    self.attach(name, Some(backend), state)
                }
                None => Vec::new(),
            },
            Action::Cancel => {
                match self.home.selected_row() {
                    Some(row) if row.state.is_live() => {
                        self.popup = Some(Popup::ConfirmCancel {
                            name: row.name.clone(),
                            core_hours: None,
                        });
                    }
                    Some(row) => {
                        self.flash = Some((
                            format!("{} has already {}", row.name, row.state.label()),
                            Severity::Info,
                        ));
                    }
                    None => {}
                }
                Vec::new()
            }
            Action::Filter => {
                self.home.filtering = true;
                Vec::new()
            }
            Action::Refresh => vec![Cmd::ListClusters],
            _ => Vec::new(),
        }
    }

    /// Opens `name`: Pending while its job waits, else the dashboard; starts watching it.
    pub(super) fn attach(
        &mut self,
        name: String,
        backend: Option<Backend>,
        state: ClusterState,
    ) -> Vec<Cmd> {
        let mut cmds = Vec::new();
        if let Some(old) = self.attached.take()
            && old.name != name
        {
            cmds.push(Cmd::Detach { name: old.name });
        }
        self.attached = Some(Attached::new(
            name.clone(),
            backend.unwrap_or(Backend::Slurm),
            self.now,
        ));
        let screen = match state {
            ClusterState::Pending | ClusterState::Starting => Screen::Pending,
            _ => Screen::Dashboard,
        };
        self.popup = None;
        self.nav = vec![Screen::Home, screen];
        cmds.push(Cmd::Attach { name });
        cmds
    }

    pub(super) fn detach(&mut self) -> Vec<Cmd> {
        self.popup = None;
        self.nav = vec![Screen::Home];
        match self.attached.take() {
            Some(a) => vec![Cmd::Detach { name: a.name }, Cmd::ListClusters],
            None => vec![Cmd::ListClusters],
        }
    }
}
