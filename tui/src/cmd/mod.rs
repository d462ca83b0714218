//! One module per CLI subcommand.

pub mod agg;
pub mod demo;
pub mod down;
pub mod gen_taxi;
pub mod ls;
pub mod query;
pub mod scale;
pub mod status;
pub mod up;
