//! `App::update`: one `Msg` in, state changed, `Cmd`s out. No I/O happens here (no clock, no
//! files, no SLURM), which is what makes every key and every message unit-testable.
//!
//! Map (one module per screen; a new screen or panel gets its own module here, its keys in
//! `keymap`, its drawing in `ui/`, its effects in `effects/`):
//! - this module: `Msg` and key dispatch, navigation (Esc, Help), selection movement;
//! - `home`: the cluster list, attaching and detaching;
//! - `wizard`: the new-cluster form, its partition picker, estimate and submit;
//! - `attached`: Pending and Dashboard (job state, snapshots, scale, cancel);
//! - `query`: the query form and running a query;
//! - `scaling`: the sweep screen;
//! - `logs`: the log view;
//! - `dask`: a Dask cluster's view for the dashboard's Dask panel.

mod attached;
mod dask;
mod home;
mod logs;
mod query;
mod scaling;
mod wizard;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind};

use corral_core::aggregate::Query;

use super::keymap::{self, Action, Context};
use super::msg::{Cmd, Msg};
use super::state::{App, Attached, Popup, Screen, Severity};
use super::view::{Backend, ClusterState};

/// What the TUI opens on.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    Home,
    /// `corral attach NAME`, and `corral up` once it has submitted.
    Attach(String),
    /// `corral demo`: the dashboard of the demo's own local cluster with `query` already
    /// running. The demo stops that cluster when the TUI quits, and the TUI says so.
    Demo {
        name: String,
        query: Query,
    },
}

impl App {
    /// The first commands: the cluster list, and the attach asked for on the command line.
    pub fn init(&mut self, start: Start) -> Vec<Cmd> {
        let mut cmds = vec![Cmd::ListClusters];
        match start {
            Start::Home => {}
            Start::Attach(name) => cmds.extend(self.attach(name, None, ClusterState::Unknown)),
            Start::Demo { name, query } => {
                self.stops_on_quit = Some(name.clone());
                cmds.extend(self.attach(name, Some(Backend::Local), ClusterState::Running));
                cmds.extend(self.run_query(query));
            }
        }
        cmds
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Cmd> {
        match msg {
            Msg::Key(ev) => self.on_key(ev),
            Msg::Mouse(m) => {
                let action = match m.kind {
                    MouseEventKind::ScrollDown => Action::Down,
                    MouseEventKind::ScrollUp => Action::Up,
                    _ => return Vec::new(),
                };
                self.on_action(self.context(), action)
            }
            Msg::Resize(..) => Vec::new(),
            Msg::Tick => match self.screen() {
                Screen::Home => vec![Cmd::ListClusters],
                _ => Vec::new(),
            },
            Msg::Clusters(result) => self.on_clusters(result),
            Msg::Limits(result) => self.on_limits(result),
            Msg::StartEstimate { spec, result } => self.on_estimate(spec, result),
            Msg::Submitted { name, result } => self.on_submitted(name, result),
            Msg::JobStatus { name, status } => self.on_job_status(&name, status),
            Msg::Snapshot(snap) => self.on_snapshot(snap),
            Msg::Detached { name, reason } => {
                if let Some(a) = self.attached_mut(&name) {
                    a.lost = Some(reason);
                }
                Vec::new()
            }
            Msg::QueryProgress { name, progress } => {
                if let Some(a) = self.attached_mut(&name) {
                    a.progress = Some(progress);
                }
                Vec::new()
            }
            Msg::QueryDone { name, result } => self.on_query_done(&name, result),
            Msg::Adapt { name, adapt } => {
                if let Some(a) = self.attached_mut(&name) {
                    a.adapt = adapt;
                }
                Vec::new()
            }
            Msg::Notice {
                name: _,
                title,
                body,
                alert,
            } => {
                self.flash = Some((format!("{title}: {body}"), Severity::Info));
                vec![Cmd::Alert(alert)]
            }
            Msg::Scaled { name, result } => {
                self.flash = Some(match result {
                    Ok(what) => (format!("{name}: {what}"), Severity::Info),
                    Err(e) => (format!("{name}: scaling failed: {e}"), Severity::Error),
                });
                Vec::new()
            }
            Msg::Cancelled { name, result } => self.on_cancelled(name, result),
            Msg::SweepPoint { name, step } => self.on_sweep_point(&name, step),
            Msg::SweepDone { name, result } => {
                if let Some(a) = self.attached_mut(&name) {
                    a.sweep.running = false;
                    a.sweep.error = result.err();
                }
                Vec::new()
            }
            Msg::History { name, points } => {
                if let Some(a) = self.attached_mut(&name) {
                    a.sweep.history = points;
                }
                Vec::new()
            }
            Msg::Logs { name, result } => self.on_logs(&name, result),
            Msg::Dask { name, result } => self.on_dask(&name, result),
            Msg::Error(e) => {
                self.flash = Some((e, Severity::Error));
                Vec::new()
            }
        }
    }

    fn attached_mut(&mut self, name: &str) -> Option<&mut Attached> {
        self.attached.as_mut().filter(|a| a.name == name)
    }

    fn replace_top(&mut self, screen: Screen) {
        self.nav.pop();
        self.nav.push(screen);
    }

    fn on_key(&mut self, ev: KeyEvent) -> Vec<Cmd> {
        // Key release/repeat events (kitty protocol) would double every key.
        if ev.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctx = self.context();
        // The cancel confirmation: `y` confirms, and anything else keeps the cluster.
        if ctx == Context::Confirm {
            let action = keymap::lookup(ctx, &ev);
            return self.on_confirm(action == Some(Action::Confirm));
        }
        // A flash message lasts until the next key.
        self.flash = None;
        if let Some(action) = keymap::lookup(ctx, &ev) {
            return self.on_action(ctx, action);
        }
        if let KeyCode::Char(c) = ev.code
            && ctx.takes_text()
            && !ev
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
        {
            return self.on_char(ctx, c);
        }
        Vec::new()
    }

    fn on_char(&mut self, ctx: Context, c: char) -> Vec<Cmd> {
        match ctx {
            Context::Filter => {
                self.home.filter.push(c);
                self.home.selected = 0;
            }
            Context::Wizard => {
                if self.wizard.accepts(c)
                    && let Some(t) = self.wizard.text_mut()
                {
                    t.push(c);
                }
            }
            Context::QueryForm => {
                if let Some(Popup::QueryForm(f)) = &mut self.popup {
                    f.text_mut().push(c);
                    f.error = None;
                }
            }
            Context::AskWorkers => {
                if let Some(Popup::AskWorkers { input, .. }) = &mut self.popup
                    && c.is_ascii_digit()
                    && input.len() < 5
                {
                    input.push(c);
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_action(&mut self, ctx: Context, action: Action) -> Vec<Cmd> {
        match (ctx, action) {
            (_, Action::Quit) => {
                self.quit = true;
                vec![Cmd::Quit]
            }
            (c, Action::Help) if !c.is_popup() => {
                if self.screen() != Screen::Help {
                    self.help_scroll = 0;
                    self.nav.push(Screen::Help);
                }
                Vec::new()
            }
            (Context::Home, a) => self.home_action(a),
            (Context::Filter, Action::Confirm) => {
                self.home.filtering = false;
                Vec::new()
            }
            (Context::Filter, Action::Back) => {
                self.home.filtering = false;
                self.home.filter.clear();
                Vec::new()
            }
            (Context::Filter, Action::DeleteChar) => {
                self.home.filter.pop();
                Vec::new()
            }
            (Context::Wizard, a) => self.wizard_action(a),
            (Context::Picker, a) => self.picker_action(a),
            (Context::Pending, a) => self.attached_action(a),
            (Context::Dashboard, a) => self.attached_action(a),
            (Context::QueryForm, a) => self.query_form_action(a),
            (Context::AskWorkers, a) => self.ask_action(a),
            (Context::Logs, a) => self.logs_action(a),
            (Context::Scaling, Action::Sweep) => self.start_sweep(),
            (Context::Scaling, Action::Back) => {
                self.nav.pop();
                Vec::new()
            }
            (Context::Help, a) => {
                match a {
                    Action::Up => self.help_scroll = self.help_scroll.saturating_sub(1),
                    Action::Down => self.help_scroll += 1,
                    Action::Top => self.help_scroll = 0,
                    Action::Bottom => self.help_scroll = usize::MAX / 2,
                    Action::Back => {
                        self.nav.pop();
                    }
                    _ => {}
                }
                Vec::new()
            }
            (_, Action::Back) => self.back(),
            _ => Vec::new(),
        }
    }

    /// Esc on a screen: one step back; leaving a cluster's screens detaches from it.
    fn back(&mut self) -> Vec<Cmd> {
        match self.screen() {
            Screen::Home => Vec::new(),
            Screen::Pending | Screen::Dashboard => self.detach(),
            _ => {
                self.nav.pop();
                Vec::new()
            }
        }
    }

    fn move_sel(sel: &mut usize, len: usize, action: Action) {
        let last = len.saturating_sub(1);
        match action {
            Action::Up => *sel = sel.saturating_sub(1),
            Action::Down => *sel = (*sel + 1).min(last),
            Action::Top => *sel = 0,
            Action::Bottom => *sel = last,
            _ => {}
        }
    }
}
