//! The app's state: which screen is showing, what each screen holds, and the popup on top.
//! Plain data; `update` changes it and `ui` draws it.

use corral_core::aggregate::Query;
use corral_core::config::Defaults;
use corral_core::scaling::Point;

use super::keymap::Context;
use super::query_form::QueryForm;
use super::view::{Backend, ClusterRow, ClusterSnapshot, JobStatusView, Limits, ResultView, Unix};
use super::wizard::Wizard;

/// The screens; `App::nav` is a stack of them (Esc pops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Home,
    Wizard,
    Pending,
    Dashboard,
    Scaling,
    Help,
}

/// A popup over the current screen. Keys go to it first; it never quits the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    /// "Cancel `name`?": `y` confirms, anything else keeps the cluster.
    ConfirmCancel {
        name: String,
        core_hours: Option<f64>,
    },
    /// "Add/remove how many workers?"
    AskWorkers {
        add: bool,
        input: String,
    },
    QueryForm(QueryForm),
    Logs {
        lines: Vec<String>,
        scroll: usize,
        loading: bool,
    },
    /// The wizard's partition list.
    Picker {
        selected: usize,
    },
}

/// How a flash message looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Error,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HomeState {
    pub clusters: Vec<ClusterRow>,
    /// Index into the filtered list.
    pub selected: usize,
    pub filter: String,
    pub filtering: bool,
    pub loaded: bool,
    pub error: Option<String>,
}

impl HomeState {
    pub fn visible(&self) -> Vec<&ClusterRow> {
        let f = self.filter.to_lowercase();
        self.clusters
            .iter()
            .filter(|c| f.is_empty() || c.name.to_lowercase().contains(&f))
            .collect()
    }

    pub fn selected_row(&self) -> Option<&ClusterRow> {
        self.visible().get(self.selected).copied()
    }
}

/// Dashboard panes, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Workers,
    Tasks,
    Result,
}

pub const PANES: [Pane; 3] = [Pane::Workers, Pane::Tasks, Pane::Result];

/// Columns the workers table can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Node,
    Cpu,
    Memory,
    TasksDone,
    Throughput,
    Heartbeat,
}

pub const SORT_KEYS: [SortKey; 6] = [
    SortKey::Node,
    SortKey::Cpu,
    SortKey::Memory,
    SortKey::TasksDone,
    SortKey::Throughput,
    SortKey::Heartbeat,
];

impl SortKey {
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Node => "node",
            SortKey::Cpu => "CPU %",
            SortKey::Memory => "memory",
            SortKey::TasksDone => "tasks done",
            SortKey::Throughput => "MB/s",
            SortKey::Heartbeat => "heartbeat",
        }
    }
}

/// The scaling sweep of the attached cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SweepState {
    pub query: Option<Query>,
    /// Core counts asked for, in order.
    pub planned: Vec<u32>,
    pub points: Vec<Point>,
    /// Points of earlier runs from the ledger.
    pub history: Vec<Point>,
    pub running: bool,
    pub error: Option<String>,
    /// Why a run of this sweep computed on fewer cores than asked (`crate::sweep::shortfall`).
    pub shortfall: Option<String>,
}

/// The cluster this TUI is attached to (Pending, Dashboard and Scaling show it).
#[derive(Debug, Clone, PartialEq)]
pub struct Attached {
    pub name: String,
    pub backend: Backend,
    /// When the user submitted or attached; Pending counts the wait from here unless SLURM
    /// says when the job was submitted.
    pub since: Unix,
    pub job: Option<JobStatusView>,
    /// Workers asked for, known before any snapshot when the wizard submitted (Pending also
    /// looks at the Home row).
    pub workers_asked: Option<u32>,
    pub snapshot: Option<ClusterSnapshot>,
    /// Cluster throughput (bytes/s) of recent snapshots, oldest first, for the sparkline.
    pub throughput: Vec<u64>,
    pub focus: Pane,
    /// Selected worker (index into the sorted table).
    pub selected: usize,
    pub sort: SortKey,
    pub sort_desc: bool,
    pub last_query: Option<Query>,
    pub query_running: bool,
    /// The running query's progress (from `Msg::QueryProgress` or the snapshot).
    pub progress: Option<super::view::QueryProgress>,
    pub result: Option<Result<ResultView, String>>,
    pub result_scroll: usize,
    pub sweep: SweepState,
    pub ending: bool,
    /// Set once the cluster is known to have ended, with how.
    pub ended: Option<String>,
    /// The connection is gone (the reason), but the last snapshot stays visible.
    pub lost: Option<String>,
    /// Adaptive scaling, when the cluster adapts.
    pub adapt: Option<super::view::AdaptView>,
    /// A Dask cluster's own view (its workers and task totals), once read; the error when the
    /// scheduler's dashboard could not be read.
    pub dask: Option<Result<Box<super::view::DaskView>, String>>,
}

impl Attached {
    pub fn new(name: String, backend: Backend, since: Unix) -> Attached {
        Attached {
            name,
            backend,
            since,
            job: None,
            workers_asked: None,
            snapshot: None,
            throughput: Vec::new(),
            focus: Pane::Workers,
            selected: 0,
            sort: SortKey::Node,
            sort_desc: false,
            last_query: None,
            query_running: false,
            progress: None,
            result: None,
            result_scroll: 0,
            sweep: SweepState::default(),
            ending: false,
            ended: None,
            lost: None,
            adapt: None,
            dask: None,
        }
    }
}

/// How many throughput samples the sparkline keeps.
pub const THROUGHPUT_SAMPLES: usize = 240;

/// Everything the TUI knows.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// The time, as data (the runtime sets it; tests fix it).
    pub now: Unix,
    pub nav: Vec<Screen>,
    pub popup: Option<Popup>,
    pub home: HomeState,
    pub wizard: Wizard,
    pub limits: Option<Limits>,
    pub attached: Option<Attached>,
    pub flash: Option<(String, Severity)>,
    pub help_scroll: usize,
    pub defaults: Defaults,
    /// Draw with colour (off for `NO_COLOR` / `--color never`; symbols and bold still show
    /// selection and state).
    pub color: bool,
    /// Where cluster directories live, as the security notice names it (`~/.local/state/…`).
    pub clusters_dir_display: String,
    /// The cluster this session stops when it quits (`corral demo`'s own); the title bar
    /// says so, since everywhere else quitting leaves clusters running.
    pub stops_on_quit: Option<String>,
    /// SQL queries run in this session, newest last (the query form's history).
    pub sql_history: Vec<String>,
    /// This machine's cores, which a local cluster is checked against.
    pub machine_cores: u32,
    pub quit: bool,
}

impl App {
    pub fn new(now: Unix, defaults: Defaults) -> App {
        App {
            now,
            nav: vec![Screen::Home],
            popup: None,
            home: HomeState::default(),
            wizard: Wizard::new(&defaults, &[]),
            limits: None,
            attached: None,
            flash: None,
            help_scroll: 0,
            defaults,
            color: true,
            clusters_dir_display: "~/.local/state/corral/clusters".into(),
            stops_on_quit: None,
            machine_cores: corral_core::backend::local_fit::machine_cores(),
            sql_history: Vec::new(),
            quit: false,
        }
    }

    pub fn screen(&self) -> Screen {
        self.nav.last().copied().unwrap_or(Screen::Home)
    }

    /// The keymap context of what has focus: the popup if any, else the screen.
    pub fn context(&self) -> Context {
        match &self.popup {
            Some(Popup::ConfirmCancel { .. }) => Context::Confirm,
            Some(Popup::AskWorkers { .. }) => Context::AskWorkers,
            Some(Popup::QueryForm(_)) => Context::QueryForm,
            Some(Popup::Logs { .. }) => Context::Logs,
            Some(Popup::Picker { .. }) => Context::Picker,
            None => match self.screen() {
                Screen::Home if self.home.filtering => Context::Filter,
                Screen::Home => Context::Home,
                Screen::Wizard => Context::Wizard,
                Screen::Pending => Context::Pending,
                Screen::Dashboard => Context::Dashboard,
                Screen::Scaling => Context::Scaling,
                Screen::Help => Context::Help,
            },
        }
    }

    /// The names a new cluster cannot take: an ended cluster's name is free again.
    pub fn cluster_names(&self) -> Vec<String> {
        self.home
            .clusters
            .iter()
            .filter(|c| c.state != super::view::ClusterState::Ended)
            .map(|c| c.name.clone())
            .collect()
    }

    /// How often time must move on for the screen to stay true, or `None` when nothing
    /// animates (then the TUI sleeps until a key or a message arrives: idle ≈ 0 % CPU).
    pub fn tick_interval(&self) -> Option<std::time::Duration> {
        use std::time::Duration;
        match self.screen() {
            // The cluster list changes behind our back (jobs start, walltimes run out).
            Screen::Home => Some(Duration::from_secs(5)),
            // "waited 3 min" counts up.
            Screen::Pending => Some(Duration::from_secs(1)),
            Screen::Dashboard | Screen::Scaling => {
                let busy = self
                    .attached
                    .as_ref()
                    .is_some_and(|a| a.query_running || a.sweep.running || a.ending);
                // Otherwise snapshots drive redraws; the slow tick only keeps "walltime left"
                // and heartbeat ages honest when no snapshot comes.
                Some(Duration::from_secs(if busy { 1 } else { 15 }))
            }
            Screen::Wizard | Screen::Help => None,
        }
    }
}
