//! Copying a dashboard connection's bytes between a QUIC stream and a TCP connection, both
//! ways, on both sides of the tunnel (the coordinator toward the dashboard, `corral dashboard`
//! toward the browser).
//!
//! Each direction copies through one fixed buffer of [`DASHBOARD_COPY_BUFFER`] bytes, so a
//! stream holds a bounded amount in memory whatever the peers do (QUIC and TCP flow control
//! push back on a fast sender). When one side ends its direction (EOF), the end is passed on
//! (QUIC `finish`, TCP `shutdown` of the write half) and the other direction runs until its own
//! end; an error on either side (a reset, a broken connection) ends both at once, and dropping
//! the streams resets what is still open.

use std::io;

use quinn::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::protocol::DASHBOARD_COPY_BUFFER;

/// Bytes carried, once both directions ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carried {
    /// From the QUIC stream into the TCP connection.
    pub to_tcp: u64,
    /// From the TCP connection into the QUIC stream.
    pub to_quic: u64,
}

/// Copies `r` into `w` through one bounded buffer until `r` ends, then ends `w`.
async fn one_way<R, W>(r: &mut R, w: &mut W) -> io::Result<u64>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; DASHBOARD_COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    // EOF passed on: `shutdown` finishes a QUIC stream and half-closes a TCP connection.
    w.shutdown().await?;
    Ok(total)
}

/// Carries `tcp` over the QUIC stream (`send`, `recv`) until both directions ended, or either
/// failed (then both are dropped: the QUIC stream is reset and the TCP connection closed).
pub async fn splice(
    mut send: SendStream,
    mut recv: RecvStream,
    tcp: TcpStream,
) -> io::Result<Carried> {
    let (mut tcp_r, mut tcp_w) = tcp.into_split();
    let result = tokio::try_join!(
        one_way(&mut recv, &mut tcp_w),
        one_way(&mut tcp_r, &mut send)
    );
    match result {
        Ok((to_tcp, to_quic)) => Ok(Carried { to_tcp, to_quic }),
        Err(e) => {
            // Not a clean end: tell the peer at once rather than letting it wait for bytes.
            let _ = send.reset(quinn::VarInt::from_u32(0));
            let _ = recv.stop(quinn::VarInt::from_u32(0));
            Err(e)
        }
    }
}
