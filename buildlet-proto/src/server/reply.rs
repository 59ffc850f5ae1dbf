//! Responses in upstream's shapes.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Go's `http.Error`: the status, `text/plain; charset=utf-8`, `nosniff`, message + `\n`.
pub(crate) fn go_error(status: u16, msg: impl std::fmt::Display) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, format!("{msg}\n")).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A 200 with a text body, typed as Go's content sniffing would type it.
pub(crate) fn text(body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `400 requires <METHOD> method` (upstream's wording, including its quirks).
pub(crate) fn requires(method: &str) -> Response {
    go_error(400, format!("requires {method} method"))
}

/// A refusal in upstream's words: a status and a message, rendered as Go's `http.Error`.
#[derive(Debug)]
pub(crate) struct Reject {
    pub(crate) status: u16,
    pub(crate) msg: String,
}

impl Reject {
    pub(crate) fn new(status: u16, msg: impl Into<String>) -> Reject {
        Reject {
            status,
            msg: msg.into(),
        }
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        go_error(self.status, self.msg)
    }
}
