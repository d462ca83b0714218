//! The cluster's dashboard (the Dask scheduler's web pages) without an open port.
//!
//! The dashboard listens on the loopback of the coordinator's node only. `corral dashboard`
//! serves it on the loopback of the machine where it runs: each browser connection becomes a
//! QUIC stream on the cluster's authenticated connection ([`crate::protocol::ClientRequest::
//! Dashboard`]), and the coordinator carries it to the address it registered itself
//! ([`crate::coordinator::dashboard`]).
//!
//! - [`gate`]: the one-time link, the session cookie, and the 403 for everyone else.
//! - [`proxy`]: the local listener, one task per browser connection.
//! - [`splice`]: bytes both ways between a QUIC stream and a TCP connection, bounded buffers.
//! - [`dask`]: Dask's workers and task totals read from the scheduler's HTTP routes through the
//!   proxy (what the TUI shows).

pub mod dask;
pub mod gate;
pub mod proxy;
pub mod splice;
#[cfg(test)]
mod tests;

pub use proxy::{Proxy, ProxyError, ProxyEvent};
