//! The buildlet protocol (in progress): wire vocabulary and secure tar streaming.
//!
//! The buildlet is the agent on every worker machine of a build farm: it writes files into
//! its work dir W, runs commands there and streams trees back as tar.gz, speaking the HTTP
//! protocol of golang.org/x/build's buildlet so upstream Go coordinators can drive it.
//!
//! # Layout
//! - [`api`]: wire vocabulary shared by server and client (RelPath, Go file modes, the exec
//!   form, `/ls` lines, `Process-State`).
//! - [`tgz`]: secure extraction beneath a root and parallel multi-member packing.
//! - [`server`]: the buildlet HTTP API as an axum router, and its connection handling.
//! - [`client`]: the [`BuildletClient`] trait and its HTTP implementation.
//! - [`reverse`]: reverse mode: register with a coordinator and serve through revdial.

pub mod api;
pub mod client;
mod error;
pub mod reverse;
pub mod server;
pub mod tgz;

pub use client::{BuildletClient, HttpClient, HttpClientBuilder};
pub use error::{Error, Result};
