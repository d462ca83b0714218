//! `App::update` for every screen's keys and every `Msg`, and render snapshots of every screen
//! at 80×24 and 160×48 (fixed clock, made-up hosts), with colour asserted where it means state;
//! and the effects a SLURM cluster's screens cause, over the in-memory SLURM.

mod effects;
mod render;
mod update;
