//! Multiplexed mode: every logical connection is a yamux stream over the registration
//! connection itself, instead of a new TCP+TLS connection dialed back (v2).
//!
//! Negotiated at registration: the private side (a buildlet) sends
//! [`MUX_HEADER`]` : `[`MUX_PROTOCOL`]; a public side that supports it answers its `101`
//! with the same header, and both then speak yamux on the connection. Go peers never send
//! the header, so they keep speaking v2; either of our sides falls back to v2 when the
//! other does not offer mux.
//!
//! Why yamux (the `yamux` crate of rust-libp2p): its stream windows start at 256 KiB
//! and are tuned to twice the measured bandwidth-delay product, so one stream is not
//! capped at window/RTT; a bound on the connection's total receive window and on the
//! number of streams caps memory; it pings every 10 s to measure the RTT, which also keeps
//! the connection's TCP user timeout armed so a vanished peer is noticed. h2 would need
//! its window management and a BDP estimator written around it.
//!
//! The public side is the yamux client (it opens streams: [`MuxDialer::dial`]); the private
//! side is the server (it accepts them: [`MuxListener::accept`]). One task per connection
//! drives yamux; stream opening is bounded by a semaphore, so a burst of dials waits for
//! streams to end instead of failing or growing without bound.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::io::{Io, RevConn};

/// The registration header that offers (request) and accepts (response) mux mode.
pub const MUX_HEADER: &str = "X-Revdial-Mux";
/// Its value: the multiplexer and this crate's version of its use.
pub const MUX_PROTOCOL: &str = "yamux/1";

/// Which protocol a [`crate::Dialer`] or [`crate::Listener`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// revdial v2: one dialed-back connection per stream (what Go peers speak).
    V2,
    /// yamux streams over the registration connection.
    Mux,
}

impl Mode {
    /// `v2` or `mux`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::V2 => "v2",
            Mode::Mux => "mux",
        }
    }
}

/// Whether a registration header value offers (or accepts) mux mode.
pub fn offers_mux(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.split(',').any(|p| p.trim() == MUX_PROTOCOL))
}

/// Limits of a mux connection.
#[derive(Debug, Clone)]
pub struct MuxConfig {
    /// Streams open at once; further dials wait for one to end. Default 128.
    pub max_streams: usize,
    /// Bytes all streams of the connection may have received and not yet read (the
    /// connection's memory bound). At least 512 KiB per stream (yamux gives each
    /// stream 256 KiB to start with, for twice `max_streams` plus 16 streams, counting
    /// streams still closing). Default 128 MiB.
    pub max_receive_window: usize,
    /// A dial that cannot open a stream within this fails with [`Error::Timeout`].
    pub dial_timeout: Duration,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            max_streams: 128,
            max_receive_window: 128 << 20,
            dial_timeout: Duration::from_secs(30),
        }
    }
}

impl MuxConfig {
    fn yamux(&self) -> yamux::Config {
        // yamux counts a stream until both sides have closed it, and an open past its
        // limit ends the whole connection. Our semaphore is the limit callers see; yamux's
        // is set well above it so that streams still closing never trip it.
        let streams = self.max_streams.max(1) * 2 + 16;
        let window = self.max_receive_window.max(streams * (256 << 10));
        let mut cfg = yamux::Config::default();
        // Streams first: each setter checks window >= 256 KiB × streams, and the default
        // window (1 GiB) allows any stream count we set.
        cfg.set_max_num_streams(streams);
        cfg.set_max_connection_receive_window(Some(window));
        cfg.set_split_send_size(WRITE_BUFFER - FRAME_HEADER);
        cfg
    }
}

/// yamux writes a frame as two writes, its 12-byte header and its body, and flushes
/// after each frame. Over TLS each write would be a record (and a system call) of its
/// own; a write buffer of one frame makes it one write, and a body of a buffer less the
/// header fills it exactly.
const WRITE_BUFFER: usize = 64 << 10;
const FRAME_HEADER: usize = 12;

type Socket = Compat<tokio::io::BufWriter<Box<dyn IoBox>>>;

/// An erased socket yamux can drive (tokio I/O, adapted to `futures::io`).
trait IoBox: Io {}
impl<T: Io> IoBox for T {}

/// A request to open a stream.
type Open = oneshot::Sender<std::result::Result<yamux::Stream, yamux::ConnectionError>>;

/// Drives one yamux connection: opens streams on request, hands inbound streams out,
/// and ends (closing everything) when the peer goes away or `closed` is cancelled.
async fn drive(
    mut conn: yamux::Connection<Socket>,
    mut opens: mpsc::Receiver<Open>,
    inbound: Option<mpsc::Sender<RevConn>>,
    closed: CancellationToken,
) {
    let mut waiting: Option<Open> = None;
    let ended = poll_fn(|cx| {
        if closed.is_cancelled() {
            return Poll::Ready(());
        }
        loop {
            if waiting.is_none() {
                match opens.poll_recv(cx) {
                    Poll::Ready(Some(tx)) => waiting = Some(tx),
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            let Some(tx) = waiting.take() else { break };
            if tx.is_closed() {
                continue; // the dial gave up
            }
            match conn.poll_new_outbound(cx) {
                Poll::Ready(r) => {
                    let failed = r.is_err();
                    let _ = tx.send(r);
                    if failed {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending => {
                    waiting = Some(tx);
                    break;
                }
            }
        }
        // Polling for inbound streams is what moves every stream's bytes.
        loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => match &inbound {
                    // A full queue means the accepting side stopped accepting: the
                    // stream is dropped (the peer sees it reset) rather than buffered.
                    Some(tx) => {
                        let _ = tx.try_send(RevConn::new(stream.compat()));
                    }
                    None => drop(stream), // the public side accepts no streams
                },
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(error = %e, "revdial mux connection failed");
                    return Poll::Ready(());
                }
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    tokio::select! {
        _ = ended => {}
        _ = closed.cancelled() => {}
    }
    closed.cancel();
    if let Some(tx) = waiting {
        let _ = tx.send(Err(yamux::ConnectionError::Closed));
    }
    opens.close();
    while let Ok(tx) = opens.try_recv() {
        let _ = tx.send(Err(yamux::ConnectionError::Closed));
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| conn.poll_close(cx))).await;
}

fn start(
    io: impl Io,
    config: &MuxConfig,
    mode: yamux::Mode,
    inbound: Option<mpsc::Sender<RevConn>>,
) -> (mpsc::Sender<Open>, CancellationToken) {
    let socket: Box<dyn IoBox> = Box::new(io);
    let socket = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, socket);
    let conn = yamux::Connection::new(socket.compat(), config.yamux(), mode);
    let (open_tx, open_rx) = mpsc::channel(config.max_streams.max(1));
    let closed = CancellationToken::new();
    tokio::spawn(drive(conn, open_rx, inbound, closed.clone()));
    (open_tx, closed)
}

/// A stream and the permit it holds until it is dropped.
struct Permitted {
    stream: Compat<yamux::Stream>,
    _permit: OwnedSemaphorePermit,
}

impl tokio::io::AsyncRead for Permitted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Permitted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The public side of a mux connection.
#[derive(Debug, Clone)]
pub(crate) struct MuxDialer {
    opens: mpsc::Sender<Open>,
    slots: Arc<Semaphore>,
    closed: CancellationToken,
    dial_timeout: Duration,
}

impl MuxDialer {
    pub(crate) fn new(io: impl Io, config: &MuxConfig) -> MuxDialer {
        let (opens, closed) = start(io, config, yamux::Mode::Client, None);
        MuxDialer {
            opens,
            slots: Arc::new(Semaphore::new(config.max_streams.max(1))),
            closed,
            dial_timeout: config.dial_timeout,
        }
    }

    /// Opens a stream: waits for a free slot (back-pressure), then asks the driver.
    pub(crate) async fn dial(&self) -> Result<RevConn> {
        if self.closed.is_cancelled() {
            return Err(Error::DialerClosed);
        }
        let open = async {
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::DialerClosed)?;
            let (tx, rx) = oneshot::channel();
            self.opens.send(tx).await.map_err(|_| Error::DialerClosed)?;
            let mut stream = rx
                .await
                .map_err(|_| Error::DialerClosed)?
                .map_err(|_| Error::DialerClosed)?;
            // yamux announces a stream with its first frame: an empty one now makes the
            // peer's accept() return at dial time, as in v2, not at the first write.
            futures_util::AsyncWriteExt::write(&mut stream, &[])
                .await
                .map_err(|_| Error::DialerClosed)?;
            Ok(RevConn::new(Permitted {
                stream: stream.compat(),
                _permit: permit,
            }))
        };
        tokio::select! {
            r = tokio::time::timeout(self.dial_timeout, open) => r.map_err(|_| Error::Timeout(self.dial_timeout))?,
            _ = self.closed.cancelled() => Err(Error::DialerClosed),
        }
    }

    pub(crate) fn close(&self) {
        self.closed.cancel();
    }

    pub(crate) fn closed(&self) -> &CancellationToken {
        &self.closed
    }
}

/// Serves the private side of a mux connection: accepted streams go to `conns` (a full
/// queue resets the stream); returns the token that is cancelled when the connection ends
/// (cancel it to close the connection).
pub(crate) fn listen(
    io: impl Io,
    config: &MuxConfig,
    conns: mpsc::Sender<RevConn>,
) -> CancellationToken {
    // The private side opens no streams: the open requests' sender is dropped at once,
    // which the driver reads as "no more requests" and keeps serving inbound streams.
    let (_opens, closed) = start(io, config, yamux::Mode::Server, Some(conns));
    closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepting_101_names_the_protocol() {
        let parsed = crate::http1::parse_response_head(crate::http1::MUX_SWITCHING_PROTOCOLS)
            .expect("a valid head");
        let crate::http1::Parsed::Complete(head, n) = parsed else {
            panic!("incomplete head");
        };
        assert_eq!(n, crate::http1::MUX_SWITCHING_PROTOCOLS.len());
        assert_eq!(head.status, 101);
        let value = head
            .header(MUX_HEADER)
            .map(|v| String::from_utf8_lossy(v).into_owned());
        assert!(offers_mux(value.as_deref()));
    }
}
