//! One module per CLI subcommand.

pub mod agg;
pub mod gen_taxi;
