//! The buildlet protocol: the agent on every worker machine of a build farm, and the
//! client that drives it, wire-compatible with golang.org/x/build's buildlet (version 29).
//!
//! A buildlet writes files into its work dir W, runs commands there and streams trees back
//! as tar.gz. It executes whatever it is told, so it is exact on the wire and unbreakable
//! at its boundary: every path from the network is checked with upstream's messages and
//! then resolved beneath W by the kernel (symlinks cannot escape), uploads never leave
//! partial files, and a command's whole process group dies with its request.
//!
//! Two places go below hyper to stay compatible with Go peers: Go's `POST /connect-ssh`
//! carries no `Upgrade` header, and hyper only sends response trailers (the `/exec` exit
//! status) to requests that say `TE: trailers`, which Go's client never does.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use buildlet_proto::{BuildletClient, HttpClient, api::ExecRequest, server};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5936").await?;
//! tokio::spawn(server::serve(listener, server::Config::new("/tmp/w"), std::future::pending()));
//! let c = HttpClient::tcp("127.0.0.1:5936").build();
//! let req = ExecRequest { cmd: "/bin/echo".into(), args: vec!["hi".into()], ..Default::default() };
//! assert!(c.exec(req, Box::new(tokio::io::stdout())).await?.success());
//! # Ok(()) }
//! ```
//!
//! Features: `mock` adds `client::MockBuildletClient` (mockall) for callers' unit tests.
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
pub mod testing;
pub mod tgz;
mod tls;

#[doc(hidden)]
pub mod fuzzing;

pub use client::{BuildletClient, HttpClient, HttpClientBuilder};
pub use error::{Error, Result};
