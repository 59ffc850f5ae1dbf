//! Reverse dialing, wire-compatible with golang.org/x/build's `revdial/v2`.
//!
//! A machine behind NAT (a buildlet) dials out once and registers; the public server (a
//! coordinator) can then open as many connections *to* it as it likes. The public side
//! holds a [`Dialer`] on the registration connection; each [`Dialer::dial`] sends a
//! `conn-ready` control message, the private side's [`Listener`] connects back to the
//! public server's pickup endpoint ([`PickupService`]), and the two ends of that new
//! connection come out of `dial()` and [`Listener::accept`]. Every logical connection is
//! its own TCP/TLS connection; the control connection carries only newline-delimited JSON.
//!
//! Beside v2 there is an opt-in **multiplexed mode** ([`mux`]): negotiated at
//! registration with a header Go peers never send, it carries every logical connection as
//! an HTTP/2 stream on the registration connection itself (no dial-back, no handshake per
//! stream). [`Dialer::new_mux`] and [`Listener::new_mux`] give the same `dial()` and
//! `accept()`; [`Dialer::mode`] and [`Listener::mode`] say which one a caller got.
//!
//! Go peers interoperate in both directions: a Go buildlet with this crate's Dialer and
//! pickup service, and this crate's Listener with a Go coordinator.
//!
//! # Beyond upstream
//! - **Every dial is correlated with its pickup.** Each `conn-ready` carries a fresh
//!   single-use ticket in the `revdial.dialer` parameter (so its path still has upstream's
//!   exact shape and Go listeners echo it verbatim). A late pickup for a cancelled dial is
//!   refused (`400 unknown dialer`) and closed, so it never reaches another caller and a
//!   cancelled dial never leaks its stream. See [`registry`].
//! - Dials have a default time limit, cancellation is checked before anything is sent,
//!   late and orphaned connections are closed, and the Listener bounds the pickup exchange.
//! - [`tcp::tune_control_socket`] makes a vanished peer (no FIN) detectable within the
//!   keep-alive window.
//!
//! # Layout
//! - [`control`]: the control-message codec (pure functions).
//! - [`http1`]: the `101`/`307` exchange, accepting Go's `HTTP/0.0 101`; request heads.
//! - [`dialer`], [`listener`]: the two ends; [`registry`]: tickets; [`pickup`]: the endpoint.
//! - [`mux`]: the multiplexed mode (negotiation, the HTTP/2 driver, window tuning, limits).
//! - [`io`]: [`RevConn`], the stream type both ends yield, and [`io::Rewind`].
//!
//! # Example
//! ```no_run
//! # async fn demo(control: tokio::net::TcpStream) -> revdial::Result<()> {
//! use revdial::{Dialer, DialerConfig, Registry};
//! use tokio::io::AsyncWriteExt;
//!
//! let registry = Registry::new(); // shared with the PickupService serving /revdial
//! let dialer = Dialer::new(control, &registry, DialerConfig::default());
//! let mut conn = dialer.dial().await?; // a fresh connection to the NATed peer
//! conn.write_all(b"GET /status HTTP/1.1\r\nHost: buildlet\r\n\r\n").await?;
//! # Ok(()) }
//! ```
//!
//! A runnable pair over TLS on loopback is in `examples/tls_pair.rs`.

pub mod control;
pub mod dialer;
mod error;
pub mod http1;
pub mod io;
pub mod listener;
pub mod mux;
pub mod pickup;
pub mod registry;
pub mod tcp;

#[doc(hidden)]
pub mod fuzzing;

pub use dialer::{Dialer, DialerConfig};
pub use error::{Error, Result};
pub use io::RevConn;
pub use listener::{DialBack, Listener, ListenerConfig};
pub use mux::{Mode, MuxConfig};
pub use pickup::{HijackedRequest, PickupOutcome, PickupService};
pub use registry::Registry;
