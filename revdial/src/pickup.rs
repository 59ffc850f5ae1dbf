//! The pickup endpoint (spec revdial §7) as a tower [`Service`] over hijacked requests.
//!
//! Go's pickup request is a plain `GET` without an `Upgrade` header, and the reply Go
//! peers get is the bare `HTTP/0.0 101 Switching Protocols\r\n\r\n`. hyper (and so axum)
//! can neither hijack a request that does not ask for an upgrade nor write that status
//! line, so this service runs one level below HTTP routing: the server reads the request
//! head itself ([`HijackedRequest::read`]) and routes `/revdial` here, everything else to
//! its axum router. The checks run in upstream's order: TLS, method, dialer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tower::Service;

use crate::http1::{
    GO_SWITCHING_PROTOCOLS, RequestHead, parse_request_head, read_head, write_go_error,
};
use crate::io::{Io, RevConn, Rewind};
use crate::registry::Registry;

/// A request whose connection the server has taken over: its head, the connection (with
/// any bytes read past the head replayed first), and whether it arrived over TLS.
pub struct HijackedRequest<IO> {
    /// The parsed request head.
    pub head: RequestHead,
    /// The connection, positioned after the head.
    pub io: Rewind<IO>,
    /// The connection is TLS.
    pub tls: bool,
}

impl<IO> fmt::Debug for HijackedRequest<IO> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HijackedRequest")
            .field("head", &self.head)
            .field("tls", &self.tls)
            .finish()
    }
}

impl<IO: Io> HijackedRequest<IO> {
    /// Reads one request head from a fresh connection.
    pub async fn read(mut io: IO, tls: bool) -> std::io::Result<HijackedRequest<IO>> {
        let mut buf = BytesMut::with_capacity(1024);
        let head = read_head(&mut io, &mut buf, parse_request_head).await?;
        Ok(HijackedRequest {
            head,
            io: Rewind::new(buf.freeze(), io),
            tls,
        })
    }

    /// [`read`](Self::read), answering a malformed head as Go's server does before
    /// closing: `431` for a head over [`MAX_HEAD`](crate::http1::MAX_HEAD), `400` for
    /// any other malformation. `None` when there is no request to serve.
    pub async fn read_or_answer(mut io: IO, tls: bool) -> Option<HijackedRequest<IO>> {
        use tokio::io::AsyncWriteExt as _;
        let mut buf = BytesMut::with_capacity(1024);
        match read_head(&mut io, &mut buf, parse_request_head).await {
            Ok(head) => Some(HijackedRequest {
                head,
                io: Rewind::new(buf.freeze(), io),
                tls,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let status = if buf.len() >= crate::http1::MAX_HEAD {
                    "431 Request Header Fields Too Large"
                } else {
                    "400 Bad Request"
                };
                // Go's server writes exactly these lines for a head it cannot parse (not
                // what `http.Error`, and so `write_go_error`, writes).
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
                     Connection: close\r\n\r\n{status}"
                );
                let _ = io.write_all(reply.as_bytes()).await;
                let _ = io.shutdown().await;
                None
            }
            Err(_) => None,
        }
    }
}

/// What the pickup service did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickupOutcome {
    /// The connection went to the dial that asked for it.
    Delivered,
    /// The request was refused with this HTTP status.
    Refused(u16),
}

/// Serves `GET <conn path>?revdial.dialer=<ticket>` for the Dialers of one [`Registry`].
#[derive(Debug, Clone)]
pub struct PickupService {
    registry: Registry,
    require_tls: bool,
}

impl PickupService {
    /// A service that, like upstream, refuses pickups that did not arrive over TLS.
    pub fn new(registry: Registry) -> PickupService {
        PickupService {
            registry,
            require_tls: true,
        }
    }

    /// Accepts plaintext pickups too. Only for loopback use (tests, a TLS-terminating
    /// proxy on the same host): the ticket in the URL is the only credential.
    pub fn allow_plaintext(mut self) -> PickupService {
        self.require_tls = false;
        self
    }

    /// Handles one hijacked request.
    pub async fn handle<IO: Io>(&self, req: HijackedRequest<IO>) -> std::io::Result<PickupOutcome> {
        let HijackedRequest { head, mut io, tls } = req;
        if self.require_tls && !tls {
            write_go_error(&mut io, 500, &[], "handler requires TLS").await?;
            return Ok(PickupOutcome::Refused(500));
        }
        if head.method != "GET" {
            let allow = [("Allow", "GET")];
            write_go_error(
                &mut io,
                405,
                &allow,
                "expected GET request to revdial conn handler",
            )
            .await?;
            return Ok(PickupOutcome::Refused(405));
        }
        // Taking the ticket before answering makes it single-use even under a race.
        let ticket = head.query_param("revdial.dialer").unwrap_or_default();
        let Some(waiter) = self.registry.take(&ticket) else {
            write_go_error(&mut io, 400, &[], "unknown dialer").await?;
            return Ok(PickupOutcome::Refused(400));
        };
        io.write_all(GO_SWITCHING_PROTOCOLS).await?;
        io.flush().await?;
        // If the dial was dropped meanwhile, the connection is dropped (closed) here.
        let _ = waiter.send(Ok(RevConn::new(io)));
        Ok(PickupOutcome::Delivered)
    }
}

impl<IO: Io> Service<HijackedRequest<IO>> for PickupService {
    type Response = PickupOutcome;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<PickupOutcome>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: HijackedRequest<IO>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.handle(req).await })
    }
}
