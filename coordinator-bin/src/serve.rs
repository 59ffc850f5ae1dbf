//! The coordinator's HTTP listener, within `netguard`'s limits: connection caps (in all
//! and per client address), a request-head timeout that is also the keep-alive idle
//! limit, an idle limit on request bodies, and accept errors that back off instead of
//! spinning. `axum::serve` has none of these.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How long requests in flight may finish after the shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then drains for up to
/// [`SHUTDOWN_GRACE`] (open log streams are cut off then).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: netguard::Limits,
    shutdown: impl Future<Output = ()>,
) {
    let guard = netguard::Guard::new(limits);
    let mut log = netguard::AcceptLog::new("coordinator");
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer, permit) = tokio::select! {
            _ = &mut shutdown => break,
            c = netguard::accept_admitted(&listener, &guard, &mut log) => c,
        };
        let _ = tcp.set_nodelay(true);
        // The client's address, for the audit log (axum's `ConnectInfo`).
        let app =
            tower::util::MapRequest::new(app.clone(), move |mut r: axum::extract::Request<_>| {
                r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                r
            });
        let conn = limits
            .http1()
            .serve_connection(TokioIo::new(tcp), limits.service(app));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = watcher.watch(conn).await;
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: requests still open after {SHUTDOWN_GRACE:?} were cut off");
    }
}
