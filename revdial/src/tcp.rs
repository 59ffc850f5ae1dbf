//! Socket tuning so that a peer that vanishes without a FIN (power loss, a dropped NAT
//! mapping) is noticed within the keep-alive window.
//!
//! The protocol cannot detect this by itself: a Go listener never answers keep-alives.
//! But every keep-alive the Dialer writes must be acknowledged by the peer's kernel, so
//! `TCP_USER_TIMEOUT` (unacknowledged data older than the write timeout aborts the
//! connection) turns the Dialer's keep-alives into a liveness check: a dead peer is
//! detected at most `keep_alive + write_timeout` after it vanished. TCP keep-alive probes
//! cover a connection with nothing at all to send.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// Tunes a control connection's socket for the given keep-alive interval and write timeout.
pub fn tune_control_socket(
    stream: &tokio::net::TcpStream,
    keep_alive: Duration,
    write_timeout: Duration,
) -> std::io::Result<()> {
    let sock = SockRef::from(stream);
    let ka = TcpKeepalive::new()
        .with_time(keep_alive)
        .with_interval(write_timeout.max(Duration::from_secs(1)));
    sock.set_tcp_keepalive(&ka)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    sock.set_tcp_user_timeout(Some(write_timeout))?;
    Ok(())
}
