//! Front ends over [`crate::ops`]: the HTTP API and web UI ([`http`]).

pub mod http;
