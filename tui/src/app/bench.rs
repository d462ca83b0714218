//! `corral bench-render` (hidden): draws the dashboard of a 1,000-worker cluster into an
//! off-screen buffer N times and prints milliseconds per frame. A benchmark, not a test: the
//! target (≤ 5 ms per frame) is reported, never asserted.

use std::time::Instant;

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::fixtures;
use super::ui;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Workers in the cluster.
    #[arg(long, default_value_t = 1000)]
    pub workers: usize,
    /// Frames to draw.
    #[arg(long, default_value_t = 500)]
    pub frames: u32,
    #[arg(long, default_value_t = 160)]
    pub width: u16,
    #[arg(long, default_value_t = 48)]
    pub height: u16,
    /// Screen to draw: dashboard, home, wizard, pending, scaling.
    #[arg(long, default_value = "dashboard")]
    pub screen: String,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut app = match args.screen.as_str() {
        "dashboard" => fixtures::dashboard(args.workers),
        "home" => fixtures::home(),
        "wizard" => fixtures::wizard(),
        "pending" => fixtures::pending(),
        "scaling" => fixtures::scaling(),
        other => anyhow::bail!(
            "unknown screen {other:?}: use dashboard, home, wizard, pending or scaling"
        ),
    };
    let mut terminal = Terminal::new(TestBackend::new(args.width, args.height))?;
    // Warm up (allocations, first layout cache fill).
    for _ in 0..10 {
        terminal.draw(|f| ui::render(&app, f))?;
    }
    let start = Instant::now();
    for i in 0..args.frames {
        // Something changes every frame, as it would with live snapshots: the selection moves
        // and the sort column changes, so no frame is a copy of the last.
        if let Some(a) = app.attached.as_mut() {
            a.selected = (i as usize * 7) % args.workers.max(1);
            if i % 50 == 0 {
                a.sort_desc = !a.sort_desc;
            }
        }
        terminal.draw(|f| ui::render(&app, f))?;
    }
    let per = start.elapsed().as_secs_f64() * 1000.0 / f64::from(args.frames.max(1));
    println!(
        "{} with {} workers at {}x{}: {per:.3} ms/frame over {} frames (target ≤ 5 ms)",
        args.screen, args.workers, args.width, args.height, args.frames
    );
    Ok(())
}
