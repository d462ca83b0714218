//! One module per CLI subcommand.

pub mod adapt;
pub mod agg;
pub mod batch;
pub mod dashboard;
pub mod dask;
pub mod demo;
pub mod down;
pub mod forget;
pub mod gen_taxi;
pub mod history;
pub mod ls;
pub mod plot;
pub mod query;
pub mod scale;
pub mod status;
pub mod sweep;
pub mod up;
