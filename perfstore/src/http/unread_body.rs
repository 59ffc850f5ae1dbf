//! Keep-alive safety for answers given before the request body was read.
//!
//! A handler may answer early: an upload over the limit, a malformed multipart stream, a
//! store error half-way through. The connection still carries the unread rest of the
//! body. As Go's server does, a small rest is read and dropped after the handler
//! answers, so the connection stays usable; a rest too large or too slow for that gets
//! `Connection: close`, so that a client reusing pooled connections (Go's
//! `http.Transport`) does not send its next request on a connection the server is about
//! to close. Reading the rest also keeps the server from closing a socket with unread
//! data in it, which the kernel answers with a reset that can destroy the answer before
//! the client reads it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt as _;

/// Most of an unread body that is read and dropped to keep a connection (Go: 256 KiB).
pub const MAX_DRAIN_BYTES: usize = 1 << 20;

/// How long reading that rest may take.
pub const MAX_DRAIN_TIME: Duration = Duration::from_secs(2);

/// Middleware (`axum::middleware::from_fn(close_if_body_unread)`): when the handler
/// answered before reading its request body to the end, reads what is left (at most
/// [`MAX_DRAIN_BYTES`] within [`MAX_DRAIN_TIME`]); if more is left, marks the response
/// `Connection: close`.
pub async fn close_if_body_unread(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let slot = Arc::new(Mutex::new(Some(body)));
    let shared = Body::new(Shared { slot: slot.clone() });
    let mut resp = next.run(Request::from_parts(parts, shared)).await;
    let rest = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(rest) = rest
        && !drain(rest).await
    {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Reads `body` to its end if that takes at most the drain limits.
async fn drain(mut body: Body) -> bool {
    let read = async {
        let mut left = MAX_DRAIN_BYTES;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            let n = frame.data_ref().map_or(0, Bytes::len);
            let Some(l) = left.checked_sub(n) else {
                return false;
            };
            left = l;
        }
        true
    };
    tokio::time::timeout(MAX_DRAIN_TIME, read)
        .await
        .unwrap_or(false)
}

/// The request body as the handler sees it. The body itself stays in the middleware's
/// slot, so what the handler leaves unread can be read after it answered; the slot is
/// emptied when the body ends.
struct Shared {
    slot: Arc<Mutex<Option<Body>>>,
}

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let Some(body) = slot.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            *slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), HttpBody::size_hint)
    }
}
