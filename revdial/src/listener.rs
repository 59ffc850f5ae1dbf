//! The private (NATed) side: a [`Listener`] reads the control connection and, for each
//! `conn-ready`, connects back to the public server, switches protocols, and yields the
//! new stream from [`Listener::accept`] (spec revdial §6).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::control::{self, Command, Message};
use crate::error::{Error, Result};
use crate::http1::{SwitchError, request_switch};
use crate::io::{Io, RevConn, Rewind, read_control};
use crate::mux::{Mode, MuxConfig};

/// Opens a fresh connection to the public server, already TLS-established.
pub type DialBack =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<RevConn>> + Send>> + Send + Sync>;

/// Tunables of a [`Listener`]; the defaults are upstream's.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Limit for connecting back. Default 20 s.
    pub dial_timeout: Duration,
    /// Limit for the pickup's HTTP exchange (upstream has none; the spec recommends one).
    /// Default 20 s.
    pub switch_timeout: Duration,
    /// Picked-up connections that may wait for [`Listener::accept`]. Default 8.
    pub accept_queue: usize,
    /// Pickups in progress at once; a `conn-ready` beyond them is answered with
    /// `pickup-failed` at once. Default 128.
    pub max_pickups: usize,
    /// The control connection is closed when nothing (not even a `keep-alive`, which Go's
    /// and our Dialers send every 30 s) arrives for this long: a coordinator that vanished
    /// without a FIN is noticed, and a reconnecting buildlet registers again. Default 90 s.
    pub idle_timeout: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            dial_timeout: Duration::from_secs(20),
            switch_timeout: Duration::from_secs(20),
            accept_queue: 8,
            max_pickups: 128,
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// Accepts connections that the public side dials through its `Dialer`.
pub struct Listener {
    conns: mpsc::Receiver<RevConn>,
    closed: CancellationToken,
    mode: Mode,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("mode", &self.mode)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Listener {
    /// Starts serving `control` (the registration connection after its `101`; wrap it in
    /// [`Rewind`] if bytes were read past the `101`). `dial_back` opens each pickup
    /// connection. Must be called inside a tokio runtime.
    pub fn new<IO: Io>(control: IO, dial_back: DialBack, config: ListenerConfig) -> Listener {
        let closed = CancellationToken::new();
        let (conn_tx, conn_rx) = mpsc::channel(config.accept_queue.max(1));
        let (msg_tx, msg_rx) = mpsc::channel(8);
        let (rd, wr) = tokio::io::split(control);
        let ctx = PickupCtx {
            dial_back,
            config,
            conns: conn_tx,
            msgs: msg_tx,
            closed: closed.clone(),
        };
        tokio::spawn(read_loop(rd, ctx));
        tokio::spawn(write_loop(wr, msg_rx, closed.clone()));
        Listener {
            conns: conn_rx,
            closed,
            mode: Mode::V2,
        }
    }

    /// Serves `control` in mux mode (both sides agreed on it at registration): each
    /// stream the public side opens comes out of [`accept`](Listener::accept).
    pub fn new_mux<IO: Io>(control: IO, config: &MuxConfig) -> Listener {
        let (conn_tx, conn_rx) = mpsc::channel(config.max_streams.max(1));
        let closed = crate::mux::listen(control, config, conn_tx);
        Listener {
            conns: conn_rx,
            closed,
            mode: Mode::Mux,
        }
    }

    /// The protocol this Listener speaks.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The next picked-up connection; [`Error::ListenerClosed`] once closed.
    pub async fn accept(&mut self) -> Result<RevConn> {
        tokio::select! {
            biased;
            _ = self.closed.cancelled() => Err(Error::ListenerClosed),
            c = self.conns.recv() => c.ok_or(Error::ListenerClosed),
        }
    }

    /// Closes the control connection; `accept` fails from now on. Connections already
    /// accepted stay open. Idempotent.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Whether the Listener is closed (locally or because the control connection ended).
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// A token that is cancelled when the Listener closes; cancel it to close.
    pub fn closed_token(&self) -> CancellationToken {
        self.closed.clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

#[derive(Clone)]
struct PickupCtx {
    dial_back: DialBack,
    config: ListenerConfig,
    conns: mpsc::Sender<RevConn>,
    msgs: mpsc::Sender<Message>,
    closed: CancellationToken,
}

async fn read_loop<IO: Io>(mut rd: ReadHalf<IO>, ctx: PickupCtx) {
    let pickups = Arc::new(tokio::sync::Semaphore::new(ctx.config.max_pickups.max(1)));
    let idle = Some(ctx.config.idle_timeout);
    read_control(&mut rd, &ctx.closed, "Listener", idle, |m| {
        if m.command != Command::ConnReady {
            return;
        }
        match pickups.clone().try_acquire_owned() {
            Ok(permit) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    pickup(ctx, m.conn_path).await;
                    drop(permit);
                });
            }
            // A peer asking for more pickups than can run is answered, not queued.
            Err(_) => {
                let msg = Message::pickup_failed(&m.conn_path, "too many pickups in progress");
                let _ = ctx.msgs.try_send(msg);
            }
        }
    })
    .await;
    ctx.closed.cancel();
}

async fn write_loop<IO: Io>(
    mut wr: WriteHalf<IO>,
    mut msgs: mpsc::Receiver<Message>,
    closed: CancellationToken,
) {
    let mut buf = Vec::new();
    loop {
        let msg = tokio::select! {
            _ = closed.cancelled() => break,
            m = msgs.recv() => match m { Some(m) => m, None => break },
        };
        buf.clear();
        control::encode(&msg, &mut buf);
        let res = async {
            wr.write_all(&buf).await?;
            wr.flush().await
        }
        .await;
        if let Err(e) = res {
            tracing::warn!("revdial.Listener: error writing message to server: {e}");
            break;
        }
    }
    closed.cancel();
    let _ = wr.shutdown().await;
}

/// One pickup (spec §6.3): dial back, `GET path`, follow at most one 307, queue the stream.
async fn pickup(ctx: PickupCtx, path: String) {
    let fail = |conn_path: Option<&str>, err: String| {
        let msgs = ctx.msgs.clone();
        let msg = Message::pickup_failed(conn_path.unwrap_or(""), &err);
        async move {
            let _ = msgs.send(msg).await;
        }
    };
    let dialed = tokio::time::timeout(ctx.config.dial_timeout, (ctx.dial_back)()).await;
    let mut conn = match dialed {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return fail(Some(&path), e.to_string()).await,
        Err(_) => return fail(Some(&path), "dial timeout".into()).await,
    };
    let mut buf = BytesMut::new();
    let switched = tokio::time::timeout(
        ctx.config.switch_timeout,
        request_switch(&mut conn, &mut buf, &path, &[]),
    )
    .await;
    match switched {
        Ok(Ok(_)) => {
            let conn = RevConn::new(Rewind::new(buf.freeze(), conn));
            // Dropped (closed) if the Listener closes while the queue is full.
            tokio::select! {
                _ = ctx.closed.cancelled() => {}
                _ = ctx.conns.send(conn) => {}
            }
        }
        Ok(Err(e)) => {
            tracing::info!("revdial.Listener: failed to pick up connection to {path}: {e}");
            // Upstream's quirk: the path sent back depends on how the exchange failed.
            let conn_path = match &e {
                SwitchError::Write(_) => Some(path.as_str()),
                other => other.last_location(),
            };
            fail(conn_path, e.to_string()).await
        }
        Err(_) => fail(Some(&path), "switch failed: timeout".into()).await,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    /// A dial-back that never completes, so every pickup stays in progress.
    fn hanging() -> DialBack {
        Arc::new(|| Box::pin(std::future::pending()))
    }

    #[tokio::test]
    async fn conn_ready_beyond_the_pickup_cap_is_refused_at_once() {
        let (ours, theirs) = tokio::io::duplex(4096);
        let config = ListenerConfig {
            max_pickups: 1,
            ..ListenerConfig::default()
        };
        let _ln = Listener::new(ours, hanging(), config);
        let (rd, mut wr) = tokio::io::split(theirs);
        let mut out = Vec::new();
        for t in ["a", "b"] {
            control::encode(
                &Message::conn_ready(&format!("/revdial?revdial.dialer={t}")),
                &mut out,
            );
        }
        wr.write_all(&out).await.unwrap();
        let mut line = String::new();
        let mut rd = BufReader::new(rd);
        tokio::time::timeout(Duration::from_secs(5), rd.read_line(&mut line))
            .await
            .expect("no answer to the second conn-ready")
            .unwrap();
        assert!(line.contains("pickup-failed"), "{line}");
        assert!(line.contains("revdial.dialer=b"), "{line}");
        assert!(line.contains("too many pickups"), "{line}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_control_connection_is_closed_after_the_idle_limit() {
        let (ours, _theirs) = tokio::io::duplex(4096);
        let config = ListenerConfig {
            idle_timeout: Duration::from_secs(90),
            ..ListenerConfig::default()
        };
        let ln = Listener::new(ours, hanging(), config);
        tokio::time::sleep(Duration::from_secs(89)).await;
        assert!(!ln.is_closed());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(ln.is_closed(), "a peer silent for 91 s was kept");
    }
}
