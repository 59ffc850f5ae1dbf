//! The coordinator's HTTP listener, within `netguard`'s limits: connection caps (in all
//! and per client address), a request-head timeout that is also the keep-alive idle
//! limit, an idle limit on request bodies, a TLS handshake limit, and accept errors that
//! back off instead of spinning. `axum::serve` has none of these.
//!
//! With TLS (`[tls] enabled`) every connection is TLS. In one-port mode (`[tls]
//! one_port`, as upstream's coordinator ran) a connection whose first request is
//! `/reverse` or `/revdial` goes to the reverse pool, which answers with Go's exact bytes
//! and keeps the connection for revdial; every other connection is HTTP for the router.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use bytes::BytesMut;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use pool::providers::reverse::ReversePool;
use pool::tls::ServerTls;
use revdial::HijackedRequest;
use revdial::http1::{MAX_HEAD, Parsed, parse_request_head};
use revdial::io::Rewind;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;

/// How long requests in flight may finish after the shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What sits in front of the router on each connection.
#[derive(Debug, Clone)]
pub struct Front {
    /// TLS for every connection.
    pub tls: Option<ServerTls>,
    /// The reverse pool, for one-port mode's `/reverse` and `/revdial`.
    pub reverse: Option<ReversePool>,
    /// A registration's keep-alive interval and write timeout: its socket is tuned so
    /// that a machine that vanishes without a FIN is dropped within their sum, as on
    /// the reverse pool's own listener.
    pub control: (Duration, Duration),
}

/// Serves `app` on `listener` until `shutdown` completes, then drains for up to
/// [`SHUTDOWN_GRACE`] (open log streams are cut off then).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: netguard::Limits,
    front: Front,
    shutdown: impl Future<Output = ()>,
) {
    let guard = netguard::Guard::new(limits);
    let mut log = netguard::AcceptLog::new("coordinator");
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let pickup = front.reverse.as_ref().map(|p| p.pickup_service());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer, permit) = tokio::select! {
            _ = &mut shutdown => break,
            c = netguard::accept_admitted(&listener, &guard, &mut log) => c,
        };
        let _ = tcp.set_nodelay(true);
        let (app, front, pickup, guard) =
            (app.clone(), front.clone(), pickup.clone(), guard.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(tls) = front.tls else {
                return http(tcp, app, peer, &limits, watcher).await;
            };
            let io = match guard.handshake(tls.accept(tcp)).await {
                Ok(io) => io,
                Err(e) => {
                    tracing::debug!(%peer, "{e}");
                    return;
                }
            };
            let (Some(pool), Some(pickup)) = (front.reverse, pickup) else {
                return http(io, app, peer, &limits, watcher).await;
            };
            // One port: read the first request head to choose, then replay it.
            let mut buf = BytesMut::with_capacity(1024);
            let mut io = io;
            let head = tokio::time::timeout(limits.header_read, first_head(&mut io, &mut buf));
            match head.await {
                Ok(Some((head, n))) if matches!(head.path(), "/reverse" | "/revdial") => {
                    let rest = buf.split_off(n).freeze();
                    let reverse = head.path() == "/reverse";
                    if reverse {
                        let (keep_alive, write_timeout) = front.control;
                        if let Err(e) = revdial::tcp::tune_control_socket(
                            io.get_ref(),
                            keep_alive,
                            write_timeout,
                        ) {
                            tracing::debug!(%peer, "tuning the socket: {e}");
                        }
                    }
                    let req = HijackedRequest {
                        head,
                        io: Rewind::new(rest, io),
                        tls: true,
                    };
                    let _ = if reverse {
                        pool.handle_reverse(req).await.map(drop)
                    } else {
                        pickup.handle(req).await.map(drop)
                    };
                }
                // Anything else, malformed heads included, is the router's (hyper
                // answers those as it does on any connection).
                Ok(_) => http(Rewind::new(buf.freeze(), io), app, peer, &limits, watcher).await,
                Err(_) => {}
            }
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: requests still open after {SHUTDOWN_GRACE:?} were cut off");
    }
}

/// Reads until a complete request head is in `buf` (which keeps every byte read);
/// `None` when the connection ends first or sends no HTTP head.
async fn first_head<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
) -> Option<(revdial::http1::RequestHead, usize)> {
    loop {
        match parse_request_head(buf) {
            Ok(Parsed::Complete(head, n)) => return Some((head, n)),
            Ok(Parsed::Incomplete) if buf.len() < MAX_HEAD => {}
            _ => return None,
        }
        if io.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// Serves the router on one connection until it ends (or the shutdown's grace does),
/// with the client's address on every request (for the audit log: axum's `ConnectInfo`).
async fn http<IO>(
    io: IO,
    app: Router,
    peer: SocketAddr,
    limits: &netguard::Limits,
    watcher: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = tower::util::MapRequest::new(app, move |mut r: axum::extract::Request<_>| {
        r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        r
    });
    let conn = limits
        .http1()
        .serve_connection(TokioIo::new(io), limits.service(app));
    let _ = watcher.watch(conn).await;
}
