//! `App::update`: one `Msg` in, state changed, `Cmd`s out. No I/O happens here (no clock, no
//! files, no SLURM), which is what makes every key and every message unit-testable.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind};

use corral_core::aggregate::Query;
use corral_core::scaling;

use super::keymap::{self, Action, Context};
use super::msg::{Cmd, Msg};
use super::query_form::{QFIELDS, QueryForm};
use super::state::{App, Attached, PANES, Popup, SORT_KEYS, Screen, Severity, THROUGHPUT_SAMPLES};
use super::view::{Backend, ClusterState, WorkerView};
use super::wizard::{FIELDS, SlurmReach, WizField, Wizard};

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

/// The workers of a cluster that has ended: none is alive any more. Those still alive ended
/// with it (listed as left, unless the cluster `failed`); those already lost stay lost.
fn end_workers(workers: &mut [WorkerView], failed: bool) {
    for w in workers.iter_mut().filter(|w| w.alive) {
        w.alive = false;
        w.left = !failed;
    }
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
            Msg::Clusters(Ok(rows)) => {
                self.home.clusters = rows;
                self.home.loaded = true;
                self.home.error = None;
                let n = self.home.visible().len();
                self.home.selected = self.home.selected.min(n.saturating_sub(1));
                Vec::new()
            }
            Msg::Clusters(Err(e)) => {
                self.home.loaded = true;
                self.home.error = Some(e);
                Vec::new()
            }
            Msg::Limits(Ok(limits)) => {
                self.limits = Some(limits);
                self.wizard.slurm = SlurmReach::Ready;
                self.maybe_estimate()
            }
            Msg::Limits(Err(e)) => {
                self.wizard.slurm = SlurmReach::Unavailable(e);
                if self.wizard.backend == Backend::Slurm && self.limits.is_none() {
                    // Nothing to submit to: offer what works here instead of a dead form.
                    self.wizard.backend = Backend::Local;
                }
                Vec::new()
            }
            Msg::StartEstimate { spec, result } => {
                if self.wizard.estimate_for.as_ref() == Some(&spec) {
                    self.wizard.estimate = Some(result);
                }
                Vec::new()
            }
            Msg::Submitted { name, result } => self.on_submitted(name, result),
            Msg::JobStatus { name, status } => {
                if let Some(a) = self.attached_mut(&name) {
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
            Msg::Snapshot(mut snap) => {
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
            Msg::QueryDone { name, result } => {
                if let Some(a) = self.attached_mut(&name) {
                    a.query_running = false;
                    a.result_scroll = 0;
                    match &result {
                        // The gauge shows the finished query, not the last progress seen
                        // (a fast query may finish before any progress reports a partition).
                        Ok(r) => a.progress = Some(r.final_progress()),
                        Err(e) => {
                            self.flash = Some((format!("query failed: {e}"), Severity::Error));
                        }
                    }
                    if let Some(a) = self.attached_mut(&name) {
                        a.result = Some(result);
                    }
                }
                Vec::new()
            }
            Msg::Scaled { name, result } => {
                self.flash = Some(match result {
                    Ok(what) => (format!("{name}: {what}"), Severity::Info),
                    Err(e) => (format!("{name}: scaling failed: {e}"), Severity::Error),
                });
                Vec::new()
            }
            Msg::Cancelled { name, result } => self.on_cancelled(name, result),
            Msg::SweepPoint { name, step } => {
                if let Some(a) = self.attached_mut(&name) {
                    a.sweep.points.push(step.point);
                    // Runs come in ascending core counts: the latest shortfall is the largest.
                    if let Some(why) = crate::sweep::shortfall(&[step]) {
                        a.sweep.shortfall = Some(why);
                    }
                }
                Vec::new()
            }
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
            Msg::Logs { name, result } => {
                let ours = self.attached.as_ref().is_some_and(|a| a.name == name);
                if let (true, Some(Popup::Logs { lines, loading, .. })) = (ours, &mut self.popup) {
                    *loading = false;
                    *lines = match result {
                        Ok(l) if l.is_empty() => vec!["(no log lines yet)".into()],
                        Ok(l) => l,
                        Err(e) => vec![format!("cannot read the logs: {e}")],
                    };
                }
                Vec::new()
            }
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
            (Context::Logs, a) => {
                if let Some(Popup::Logs { lines, scroll, .. }) = &mut self.popup {
                    let last = lines.len().saturating_sub(1);
                    match a {
                        Action::Up => *scroll = scroll.saturating_sub(1),
                        Action::Down => *scroll = (*scroll + 1).min(last),
                        Action::Top => *scroll = 0,
                        Action::Bottom => *scroll = last,
                        Action::Back => self.popup = None,
                        _ => {}
                    }
                }
                Vec::new()
            }
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

    fn home_action(&mut self, action: Action) -> Vec<Cmd> {
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
    fn attach(&mut self, name: String, backend: Option<Backend>, state: ClusterState) -> Vec<Cmd> {
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

    fn detach(&mut self) -> Vec<Cmd> {
        self.popup = None;
        self.nav = vec![Screen::Home];
        match self.attached.take() {
            Some(a) => vec![Cmd::Detach { name: a.name }, Cmd::ListClusters],
            None => vec![Cmd::ListClusters],
        }
    }

    fn wizard_action(&mut self, action: Action) -> Vec<Cmd> {
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
    fn maybe_estimate(&mut self) -> Vec<Cmd> {
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

    fn submit(&mut self) -> Vec<Cmd> {
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

    fn on_submitted(&mut self, name: String, result: Result<Backend, String>) -> Vec<Cmd> {
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

    fn picker_action(&mut self, action: Action) -> Vec<Cmd> {
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

    /// Keys of Pending and Dashboard (both show the attached cluster).
    fn attached_action(&mut self, action: Action) -> Vec<Cmd> {
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
                    super::state::Pane::Workers => {
                        let len = a.snapshot.as_ref().map_or(0, |s| s.workers.len());
                        Self::move_sel(&mut a.selected, len, action);
                    }
                    super::state::Pane::Result => {
                        let len = match &a.result {
                            Some(Ok(r)) => r.rows.len(),
                            _ => 0,
                        };
                        Self::move_sel(&mut a.result_scroll, len, action);
                    }
                    super::state::Pane::Tasks => {}
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

    /// Runs the last query on 1, 2, 4, … cores up to what the cluster has now.
    fn start_sweep(&mut self) -> Vec<Cmd> {
        let Some(a) = self.attached.as_mut() else {
            return Vec::new();
        };
        let Some(query) = a.last_query.clone() else {
            return Vec::new();
        };
        if a.sweep.running {
            return Vec::new();
        }
        let cores = a.snapshot.as_ref().map_or(0, |s| s.live_cores());
        let cores = u32::try_from(cores).unwrap_or(u32::MAX);
        let planned = scaling::sweep_cores(cores);
        if planned.is_empty() {
            a.sweep.error = Some("no live workers to sweep over".into());
            return vec![Cmd::LoadHistory {
                name: a.name.clone(),
                query,
            }];
        }
        a.sweep.query = Some(query.clone());
        a.sweep.planned = planned.clone();
        a.sweep.points.clear();
        a.sweep.shortfall = None;
        a.sweep.running = true;
        a.sweep.error = None;
        vec![
            Cmd::LoadHistory {
                name: a.name.clone(),
                query: query.clone(),
            },
            Cmd::Sweep {
                name: a.name.clone(),
                query,
                cores: planned,
            },
        ]
    }

    fn query_form_action(&mut self, action: Action) -> Vec<Cmd> {
        let Some(Popup::QueryForm(form)) = &mut self.popup else {
            return Vec::new();
        };
        match action {
            Action::Down => form.focus = (form.focus + 1).min(QFIELDS.len() - 1),
            Action::Up => form.focus = form.focus.saturating_sub(1),
            Action::Left => form.browse(true),
            Action::Right => form.browse(false),
            Action::DeleteChar => {
                form.text_mut().pop();
            }
            Action::Back => self.popup = None,
            Action::Submit => match form.parse() {
                Err(e) => form.error = Some(e),
                Ok(query) => {
                    self.popup = None;
                    return self.run_query(query);
                }
            },
            _ => {}
        }
        Vec::new()
    }

    /// Runs `query` on the attached cluster; the tasks pane follows it.
    fn run_query(&mut self, query: Query) -> Vec<Cmd> {
        if self.attached.is_none() {
            return Vec::new();
        }
        if let Some(sel) = &query.select {
            self.sql_history.retain(|s| *s != sel.sql);
            self.sql_history.push(sel.sql.clone());
            let over = self
                .sql_history
                .len()
                .saturating_sub(super::query_form::HISTORY);
            self.sql_history.drain(..over);
        }
        let Some(a) = self.attached.as_mut() else {
            return Vec::new();
        };
        a.last_query = Some(query.clone());
        a.query_running = true;
        a.progress = None;
        a.result = None;
        a.focus = super::state::Pane::Tasks;
        vec![Cmd::RunQuery {
            name: a.name.clone(),
            query,
        }]
    }

    fn ask_action(&mut self, action: Action) -> Vec<Cmd> {
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

    fn on_confirm(&mut self, yes: bool) -> Vec<Cmd> {
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

    fn on_cancelled(
        &mut self,
        name: String,
        result: Result<super::view::CancelReport, String>,
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
