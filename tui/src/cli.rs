//! The command line: one clap definition, one dispatch.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::runtime::UiFlags;
use crate::cmd;

/// Launch, watch, scale and cancel compute clusters on SLURM — and aggregate CSVs with them.
#[derive(Debug, Parser)]
#[command(name = "corral", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub ui: UiFlags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate test data.
    #[command(subcommand)]
    Gen(GenCommand),
    /// Group-by aggregation over CSV files in this process (no cluster needed).
    Agg(cmd::agg::AggArgs),
    /// Start a cluster: a coordinator and W workers (`--local`: processes on this machine).
    Up(cmd::up::UpArgs),
    /// Run a group-by query on a cluster; prints like `corral agg`, plus workers and cores.
    Query(cmd::query::QueryArgs),
    /// A cluster's workers, cores, tasks, throughput and running query.
    Status(cmd::status::StatusArgs),
    /// Grow or shrink a running cluster (SLURM or local) to W workers.
    Scale(cmd::scale::ScaleArgs),
    /// Stop a cluster and make sure none of its processes keeps running.
    Down(cmd::down::DownArgs),
    /// Serve a Dask cluster's dashboard on 127.0.0.1 of this machine (a one-time link; works
    /// through `ssh -L`), carried over the cluster's authenticated connection.
    Dashboard(cmd::dashboard::DashboardArgs),
    /// List the clusters: running, pending and ended within a day (`--all`: every one).
    Ls(cmd::ls::LsArgs),
    /// Remove an ended cluster's directory and its earlier records (its name was free anyway).
    Forget(cmd::forget::ForgetArgs),
    /// Run CMD on a cluster that lives exactly as long as CMD (fhdask's batch mode): allocate,
    /// wait for the workers, run `CMD ADDRESS ARGS…` with CORRAL_CLUSTER set, release, exit with
    /// CMD's status.
    Batch(cmd::batch::BatchArgs),
    /// Print the `export` lines that let an unchanged `Client("tls://…")` reach a Dask
    /// cluster: `eval "$(corral dask-env NAME)"`.
    DaskEnv(cmd::dask::DaskEnvArgs),
    /// Finished queries (when, what, rows, cores, seconds, GB/s) and finished clusters
    /// (core-hours, how they ended), from the ledgers.
    History(cmd::history::HistoryArgs),
    /// Run a query at 1, 2, 4, … cores and print its speedup, efficiency and knee.
    Sweep(cmd::sweep::SweepArgs),
    /// Draw runtime against cores from a cluster's ledger (a sweep) as SVG or PNG.
    Plot(cmd::plot::PlotArgs),
    /// The whole product in one command: demo data, a local cluster, a query, checked exact.
    Demo(cmd::demo::DemoArgs),
    /// Run an agent role (`coordinator`, `worker`) in this process, as `corral-agent` does; the
    /// local backend uses it when no `corral-agent` is installed.
    #[command(hide = true, disable_help_flag = true, disable_version_flag = true)]
    Agent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Open the terminal UI on cluster NAME's dashboard (or its pending screen).
    Attach {
        /// The cluster's name, as `corral` (Home) lists it.
        name: String,
        #[command(flatten)]
        ui: UiFlags,
    },
    /// Time drawing a 1,000-worker dashboard off-screen (a benchmark, prints ms/frame).
    #[command(hide = true)]
    BenchRender(crate::app::bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// NYC yellow-taxi trip CSVs (2015 layout) with exact expected counts in `expected.json`.
    Taxi(cmd::gen_taxi::TaxiArgs),
}

pub fn parse() -> Cli {
    Cli::parse()
}

/// `corral agent ROLE …`: runs an agent role in this process, as `corral-agent` does.
pub fn run_agent(cli: &Cli) -> Option<ExitCode> {
    let Some(Command::Agent { args }) = &cli.command else {
        return None;
    };
    let argv =
        std::iter::once(std::ffi::OsString::from("corral-agent")).chain(args.iter().cloned());
    Some(corral_agent::main_with(argv))
}

/// Runs a command. Commands that do I/O run on `rt`; `gen`, `agg`, `plot` and `history` are
/// CPU and file work on this thread (and threads of their own).
pub fn run(cli: Cli, rt: &tokio::runtime::Runtime) -> anyhow::Result<ExitCode> {
    // The terminal UI logs to a file (stderr is the screen it draws on), so it is started
    // before stderr logging is installed.
    let top = cli.ui;
    let ui = match &cli.command {
        Some(Command::Attach { ui, .. }) => ui.over(top),
        Some(Command::Up(args)) => args.ui.over(top),
        Some(Command::Demo(args)) => args.ui.over(top),
        _ => UiFlags::default().over(top),
    };
    let start = match &cli.command {
        None => Some(crate::app::Start::Home),
        Some(Command::Attach { name, .. }) => {
            // An unknown name is a typo to point out, not an empty dashboard to open.
            corral_core::cluster_dir::ClusterDir::open(name)?;
            Some(crate::app::Start::Attach(name.clone()))
        }
        _ => None,
    };
    if let Some(start) = start {
        rt.block_on(crate::app::run(ui.options(start)))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Commands that hand over to the terminal UI log to its file from the start: a line on
    // stderr would land on the screen the UI draws.
    let hands_over = match &cli.command {
        Some(Command::Demo(args)) => args.opens_tui(),
        Some(Command::Up(args)) => args.opens_tui(),
        _ => false,
    };
    if hands_over {
        let log = corral_core::paths::state_dir().join("logs").join("tui.log");
        corral_core::logging::init(corral_core::logging::LogTarget::File(&log), "info")?;
    } else {
        corral_core::logging::init(corral_core::logging::LogTarget::Stderr, "warn")?;
    }
    // Broken config is reported before any work, naming the file and key.
    let config = corral_core::config::Config::load()?;
    let backends = crate::progress::backends(&config);
    match cli.command {
        Some(Command::Gen(GenCommand::Taxi(args))) => cmd::gen_taxi::run(args),
        Some(Command::Agg(args)) => cmd::agg::run(args),
        Some(Command::Up(args)) => rt.block_on(cmd::up::run(args, ui, &backends)),
        Some(Command::Query(args)) => rt.block_on(cmd::query::run(args)),
        Some(Command::Status(args)) => rt.block_on(cmd::status::run(args, &backends)),
        Some(Command::Scale(args)) => rt.block_on(cmd::scale::run(args, &backends)),
        Some(Command::Down(args)) => rt.block_on(cmd::down::run(args, &backends)),
        Some(Command::Dashboard(args)) => rt.block_on(cmd::dashboard::run(args)),
        Some(Command::Ls(args)) => rt.block_on(cmd::ls::run(args, &backends)),
        Some(Command::Demo(args)) => rt.block_on(cmd::demo::run(args, ui, &backends)),
        Some(Command::Batch(args)) => rt.block_on(cmd::batch::run(args, &config, &backends)),
        Some(Command::History(args)) => cmd::history::run(args),
        Some(Command::Forget(args)) => cmd::forget::run(args),
        Some(Command::DaskEnv(args)) => cmd::dask::run_env(args),
        Some(Command::Sweep(args)) => rt.block_on(cmd::sweep::run(args)),
        Some(Command::Plot(args)) => cmd::plot::run(args),
        Some(Command::BenchRender(args)) => {
            crate::app::bench::run(args).map(|()| ExitCode::SUCCESS)
        }
        // Handled before the runtime existed (agents), or above (the terminal UI).
        Some(Command::Agent { .. }) | None | Some(Command::Attach { .. }) => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn has(c: &clap::Command, id: &str) -> bool {
        c.get_arguments().any(|a| a.get_id() == id)
    }

    #[test]
    fn the_tui_flags_are_offered_only_where_a_tui_opens() {
        let cli = Cli::command();
        assert!(has(&cli, "color") && has(&cli, "no_mouse"));
        for sub in cli.get_subcommands() {
            let opens = matches!(sub.get_name(), "up" | "demo" | "attach");
            assert_eq!(has(sub, "color"), opens, "--color on {}", sub.get_name());
            assert_eq!(
                has(sub, "no_mouse"),
                opens,
                "--no-mouse on {}",
                sub.get_name()
            );
        }
    }

    #[test]
    fn tui_flags_mean_the_same_before_and_after_the_subcommand() {
        use crate::app::runtime::ColorChoice;
        for argv in [
            &["corral", "--color", "never", "--no-mouse", "attach", "lab"][..],
            &["corral", "attach", "lab", "--color", "never", "--no-mouse"][..],
        ] {
            let cli = Cli::try_parse_from(argv).expect("parses");
            let Some(Command::Attach { ui, .. }) = cli.command else {
                panic!("attach expected");
            };
            let got = ui.over(cli.ui);
            assert_eq!(got.color, ColorChoice::Never, "{argv:?}");
            assert!(!got.mouse, "{argv:?}");
        }
        assert!(Cli::try_parse_from(["corral", "ls", "--no-mouse"]).is_err());
    }
}
