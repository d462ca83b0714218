//! The event loop: terminal input on its own thread, effects on tokio, one bounded channel of
//! `Msg`s into `App::update`, and a redraw only after something arrived. With nothing
//! animating there is no timer at all, so an idle TUI sleeps (≈ 0 % CPU).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use crossterm::event::{self, Event, MouseEventKind};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use corral_core::config::Config;
use corral_core::logging::{self, LogTarget};
use corral_core::paths;

use super::effects::Effects;
use super::msg::{Cmd, Msg};
use super::state::App;
use super::terminal::TerminalGuard;
use super::ui;
use super::update::Start;
use super::view::Unix;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How to start the TUI (from the command line).
#[derive(Debug, Clone)]
pub struct Options {
    pub start: Start,
    pub color: ColorChoice,
    pub mouse: bool,
}

/// The terminal UI's flags: on `corral` itself and on the commands that open the TUI (`attach`,
/// `up`, `demo`), not on every subcommand.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct UiFlags {
    /// Colour in the terminal UI: auto (off when NO_COLOR is set), always or never. State and
    /// selection stay visible without colour (symbols, bold).
    #[arg(long, value_enum, value_name = "WHEN")]
    pub color: Option<ColorChoice>,
    /// Do not capture the mouse in the terminal UI (keeps the terminal's own text selection).
    #[arg(long)]
    pub no_mouse: bool,
}

impl UiFlags {
    /// The subcommand's flags over the top level's (`corral --color never up …` and
    /// `corral up --color never …` mean the same).
    pub fn over(self, top: UiFlags) -> Ui {
        Ui {
            color: self.color.or(top.color).unwrap_or(ColorChoice::Auto),
            mouse: !(self.no_mouse || top.no_mouse),
        }
    }
}

/// How the TUI looks (`--color`, `--no-mouse`), for commands that hand over to it.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub color: ColorChoice,
    pub mouse: bool,
}

impl Ui {
    pub fn options(self, start: Start) -> Options {
        Options {
            start,
            color: self.color,
            mouse: self.mouse,
        }
    }
}

/// How many messages may wait for `update`; producers wait when it is full (backpressure
/// rather than unbounded memory when a cluster floods snapshots).
const CHANNEL: usize = 256;

pub fn now_unix() -> Unix {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Colour on? `--color` wins, then `NO_COLOR` (any non-empty value), then the config.
pub fn use_color(choice: ColorChoice, no_color_env: Option<&str>, config: &str) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if no_color_env.is_some_and(|v| !v.is_empty()) {
                return false;
            }
            config != "never"
        }
    }
}

/// Whether the TUI can run here: stdin and stdout are a terminal. Commands that hand over to
/// the TUI (`corral demo`, `corral up`) print instead when this is false.
pub fn has_terminal() -> bool {
    std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// Runs the TUI until the user quits, on the process's runtime. Clusters keep running.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let config = Config::load()?;
    if !has_terminal() {
        anyhow::bail!(
            "corral's terminal UI needs a terminal; for scripts use the subcommands (corral --help)"
        );
    }
    let log = paths::state_dir().join("logs").join("tui.log");
    logging::init(LogTarget::File(&log), "info")
        .with_context(|| format!("cannot open the log file {}", log.display()))?;
    tracing::info!(?opts, "tui starting");
    let mut app = App::new(now_unix(), config.defaults.clone());
    let no_color = std::env::var("NO_COLOR").ok();
    app.color = use_color(opts.color, no_color.as_deref(), &config.ui.color);
    app.clusters_dir_display = display_path(&paths::clusters_dir());
    let mouse = opts.mouse && config.ui.mouse;
    let result = event_loop(app, opts.start, mouse, config).await;
    tracing::info!("tui stopped");
    result
}

/// `~/…` for paths under `$HOME`, as users write them.
pub fn display_path(p: &std::path::Path) -> String {
    if let Some(home) = std::env::var_os("HOME")
        && let Ok(rest) = p.strip_prefix(&home)
    {
        return format!("~/{}", rest.display());
    }
    p.display().to_string()
}

async fn event_loop(mut app: App, start: Start, mouse: bool, config: Config) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Msg>(CHANNEL);
    let (guard, mut terminal) =
        TerminalGuard::enter(mouse).context("cannot set up the terminal")?;
    let input = InputThread::spawn(tx.clone());
    let mut effects = Effects::new(tx.clone(), config);
    drop(tx);
    for cmd in app.init(start) {
        effects.execute(cmd);
    }
    let mut ticker: Option<(Duration, Interval)> = None;
    let mut result = Ok(());
    loop {
        if let Err(e) = terminal.draw(|f| ui::render(&app, f)) {
            result = Err(e).context("cannot draw");
            break;
        }
        let want = app.tick_interval();
        if want != ticker.as_ref().map(|(d, _)| *d) {
            ticker = want.map(|d| {
                let mut i = tokio::time::interval_at(Instant::now() + d, d);
                i.set_missed_tick_behavior(MissedTickBehavior::Delay);
                (d, i)
            });
        }
        let msg = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            () = tick(&mut ticker) => Msg::Tick,
        };
        // Take everything already queued, then draw once.
        let mut batch = vec![msg];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        for msg in batch {
            app.now = now_unix();
            for cmd in app.update(msg) {
                if cmd == Cmd::Quit {
                    app.quit = true;
                } else if let Cmd::Alert(bytes) = &cmd {
                    // Between frames: the escapes move no cursor, so the next draw is intact.
                    use std::io::Write as _;
                    let out = terminal.backend_mut();
                    let _ = out.write_all(bytes.as_bytes());
                    let _ = out.flush();
                } else {
                    effects.execute(cmd);
                }
            }
        }
        if app.quit {
            break;
        }
    }
    // Closing the channel first unblocks an input thread waiting for room in it.
    drop(rx);
    input.stop();
    effects.shutdown().await;
    drop(terminal);
    drop(guard);
    result
}

async fn tick(ticker: &mut Option<(Duration, Interval)>) {
    match ticker {
        Some((_, i)) => {
            i.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Reads terminal events on a thread of its own (crossterm's reader blocks) and posts them.
/// It polls with a timeout only to notice `stop`; mouse motion is dropped at the source so
/// moving the mouse does not redraw.
struct InputThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl InputThread {
    fn spawn(tx: mpsc::Sender<Msg>) -> InputThread {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("corral-input".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match event::poll(Duration::from_millis(250)) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            tracing::error!("terminal input failed: {e}");
                            break;
                        }
                    }
                    let msg = match event::read() {
                        Ok(Event::Key(k)) => Msg::Key(k),
                        Ok(Event::Mouse(m)) => match m.kind {
                            MouseEventKind::Moved | MouseEventKind::Drag(_) => continue,
                            _ => Msg::Mouse(m),
                        },
                        Ok(Event::Resize(w, h)) => Msg::Resize(w, h),
                        Ok(_) => continue,
                        Err(e) => {
                            tracing::error!("terminal input failed: {e}");
                            break;
                        }
                    };
                    if tx.blocking_send(msg).is_err() {
                        break;
                    }
                }
            })
            .ok();
        InputThread { stop, handle }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn color_choice() {
        assert!(!use_color(ColorChoice::Auto, Some("1"), "auto"));
        assert!(use_color(ColorChoice::Auto, Some(""), "auto"));
        assert!(use_color(ColorChoice::Always, Some("1"), "never"));
        assert!(!use_color(ColorChoice::Never, None, "always"));
        assert!(!use_color(ColorChoice::Auto, None, "never"));
    }
}
