//! The public side: a [`Dialer`] owns the control connection of one NATed peer and turns
//! each [`Dialer::dial`] into a `conn-ready` request and, once the peer connects back
//! through the pickup service, a [`RevConn`] (spec revdial §5).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::control::{self, Command, Message};
use crate::error::{Error, Result};
use crate::io::{Io, RevConn, read_control};
use crate::mux::{Mode, MuxConfig, MuxDialer};
use crate::registry::{Registry, new_id};

/// Tunables of a [`Dialer`]; the defaults are upstream's.
#[derive(Debug, Clone)]
pub struct DialerConfig {
    /// Path (and optional query) where the pickup service is mounted. Default `/revdial`.
    pub conn_path: String,
    /// A `keep-alive` is sent after this much control-connection silence. Default 30 s.
    pub keep_alive: Duration,
    /// Each control write must finish within this; otherwise the Dialer closes. Default 10 s.
    pub write_timeout: Duration,
    /// A dial that gets no pickup within this fails with [`Error::Timeout`]. Upstream has
    /// no limit (callers bound dials with their context); default 30 s so an uncorrelated
    /// failure can never hang a caller forever.
    pub dial_timeout: Duration,
}

impl Default for DialerConfig {
    fn default() -> Self {
        DialerConfig {
            conn_path: "/revdial".into(),
            keep_alive: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            dial_timeout: Duration::from_secs(30),
        }
    }
}

/// State shared by the handle and the two background tasks.
struct Shared {
    registry: Registry,
    /// Outstanding tickets of this Dialer, oldest first (upstream's FIFO fallback for a
    /// `pickup-failed` that names no path).
    pending: Mutex<VecDeque<String>>,
    /// Tickets of dials that gave up after asking for a pickup, oldest first. Their late
    /// pickup is refused, and a Go listener then reports a failure *without* a path;
    /// such a report is absorbed by the oldest stale ticket instead of failing a live dial.
    stale: Mutex<VecDeque<(String, Instant)>>,
    closed: CancellationToken,
}

/// How long a stale ticket can absorb a late failure: the Listener's dial and switch
/// limits (20 s each upstream) plus slack.
const STALE_FOR: Duration = Duration::from_secs(60);

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Idempotent: marks closed and fails every waiting dial.
    fn close(&self) {
        self.closed.cancel();
        let tickets: Vec<String> = self.pending().drain(..).collect();
        for t in tickets {
            if let Some(tx) = self.registry.take(&t) {
                let _ = tx.send(Err(Error::DialerClosed));
            }
        }
    }

    fn stale(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Instant)>> {
        self.stale.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets a finished dial; one that ended without an outcome becomes stale.
    fn forget(&self, ticket: &str, completed: bool) {
        self.pending().retain(|t| t != ticket);
        if self.registry.take(ticket).is_some() && !completed && !self.closed.is_cancelled() {
            let mut stale = self.stale();
            let now = Instant::now();
            stale.retain(|(_, at)| now.duration_since(*at) < STALE_FOR);
            stale.push_back((ticket.to_owned(), now));
        }
    }

    /// Delivers a `pickup-failed` to the dial whose ticket is in `conn_path`. A report for
    /// a stale or unknown ticket is dropped. A report that names no ticket at all (Go
    /// listeners omit the path after a refused pickup) is absorbed by the oldest stale
    /// ticket if there is one, and otherwise fails the oldest waiting dial, as upstream
    /// does.
    fn pickup_failed(&self, conn_path: &str, err: String) {
        let named = ticket_of(conn_path);
        if let Some(t) = &named {
            let mut stale = self.stale();
            if let Some(i) = stale.iter().position(|(s, _)| s == t) {
                stale.remove(i);
                return;
            }
        }
        let ticket = match named {
            Some(t) if self.pending().contains(&t) => Some(t),
            // A ticket that is neither waiting nor stale (forged, or long finished)
            // says nothing about the dials that are waiting: ignore it.
            Some(_) => return,
            None => {
                let now = Instant::now();
                let mut stale = self.stale();
                stale.retain(|(_, at)| now.duration_since(*at) < STALE_FOR);
                if stale.pop_front().is_some() {
                    return;
                }
                drop(stale);
                self.pending().front().cloned()
            }
        };
        if let Some(t) = ticket {
            self.pending().retain(|p| *p != t);
            if let Some(tx) = self.registry.take(&t) {
                let _ = tx.send(Err(Error::PickupFailed(err)));
            }
        }
    }
}

/// The `revdial.dialer` parameter of a pickup path.
fn ticket_of(conn_path: &str) -> Option<String> {
    let query = conn_path.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("revdial.dialer="))
        .map(str::to_owned)
}

struct Inner {
    id: String,
    base: String,
    config: DialerConfig,
    shared: Arc<Shared>,
    requests: mpsc::UnboundedSender<String>,
}

impl Drop for Inner {
    /// The last handle gone closes the control connection: nobody can dial any more.
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Dials connections to a NATed peer over its control connection. Cheap to clone; the
/// control connection closes when [`close`](Dialer::close) is called, when it fails, or
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Dialer {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    V2(Arc<Inner>),
    Mux(Arc<MuxInner>),
}

/// A mux-mode Dialer's state; the last handle gone closes the connection.
struct MuxInner {
    id: String,
    dialer: MuxDialer,
}

impl Drop for MuxInner {
    fn drop(&mut self) {
        self.dialer.close();
    }
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialer")
            .field("id", &self.id())
            .field("mode", &self.mode())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Dialer {
    /// Starts serving `control`, the connection the peer registered on (after the `101`).
    /// Must be called inside a tokio runtime: it spawns the control reader and writer.
    pub fn new<IO: Io>(control: IO, registry: &Registry, config: DialerConfig) -> Dialer {
        let shared = Arc::new(Shared {
            registry: registry.clone(),
            pending: Mutex::new(VecDeque::new()),
            stale: Mutex::new(VecDeque::new()),
            closed: CancellationToken::new(),
        });
        let (rd, wr) = tokio::io::split(control);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(wr, rx, shared.clone(), config.clone()));
        tokio::spawn(read_loop(rd, shared.clone()));
        let sep = if config.conn_path.contains('?') {
            '&'
        } else {
            '?'
        };
        let base = format!("{}{sep}revdial.dialer=", config.conn_path);
        Dialer {
            kind: Kind::V2(Arc::new(Inner {
                id: new_id(),
                base,
                config,
                shared,
                requests: tx,
            })),
        }
    }

    /// Serves `control` in mux mode (both sides agreed on it at registration): each
    /// [`dial`](Dialer::dial) opens a stream on `control` itself, with no dial-back.
    /// Must be called inside a tokio runtime.
    pub fn new_mux<IO: Io>(control: IO, config: &MuxConfig) -> Dialer {
        Dialer {
            kind: Kind::Mux(Arc::new(MuxInner {
                id: new_id(),
                dialer: MuxDialer::new(control, config),
            })),
        }
    }

    /// This Dialer's id (32 hex), for logs and status pages. Pickup paths carry
    /// per-dial tickets instead (see [`crate::registry`]).
    pub fn id(&self) -> &str {
        match &self.kind {
            Kind::V2(inner) => &inner.id,
            Kind::Mux(inner) => &inner.id,
        }
    }

    /// The protocol this Dialer speaks.
    pub fn mode(&self) -> Mode {
        match &self.kind {
            Kind::V2(_) => Mode::V2,
            Kind::Mux(_) => Mode::Mux,
        }
    }

    /// Asks the peer for a new connection and waits for it.
    ///
    /// Fails with [`Error::DialerClosed`] if the Dialer is or becomes closed,
    /// [`Error::PickupFailed`] if the peer reports it could not connect back, and
    /// [`Error::Timeout`] after [`DialerConfig::dial_timeout`]. Dropping the future
    /// cancels the dial; a pickup that arrives later is refused and closed.
    pub async fn dial(&self) -> Result<RevConn> {
        let inner = match &self.kind {
            Kind::V2(inner) => inner,
            Kind::Mux(mux) => return mux.dialer.dial().await,
        };
        let shared = &inner.shared;
        // Cancellation first: a closed Dialer never asks the peer for anything.
        if shared.closed.is_cancelled() {
            return Err(Error::DialerClosed);
        }
        let ticket = new_id();
        let (tx, rx) = oneshot::channel();
        shared.registry.insert(ticket.clone(), tx);
        shared.pending().push_back(ticket.clone());
        let mut guard = Forget {
            shared,
            ticket: &ticket,
            completed: false,
        };
        let path = format!("{}{ticket}", inner.base);
        if inner.requests.send(path).is_err() {
            return Err(Error::DialerClosed);
        }
        let limit = inner.config.dial_timeout;
        tokio::select! {
            biased;
            r = rx => {
                guard.completed = true;
                r.unwrap_or(Err(Error::DialerClosed))
            }
            _ = shared.closed.cancelled() => Err(Error::DialerClosed),
            _ = tokio::time::sleep(limit) => Err(Error::Timeout(limit)),
        }
    }

    /// Closes the control connection and fails every waiting dial. Connections already
    /// returned by [`dial`](Dialer::dial) stay open. Idempotent.
    pub fn close(&self) {
        match &self.kind {
            Kind::V2(inner) => inner.shared.close(),
            Kind::Mux(mux) => mux.dialer.close(),
        }
    }

    fn closed(&self) -> &CancellationToken {
        match &self.kind {
            Kind::V2(inner) => &inner.shared.closed,
            Kind::Mux(mux) => mux.dialer.closed(),
        }
    }

    /// Whether the Dialer is closed.
    pub fn is_closed(&self) -> bool {
        self.closed().is_cancelled()
    }

    /// Completes when the Dialer closes for any reason (upstream's `Done()`).
    pub async fn done(&self) {
        self.closed().cancelled().await
    }
}

/// Removes a dial's ticket however the dial ends (success, error, or the future dropped).
struct Forget<'a> {
    shared: &'a Shared,
    ticket: &'a str,
    completed: bool,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.shared.forget(self.ticket, self.completed);
    }
}

async fn write_msgs<W: AsyncWrite + Unpin>(
    wr: &mut W,
    buf: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    let write = async {
        wr.write_all(buf).await?;
        wr.flush().await
    };
    match tokio::time::timeout(limit, write).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "revdial control write timed out",
        )),
    }
}

/// The serve loop: `keep-alive` at start and after every message or idle interval; one
/// `conn-ready` per dial. Dials that are already queued go out in one write, followed by
/// one `keep-alive` (the peer sees exactly one `conn-ready` per dial).
async fn write_loop<IO: Io>(
    mut wr: WriteHalf<IO>,
    mut requests: mpsc::UnboundedReceiver<String>,
    shared: Arc<Shared>,
    config: DialerConfig,
) {
    let mut buf = Vec::with_capacity(512);
    control::encode(&Message::keep_alive(), &mut buf);
    loop {
        if let Err(e) = write_msgs(&mut wr, &buf, config.write_timeout).await {
            tracing::debug!(error = %e, "revdial.Dialer: control write failed; closing");
            break;
        }
        buf.clear();
        tokio::select! {
            _ = shared.closed.cancelled() => break,
            _ = tokio::time::sleep(config.keep_alive) => {}
            path = requests.recv() => {
                let Some(path) = path else { break };
                control::encode(&Message::conn_ready(&path), &mut buf);
                while let Ok(path) = requests.try_recv() {
                    control::encode(&Message::conn_ready(&path), &mut buf);
                }
            }
        }
        control::encode(&Message::keep_alive(), &mut buf);
    }
    shared.close();
    let _ = wr.shutdown().await;
}

/// Reads control lines; only `pickup-failed` means anything. Any read error, EOF, an
/// over-long line or invalid JSON closes the Dialer.
async fn read_loop<IO: Io>(mut rd: ReadHalf<IO>, shared: Arc<Shared>) {
    // The peer (a Go Listener above all) never writes unless it must: no idle limit here;
    // the keep-alives this side writes, with TCP_USER_TIMEOUT, detect a dead peer.
    read_control(&mut rd, &shared.closed, "Dialer", None, |m| {
        if m.command == Command::PickupFailed {
            shared.pickup_failed(&m.conn_path, m.err);
        }
    })
    .await;
    shared.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_naming_an_unknown_ticket_fails_no_dial() {
        let shared = Shared {
            registry: Registry::new(),
            pending: Mutex::new(VecDeque::new()),
            stale: Mutex::new(VecDeque::new()),
            closed: CancellationToken::new(),
        };
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        shared.registry.insert("live".into(), tx);
        shared.pending().push_back("live".into());
        shared.pickup_failed("/revdial?revdial.dialer=forged", "nope".into());
        assert!(rx.try_recv().is_err(), "the live dial was failed");
        assert!(shared.registry.contains("live"));
        // A report that names no ticket still fails the oldest dial (upstream's rule).
        shared.pickup_failed("", "refused".into());
        assert!(matches!(rx.try_recv(), Ok(Err(Error::PickupFailed(_)))));
    }

    #[test]
    fn tickets_are_found_in_paths() {
        assert_eq!(
            ticket_of("/revdial?revdial.dialer=ab").as_deref(),
            Some("ab")
        );
        assert_eq!(ticket_of("/x?a=b&revdial.dialer=cd").as_deref(), Some("cd"));
        assert_eq!(ticket_of("/revdial"), None);
        assert_eq!(ticket_of(""), None);
    }
}
