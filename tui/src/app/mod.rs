//! The terminal UI (`corral` with no arguments, `corral attach NAME`), in the Elm shape.
//!
//! Map:
//! - `view`: the data the screens show, in the TUI's own terms (times as data).
//! - `msg`: `Msg` (inputs: keys, ticks, answers) and `Cmd` (effects) — the whole boundary.
//! - `keymap`: the one table of keys → actions per context; dispatch and `?` read it.
//! - `state`: `App` — screens, popups, what each screen holds.
//! - `wizard`, `query_form`: the two forms as plain data with pure checking.
//! - `update`: `App::update(msg) -> Vec<Cmd>`, no I/O.
//! - `ui`: `render(&App, &mut Frame)`, pure; one module per screen.
//! - `convert`: core/SLURM/wire types → view types, in one place.
//! - `effects`: the executor: runs each `Cmd` on tokio and posts `Msg`s back.
//! - `terminal`: raw mode + alternate screen with a drop guard and a panic hook that always
//!   restore the terminal.
//! - `runtime`: the event loop (input thread, bounded channels, redraw only on change).
//! - `bench`: `corral bench-render`, frames of a 1,000-worker dashboard timed.
//! - `fixtures`: sample states for snapshots and the benchmark.

pub mod bench;
pub mod convert;
pub mod effects;
pub mod fixtures;
pub mod keymap;
pub mod msg;
pub mod query_form;
pub mod runtime;
pub mod state;
pub mod terminal;
pub mod ui;
pub mod update;
pub mod view;
pub mod wizard;

#[cfg(test)]
mod tests;

pub use runtime::run;
pub use update::Start;
