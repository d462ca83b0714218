//! Every message of corral's wire protocol is defined here.
//!
//! The wire is QUIC with ALPN [`ALPN`]; on a stream, every message is one frame: a `u32`
//! big-endian length, then that many bytes of postcard-encoded payload (see
//! [`crate::transport`] for the codec). For now this module holds the envelope every
//! connection starts with — the version handshake ([`Hello`]), the proof of the cluster secret
//! ([`AuthProof`]), the close codes — and the size limits. The messages workers and clients
//! exchange with the coordinator after the handshake are added here by the cluster work, so
//! that one file shows the whole protocol.
//!
//! Compatibility rules (postcard is not self-describing, so these are what keep old and new
//! binaries from misreading each other):
//! - the first field of [`Hello`] is `protocol_version` and stays first, as a `u32`, forever,
//!   so that any version can read any other's version number;
//! - [`AuthProof`] is 32 raw bytes in every version;
//! - any other change of a message bumps [`PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};

/// The QUIC application protocol. A peer offering anything else fails the TLS handshake.
/// The `/1` names the framing and the handshake; [`PROTOCOL_VERSION`] names the message set.
pub const ALPN: &[u8] = b"corral/1";

/// Version of the message set. Peers with different versions refuse each other with
/// [`CloseCode::VersionMismatch`]; `coordinator.json` also records it so a client can tell
/// before it connects.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest payload of one frame. Big enough for a partial result of a wide group-by,
/// small enough that a bogus length prefix cannot make a peer allocate without bound.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The largest frame accepted before the peer is authenticated: the handshake frames are
/// tiny, and a stranger must not make the coordinator buffer megabytes.
pub const MAX_HANDSHAKE_FRAME_LEN: usize = 4 * 1024;

/// Who is speaking on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// `corral-agent worker`: pulls partitions and reports its resources.
    Worker,
    /// The TUI or a CLI subcommand: watches the cluster and submits queries.
    Client,
    /// `corral-agent coordinator`: the only side that listens.
    Coordinator,
}

/// The first frame in each direction of the control stream. The client sends it first (then
/// its [`AuthProof`]); the coordinator answers with its own only once the client is
/// authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must stay the first field, as a `u32` (see the module doc).
    pub protocol_version: u32,
    pub role: Role,
    /// The sender's corral version (`CARGO_PKG_VERSION`), for diagnostics only.
    pub software_version: String,
    /// The sender's host name, for diagnostics and the worker registry.
    pub node: String,
}

impl Hello {
    /// This process's hello in `role`.
    pub fn new(role: Role) -> Self {
        Self {
            protocol_version: PROTOCOL_VERSION,
            role,
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            node: crate::cluster_dir::hostname(),
        }
    }
}

/// The client's second frame: HMAC-SHA256 keyed with the cluster secret over keying material
/// exported from this very TLS session (see [`crate::security::auth_proof`]).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthProof {
    pub mac: [u8; 32],
}

impl std::fmt::Debug for AuthProof {
    // A proof is only good for its own connection, but there is no reason to print it either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthProof(<redacted>)")
    }
}

/// QUIC application close codes corral uses. Unknown codes (from a newer peer) map to
/// [`CloseCode::Unknown`] rather than failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// Orderly shutdown of an authenticated connection.
    Done,
    /// The proof of the cluster secret was wrong.
    AuthFailed,
    /// The handshake did not finish before the server's deadline.
    HandshakeTimeout,
    /// A frame was malformed, oversize, or not the message expected.
    ProtocolViolation,
    /// The peers speak different [`PROTOCOL_VERSION`]s.
    VersionMismatch,
    /// The coordinator is shutting down.
    Shutdown,
    /// A code this version does not know.
    Unknown(u32),
}

impl CloseCode {
    pub fn code(self) -> u32 {
        match self {
            CloseCode::Done => 0,
            CloseCode::AuthFailed => 1,
            CloseCode::HandshakeTimeout => 2,
            CloseCode::ProtocolViolation => 3,
            CloseCode::VersionMismatch => 4,
            CloseCode::Shutdown => 5,
            CloseCode::Unknown(c) => c,
        }
    }

    pub fn from_code(code: u64) -> Self {
        match code {
            0 => CloseCode::Done,
            1 => CloseCode::AuthFailed,
            2 => CloseCode::HandshakeTimeout,
            3 => CloseCode::ProtocolViolation,
            4 => CloseCode::VersionMismatch,
            5 => CloseCode::Shutdown,
            c => CloseCode::Unknown(u32::try_from(c).unwrap_or(u32::MAX)),
        }
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseCode::Done => f.write_str("closed"),
            CloseCode::AuthFailed => f.write_str("authentication failed (wrong cluster secret)"),
            CloseCode::HandshakeTimeout => f.write_str("handshake not finished in time"),
            CloseCode::ProtocolViolation => f.write_str("protocol violation"),
            CloseCode::VersionMismatch => f.write_str(
                "protocol version mismatch (the coordinator runs another corral version)",
            ),
            CloseCode::Shutdown => f.write_str("coordinator shutting down"),
            CloseCode::Unknown(c) => write!(f, "unknown close code {c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_round_trip() {
        for c in [
            CloseCode::Done,
            CloseCode::AuthFailed,
            CloseCode::HandshakeTimeout,
            CloseCode::ProtocolViolation,
            CloseCode::VersionMismatch,
            CloseCode::Shutdown,
            CloseCode::Unknown(77),
        ] {
            assert_eq!(CloseCode::from_code(u64::from(c.code())), c);
        }
    }

    #[test]
    fn version_is_readable_from_any_hello() {
        // The frozen-first-field rule: a bare u32 decodes from the front of a Hello.
        let bytes = postcard::to_stdvec(&Hello::new(Role::Worker)).expect("encode");
        let (v, _rest) = postcard::take_from_bytes::<u32>(&bytes).expect("decode");
        assert_eq!(v, PROTOCOL_VERSION);
    }

    #[test]
    fn auth_proof_is_32_raw_bytes() {
        let bytes = postcard::to_stdvec(&AuthProof { mac: [7; 32] }).expect("encode");
        assert_eq!(bytes, vec![7u8; 32]);
    }
}
