//! Multiplexed mode: every logical connection is an HTTP/2 stream over the registration
//! connection itself, instead of a new TCP+TLS connection dialed back (v2).
//!
//! Negotiated at registration: the private side (a buildlet) sends
//! [`MUX_HEADER`]` : `[`MUX_PROTOCOL`]; a public side that supports it answers its `101`
//! with the same header, and both then speak HTTP/2 on the connection. Go peers never
//! send the header, so they keep speaking v2; either of our sides falls back to v2 when
//! the other does not offer mux.
//!
//! The public side is the HTTP/2 client: [`MuxDialer::dial`] sends a request whose body
//! is the stream's bytes one way; the private side, the server, answers it at once and the
//! response body carries the other way. Closing the write half ends the body
//! (`END_STREAM`), as a TCP half-close would; dropping a stream resets it.
//!
//! Why HTTP/2 (the `h2` crate under hyper and tonic) rather than yamux: h2 lets each
//! side change its stream window at any time (`SETTINGS_INITIAL_WINDOW_SIZE` applies to
//! open streams too), so a stream's window can follow the bandwidth-delay product from
//! a useful size, where yamux 0.14 starts every stream at 256 KiB and grows it only
//! after two round trips. The measured difference is in `BENCHMARKS.md`. h2 has no
//! window tuning or keep-alive of its own; [`Pinger`] below does both with PINGs.
//!
//! Flow control and memory: each stream may have at most its window received and not
//! yet read (starting at [`INITIAL_STREAM_WINDOW`], doubled while a round trip's worth of
//! data fills two thirds of it, up to [`MuxConfig::max_stream_window`]); all streams of a
//! connection together at most [`MuxConfig::max_receive_window`]. A writer can queue at
//! most [`SEND_BUFFER`] bytes in a stream before it waits for the peer's window. Stream
//! opening is bounded by a semaphore, so a burst of dials waits for streams to end instead
//! of failing or growing without bound.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::{Ping, PingPong, Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::io::{Io, RevConn};

/// The registration header that offers (request) and accepts (response) mux mode.
pub const MUX_HEADER: &str = "X-Revdial-Mux";
/// Its value: the multiplexer and this crate's version of its use.
pub const MUX_PROTOCOL: &str = "h2/1";

/// Which protocol a [`crate::Dialer`] or [`crate::Listener`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// revdial v2: one dialed-back connection per stream (what Go peers speak).
    V2,
    /// HTTP/2 streams over the registration connection.
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

/// A new stream's receive window: large enough that a stream on a fast link does not
/// wait for the tuning, small beside the connection's bound.
pub const INITIAL_STREAM_WINDOW: u32 = 2 << 20;
/// The most a writer may queue in one stream beyond what the peer's window lets out.
pub const SEND_BUFFER: usize = 1 << 20;
/// The block written bytes are copied into, reused once h2 has sent them.
const WRITE_BLOCK: usize = 256 << 10;
/// The largest frame either side accepts: fewer frame headers and wake-ups per byte.
const MAX_FRAME: u32 = 256 << 10;
/// HTTP/2's largest window.
const MAX_WINDOW: usize = (1 << 31) - 1;

/// Limits of a mux connection.
#[derive(Debug, Clone)]
pub struct MuxConfig {
    /// Streams open at once; further dials wait for one to end. Default 128.
    pub max_streams: usize,
    /// Bytes all streams of the connection may have received and not yet read (the
    /// connection's memory bound). Default 128 MiB.
    pub max_receive_window: usize,
    /// Bytes one stream may have received and not yet read: its window grows with the
    /// measured bandwidth-delay product up to this. Default 32 MiB.
    pub max_stream_window: usize,
    /// A dial that cannot open a stream within this fails with [`Error::Timeout`].
    pub dial_timeout: Duration,
    /// A PING is sent after this long without one. Default 10 s.
    pub keep_alive: Duration,
    /// A PING unanswered for this long means the peer is gone: the connection is
    /// closed. Default 10 s.
    pub ping_timeout: Duration,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            max_streams: 128,
            max_receive_window: 128 << 20,
            max_stream_window: 32 << 20,
            dial_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(10),
        }
    }
}

impl MuxConfig {
    /// The default limits, with PINGs that follow a v2 Dialer's keep-alive: one every
    /// `keep_alive`, and one not answered within `write_timeout` ends the connection,
    /// so a vanished peer is noticed as soon in either mode.
    pub fn following(dialer: &crate::DialerConfig) -> MuxConfig {
        MuxConfig {
            keep_alive: dialer.keep_alive,
            ping_timeout: dialer.write_timeout,
            ..MuxConfig::default()
        }
    }

    /// The connection window and the largest and first stream windows, within
    /// HTTP/2's bounds and each other.
    fn windows(&self) -> (u32, u32, u32) {
        let conn = self.max_receive_window.clamp(1 << 16, MAX_WINDOW) as u32;
        let stream_max = self.max_stream_window.clamp(1 << 16, conn as usize) as u32;
        (conn, stream_max, INITIAL_STREAM_WINDOW.min(stream_max))
    }

    /// Streams HTTP/2 may count at once. It counts a stream until both sides have
    /// closed it; our semaphore is the limit callers see, and this one is set well above
    /// it so that streams still closing never make a dial wait on HTTP/2 instead.
    fn h2_streams(&self) -> u32 {
        (self.max_streams.max(1) * 2 + 16).min(u32::MAX as usize) as u32
    }
}

/// Sets the limits both HTTP/2 builders share (they are separate types in h2).
macro_rules! configure {
    ($builder:expr, $config:expr) => {{
        let (conn, _, stream) = $config.windows();
        $builder
            .initial_window_size(stream)
            .initial_connection_window_size(conn)
            .max_frame_size(MAX_FRAME)
            .max_concurrent_streams($config.h2_streams())
            .max_send_buffer_size(SEND_BUFFER)
    }};
}

/// Keep-alive and window tuning, with PINGs (one in flight at a time).
///
/// While a stream window is below its bound and data arrives, PINGs go back to back;
/// each answer closes a sample: the bytes read in that round trip. A sample over two
/// thirds of the window means the window, not the link, limited it: the window doubles
/// (or grows to twice the sample). A sample that does not grow it means the link is the
/// limit: the next one waits, twice as long each time (1 ms up to 1 s), so a fast link
/// with a short round trip is not flooded with PINGs. When no sample is wanted, a PING
/// goes every `keep_alive`; an answer that does not come within `ping_timeout` ends the
/// connection.
struct Pinger {
    pings: PingPong,
    /// Bytes read from all streams of the connection, counted by [`MuxStream`].
    received: Arc<AtomicU64>,
    window: u32,
    max_window: u32,
    /// When the PING in flight was sent, and `received` then.
    in_flight: Option<(Instant, u64)>,
    /// `received` at the last answer: more since then means data is flowing.
    at_answer: u64,
    /// No window sample before this (see the type's comment), and the pause that set it.
    next_sample: Instant,
    pause: Duration,
    /// The next keep-alive, or the in-flight PING's deadline.
    timer: Pin<Box<Sleep>>,
    keep_alive: Duration,
    ping_timeout: Duration,
}

/// The shortest and longest wait between window samples that did not grow it.
const MIN_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// What the driver must do after [`Pinger::poll`].
enum Tune {
    /// A PING was queued, or the window grew to this: poll the connection again.
    Poll(Option<u32>),
    /// The peer did not answer in time, or the connection failed.
    Dead,
}

impl Pinger {
    fn new(pings: PingPong, received: Arc<AtomicU64>, config: &MuxConfig) -> Pinger {
        let (_, max_window, window) = config.windows();
        Pinger {
            pings,
            received,
            window,
            max_window,
            in_flight: None,
            at_answer: 0,
            next_sample: Instant::now(),
            pause: Duration::ZERO,
            timer: Box::pin(tokio::time::sleep(config.keep_alive)),
            keep_alive: config.keep_alive,
            ping_timeout: config.ping_timeout,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Tune> {
        let received = self.received.load(Ordering::Relaxed);
        if let Some((sent, at_send)) = self.in_flight {
            match self.pings.poll_pong(cx) {
                Poll::Ready(Ok(_)) => {
                    self.in_flight = None;
                    self.at_answer = received;
                    self.timer.as_mut().reset(Instant::now() + self.keep_alive);
                    let sample = received - at_send;
                    let grown = self.grow(sample);
                    self.pause = match grown {
                        Some(_) => Duration::ZERO,
                        None => (self.pause * 2).clamp(MIN_PAUSE, MAX_PAUSE),
                    };
                    self.next_sample = Instant::now() + self.pause;
                    tracing::trace!(rtt = ?sent.elapsed(), sample, window = self.window, "revdial mux pong");
                    return Poll::Ready(Tune::Poll(grown));
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Tune::Dead),
                Poll::Pending => {}
            }
            if self.timer.as_mut().poll(cx).is_ready() {
                tracing::debug!(waited = ?sent.elapsed(), "revdial mux peer did not answer a ping");
                return Poll::Ready(Tune::Dead);
            }
            return Poll::Pending;
        }
        // Data flowing wakes the driver often enough to notice `next_sample` passing.
        let sample_wanted = self.window < self.max_window
            && received > self.at_answer
            && Instant::now() >= self.next_sample;
        if !sample_wanted && self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if self.pings.send_ping(Ping::opaque()).is_err() {
            return Poll::Ready(Tune::Dead);
        }
        self.in_flight = Some((Instant::now(), received));
        self.timer
            .as_mut()
            .reset(Instant::now() + self.ping_timeout);
        Poll::Ready(Tune::Poll(None))
    }

    fn grow(&mut self, sample: u64) -> Option<u32> {
        let grown = grown_window(self.window, self.max_window, sample)?;
        self.window = grown;
        Some(grown)
    }
}

/// The new stream window if `sample` bytes read in one round trip show that `window`,
/// not the link, was the limit: over two thirds of it used. At least doubled, or twice
/// the sample, never past `max`.
fn grown_window(window: u32, max: u32, sample: u64) -> Option<u32> {
    if window >= max || sample < u64::from(window) / 3 * 2 {
        return None;
    }
    let want = u64::from(window)
        .saturating_mul(2)
        .max(sample.saturating_mul(2));
    Some(want.min(u64::from(max)) as u32)
}

/// One side's HTTP/2 connection, as the driver sees it.
trait Side {
    /// Moves bytes; for the server also hands out accepted streams. `Ready` means ended.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// Asks the peer to use `window` for every stream it sends on.
    fn set_stream_window(&mut self, window: u32) -> bool;
}

/// The public side: h2's client connection future.
struct ClientSide<T: Io>(h2::client::Connection<T, Bytes>);

impl<T: Io> Side for ClientSide<T> {
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|r| {
            if let Err(e) = r {
                tracing::debug!(error = %e, "revdial mux connection failed");
            }
        })
    }

    fn set_stream_window(&mut self, window: u32) -> bool {
        self.0.set_initial_window_size(window).is_ok()
    }
}

/// The private side: h2's server connection and where accepted streams go.
struct ServerSide<T: Io> {
    conn: h2::server::Connection<T, Bytes>,
    conns: mpsc::Sender<RevConn>,
    received: Arc<AtomicU64>,
}

impl<T: Io> Side for ServerSide<T> {
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match ready!(self.conn.poll_accept(cx)) {
                Some(Ok((request, mut respond))) => {
                    // A full queue means the accepting side stopped accepting: the stream
                    // is refused (the dialer sees it reset) rather than buffered.
                    let Ok(slot) = self.conns.try_reserve() else {
                        respond.send_reset(Reason::REFUSED_STREAM);
                        continue;
                    };
                    match respond.send_response(http::Response::new(()), false) {
                        Ok(send) => slot.send(RevConn::new(MuxStream {
                            send,
                            recv: Recv::Open(request.into_body()),
                            chunk: Bytes::new(),
                            out: BytesMut::new(),
                            received: self.received.clone(),
                            _permit: None,
                        })),
                        Err(e) => tracing::debug!(error = %e, "revdial mux stream lost at accept"),
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "revdial mux connection failed");
                    return Poll::Ready(());
                }
                None => return Poll::Ready(()),
            }
        }
    }

    fn set_stream_window(&mut self, window: u32) -> bool {
        self.conn.set_initial_window_size(window).is_ok()
    }
}

/// Drives one connection until it ends or `closed` is cancelled, then cancels `closed`.
async fn drive(mut side: impl Side, mut pinger: Pinger, closed: CancellationToken) {
    // A window the peer has not yet acknowledged the last change before.
    let mut pending_window: Option<u32> = None;
    let ended = poll_fn(|cx| {
        loop {
            if side.poll_io(cx).is_ready() {
                return Poll::Ready(());
            }
            if let Some(w) = pending_window
                && side.set_stream_window(w)
            {
                pending_window = None;
                continue; // send the SETTINGS
            }
            match pinger.poll(cx) {
                Poll::Ready(Tune::Poll(grown)) => {
                    if grown.is_some() {
                        pending_window = grown;
                    }
                }
                Poll::Ready(Tune::Dead) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    tokio::select! {
        _ = ended => {}
        _ = closed.cancelled() => {}
    }
    closed.cancel();
}

/// A stream's receiving half: on the public side its response is awaited lazily, so that
/// a dial returns as soon as the request is sent.
enum Recv {
    Waiting(h2::client::ResponseFuture),
    Open(RecvStream),
    Ended,
}

/// One stream as tokio I/O.
struct MuxStream {
    send: SendStream<Bytes>,
    recv: Recv,
    /// Read from h2, not yet from us.
    chunk: Bytes,
    /// Where written bytes are copied for h2 (see `poll_write`).
    out: BytesMut,
    received: Arc<AtomicU64>,
    /// The dialer's slot, held until the stream is dropped.
    _permit: Option<OwnedSemaphorePermit>,
}

fn io_error(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e
            .into_io()
            .unwrap_or_else(|| io::ErrorKind::BrokenPipe.into());
    }
    let kind = match e.reason() {
        Some(Reason::CANCEL | Reason::REFUSED_STREAM) => io::ErrorKind::ConnectionReset,
        _ => io::ErrorKind::BrokenPipe,
    };
    io::Error::new(kind, e)
}

impl AsyncRead for MuxStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.chunk.is_empty() {
                let n = this.chunk.len().min(buf.remaining());
                buf.put_slice(&this.chunk.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match &mut this.recv {
                Recv::Waiting(response) => match ready!(Pin::new(response).poll(cx)) {
                    Ok(response) => this.recv = Recv::Open(response.into_body()),
                    Err(e) => {
                        this.recv = Recv::Ended;
                        return Poll::Ready(Err(io_error(e)));
                    }
                },
                Recv::Open(body) => match ready!(body.poll_data(cx)) {
                    Some(Ok(data)) => {
                        // The window reopens as data leaves h2's buffer: what a stream
                        // holds unread is its window plus at most this one frame.
                        let _ = body.flow_control().release_capacity(data.len());
                        this.received
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                        this.chunk = data;
                    }
                    Some(Err(e)) => {
                        this.recv = Recv::Ended;
                        return Poll::Ready(Err(io_error(e)));
                    }
                    None => this.recv = Recv::Ended,
                },
                Recv::Ended => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        let send = &mut this.send;
        send.reserve_capacity(buf.len().min(SEND_BUFFER));
        loop {
            let capacity = send.capacity();
            if capacity > 0 {
                let n = capacity.min(buf.len());
                // Chunks are cut from one block that is reused once h2 has written
                // them all: a fresh allocation per write would be an mmap and page
                // faults for every large write.
                let out = &mut this.out;
                if out.capacity() < n {
                    out.reserve(n.max(WRITE_BLOCK));
                }
                out.extend_from_slice(&buf[..n]);
                send.send_data(out.split().freeze(), false)
                    .map_err(io_error)?;
                return Poll::Ready(Ok(n));
            }
            match ready!(send.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection's driver writes queued data as fast as the socket takes it.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // END_STREAM; a stream already ended or reset has nothing left to close.
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        // As a closed socket sends FIN: the peer reads what was sent, then the end. (A
        // stream already ended refuses this, harmlessly; h2 resets what is left open.)
        let _ = self.send.send_data(Bytes::new(), true);
    }
}

/// The public side of a mux connection.
#[derive(Debug, Clone)]
pub(crate) struct MuxDialer {
    /// The connection's request handle, once its handshake is done.
    requests: watch::Receiver<Option<h2::client::SendRequest<Bytes>>>,
    received: Arc<AtomicU64>,
    slots: Arc<Semaphore>,
    closed: CancellationToken,
    dial_timeout: Duration,
}

impl MuxDialer {
    pub(crate) fn new(io: impl Io, config: &MuxConfig) -> MuxDialer {
        let closed = CancellationToken::new();
        let received = Arc::new(AtomicU64::new(0));
        let (ready, requests) = watch::channel(None);
        let mut builder = h2::client::Builder::new();
        configure!(builder, config).enable_push(false);
        let handshake = builder.handshake::<_, Bytes>(io);
        let (config_, received_, token) = (config.clone(), received.clone(), closed.clone());
        tokio::spawn(async move {
            // The client's handshake only writes its preface: no round trip.
            let (sender, mut conn) = match handshake.await {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "revdial mux handshake failed");
                    token.cancel();
                    return;
                }
            };
            let _ = ready.send(Some(sender));
            let pings = conn.ping_pong().expect("taken once");
            let pinger = Pinger::new(pings, received_, &config_);
            drive(ClientSide(conn), pinger, token).await;
        });
        MuxDialer {
            requests,
            received,
            slots: Arc::new(Semaphore::new(config.max_streams.max(1))),
            closed,
            dial_timeout: config.dial_timeout,
        }
    }

    /// Opens a stream: waits for a free slot (back-pressure), then sends its request.
    pub(crate) async fn dial(&self) -> Result<RevConn> {
        if self.closed.is_cancelled() {
            return Err(Error::DialerClosed);
        }
        let open = async {
            let requests = self
                .requests
                .clone()
                .wait_for(Option::is_some)
                .await
                .map_err(|_| Error::DialerClosed)?
                .clone()
                .expect("waited for");
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::DialerClosed)?;
            let mut requests = requests.ready().await.map_err(|_| Error::DialerClosed)?;
            let request = http::Request::post("https://revdial/")
                .body(())
                .expect("a valid request");
            // The request's HEADERS go out at once: the peer's accept() returns at dial
            // time, as in v2; its answer is read with the stream's first bytes.
            let (response, send) = requests
                .send_request(request, false)
                .map_err(|_| Error::DialerClosed)?;
            Ok(RevConn::new(MuxStream {
                send,
                recv: Recv::Waiting(response),
                chunk: Bytes::new(),
                out: BytesMut::new(),
                received: self.received.clone(),
                _permit: Some(permit),
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
/// queue refuses the stream); returns the token that is cancelled when the connection
/// ends (cancel it to close the connection).
pub(crate) fn listen(
    io: impl Io,
    config: &MuxConfig,
    conns: mpsc::Sender<RevConn>,
) -> CancellationToken {
    let closed = CancellationToken::new();
    let received = Arc::new(AtomicU64::new(0));
    let mut builder = h2::server::Builder::new();
    // h2 ends a connection on which more than 20 streams were reset before they were
    // accepted (its guard against "rapid reset" floods); dials cancelled in a burst do
    // exactly that, and the dialer is bounded by its own slots already.
    configure!(builder, config).max_pending_accept_reset_streams(config.h2_streams() as usize);
    let handshake = builder.handshake::<_, Bytes>(io);
    let config = config.clone();
    let token = closed.clone();
    tokio::spawn(async move {
        // The server's handshake waits for the client's preface: bounded, and given up
        // when the listener is closed.
        let conn = tokio::select! {
            r = tokio::time::timeout(config.dial_timeout, handshake) => r,
            _ = token.cancelled() => return,
        };
        let mut conn = match conn {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "revdial mux handshake failed");
                token.cancel();
                return;
            }
            Err(_) => {
                tracing::debug!("revdial mux peer sent no HTTP/2 preface");
                token.cancel();
                return;
            }
        };
        let pings = conn.ping_pong().expect("taken once");
        let pinger = Pinger::new(pings, received.clone(), &config);
        let side = ServerSide {
            conn,
            conns,
            received,
        };
        drive(side, pinger, token).await;
    });
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

    #[test]
    fn a_window_grows_only_when_a_round_trip_filled_it() {
        const M: u32 = 1 << 20;
        // A third used: the link, not the window, was the limit.
        assert_eq!(grown_window(M, 32 * M, u64::from(M) / 3), None);
        // Two thirds used: doubled; more than the window (the peer raced ahead of a
        // change): twice the sample.
        assert_eq!(grown_window(M, 32 * M, u64::from(M)), Some(2 * M));
        assert_eq!(grown_window(M, 32 * M, 3 * u64::from(M)), Some(6 * M));
        // Never past the bound, and not at all once there.
        assert_eq!(
            grown_window(16 * M, 20 * M, u64::from(16 * M)),
            Some(20 * M)
        );
        assert_eq!(grown_window(20 * M, 20 * M, u64::MAX), None);
    }

    #[test]
    fn windows_stay_within_http2_and_each_other() {
        let tiny = MuxConfig {
            max_receive_window: 1,
            max_stream_window: 1 << 40,
            ..MuxConfig::default()
        };
        assert_eq!(tiny.windows(), (1 << 16, 1 << 16, 1 << 16));
        let huge = MuxConfig {
            max_receive_window: usize::MAX,
            max_stream_window: usize::MAX,
            ..MuxConfig::default()
        };
        let (conn, max, first) = huge.windows();
        assert_eq!((conn as usize, max as usize), (MAX_WINDOW, MAX_WINDOW));
        assert_eq!(first, INITIAL_STREAM_WINDOW);
    }
}
