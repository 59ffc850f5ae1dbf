//! Keep-alive safety for answers given before the request body was read.
//!
//! A handler may answer early: an upload over the limit, a malformed multipart stream, a
//! store error half-way through. The connection then still carries the unread rest of the
//! body, so the server closes it, and a client reusing pooled connections (Go's
//! `http.Transport`) must be told so, or its next request on that connection fails with
//! `EOF`. Go's own server does the same: it reads a little of what is left and otherwise
//! answers with `Connection: close`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Middleware (`axum::middleware::from_fn(close_if_body_unread)`): marks the response
/// `Connection: close` when the handler answered before reading its request body to the
/// end, so that clients do not reuse a connection the server is about to close.
pub async fn close_if_body_unread(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let tracked = Body::new(Tracked {
        inner: body,
        finished: finished.clone(),
    });
    let mut resp = next.run(Request::from_parts(parts, tracked)).await;
    if !finished.load(Ordering::Acquire) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A request body that records when it has been read to its end.
struct Tracked {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
