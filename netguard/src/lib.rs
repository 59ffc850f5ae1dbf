//! Limits for servers that face the network.
//!
//! A server reachable by peers it does not control must bound what each connection can
//! hold: an idle socket, a request head sent one byte a minute (slowloris), a TLS
//! handshake never finished, a body that stops half-way. Each holds a descriptor and
//! some memory forever unless a timer ends it, and enough of them take the whole process
//! down (with 256 descriptors, 300 idle sockets did). This crate gives every server of
//! the workspace the same answers:
//!
//! - [`Guard::admit`]: a cap on connections, in all and per client address;
//! - [`Limits::tls_handshake`] and [`Limits::header_read`] (the latter is also the
//!   keep-alive idle limit, since hyper starts it when it waits for the next request);
//! - [`Limits::service`]: request bodies ([`IdleBody`]) that fail when no byte arrives
//!   for [`Limits::body_idle`], and [`Limits::http1`] with the head timer armed;
//! - [`accept`]: an accept loop step that backs off on errors (out of descriptors)
//!   instead of spinning, and logs them at most once per interval;
//! - [`raise_nofile_limit`]: the open-file soft limit raised to the hard limit at start,
//!   as Go's runtime does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use tokio::net::{TcpListener, TcpStream};

mod idle;

pub use idle::IdleBody;

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, from all clients.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_ip: usize,
    /// Time to finish a TLS handshake.
    pub tls_handshake: Duration,
    /// Time to send a whole request head; also how long an idle keep-alive connection
    /// is kept waiting for its next request.
    pub header_read: Duration,
    /// Time a request body may go without sending a byte.
    pub body_idle: Duration,
}

impl Limits {
    /// An HTTP/1 connection builder with the head timeout armed (hyper's header timeout
    /// does nothing without a timer).
    pub fn http1(&self) -> hyper::server::conn::http1::Builder {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.header_read)
            .keep_alive(true);
        b
    }

    /// `svc` as a hyper service whose request bodies fail after [`Limits::body_idle`]
    /// without data. `svc` is called without `poll_ready`, as hyper-util's adapter does:
    /// for services that are always ready, such as axum's `Router`.
    pub fn service<S, B>(
        &self,
        svc: S,
    ) -> impl hyper::service::Service<
        hyper::Request<Incoming>,
        Response = hyper::Response<B>,
        Error = S::Error,
        Future = S::Future,
    > + Clone
    + use<S, B>
    where
        S: tower::Service<hyper::Request<IdleBody<Incoming>>, Response = hyper::Response<B>>
            + Clone,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: http_body::Body,
    {
        let idle = self.body_idle;
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            svc.clone()
                .call(req.map(|b| IdleBody::new(b, idle, "the client")))
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_per_ip: 512,
            tls_handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(30),
            body_idle: Duration::from_secs(60),
        }
    }
}

/// Counts the open connections of one server against its [`Limits`].
#[derive(Debug)]
pub struct Guard {
    limits: Limits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    guard: Arc<Guard>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.guard.lock();
        open.total -= 1;
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds [`Limits::max_connections`] already.
    Full,
    /// This client address holds [`Limits::max_per_ip`] already.
    PerIp,
}

impl Guard {
    /// A guard enforcing `limits`.
    pub fn new(limits: Limits) -> Arc<Guard> {
        Arc::new(Guard {
            limits,
            open: Mutex::new(Open::default()),
        })
    }

    /// The limits this guard enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `peer`, or says which cap it would exceed (the caller
    /// closes it).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Permit, Refusal> {
        let mut open = self.lock();
        if open.total >= self.limits.max_connections {
            return Err(Refusal::Full);
        }
        let n = open.per_ip.entry(peer).or_default();
        if *n >= self.limits.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        open.total += 1;
        Ok(Permit {
            guard: self.clone(),
            ip: peer,
        })
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.lock().total
    }

    /// Runs `handshake` within [`Limits::tls_handshake`].
    pub async fn handshake<T, E: std::fmt::Display>(
        &self,
        handshake: impl Future<Output = Result<T, E>>,
    ) -> std::io::Result<T> {
        match tokio::time::timeout(self.limits.tls_handshake, handshake).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(std::io::Error::other(format!("TLS handshake: {e}"))),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

/// Logs accept errors at most once per interval, with how many were left out.
#[derive(Debug)]
pub struct AcceptLog {
    what: &'static str,
    every: Duration,
    last: Option<Instant>,
    quiet: u64,
}

impl AcceptLog {
    /// A log for the server called `what`, one line per 10 s at most.
    pub fn new(what: &'static str) -> AcceptLog {
        AcceptLog {
            what,
            every: Duration::from_secs(10),
            last: None,
            quiet: 0,
        }
    }

    /// True at most once per interval; counts what it holds back.
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.quiet += 1;
            return false;
        }
        self.last = Some(now);
        true
    }

    fn error(&mut self, e: &std::io::Error) {
        if self.due() {
            tracing::warn!(
                server = self.what,
                not_logged = std::mem::take(&mut self.quiet),
                "accept failed: {e}; backing off"
            );
        }
    }

    /// Logs a refused connection on the same schedule as errors.
    pub fn refused(&mut self, peer: SocketAddr, why: Refusal) {
        if self.due() {
            tracing::warn!(
                server = self.what,
                %peer,
                ?why,
                not_logged = std::mem::take(&mut self.quiet),
                "connection refused: over the connection limit"
            );
        }
    }
}

/// Accepts the next connection. Errors (out of descriptors, above all) are logged via
/// `log` and followed by a pause that doubles up to a second, so a full descriptor table
/// costs no CPU; the pause resets after a success.
async fn accept(listener: &TcpListener, log: &mut AcceptLog) -> (TcpStream, SocketAddr) {
    let mut pause = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok(c) => return c,
            Err(e) => {
                log.error(&e);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Accepts connections until one is within the guard's caps; the others are closed at
/// once (and logged, at most once per interval). The permit frees the connection's place
/// when dropped.
pub async fn accept_admitted(
    listener: &TcpListener,
    guard: &Arc<Guard>,
    log: &mut AcceptLog,
) -> (TcpStream, SocketAddr, Permit) {
    loop {
        let (tcp, peer) = accept(listener, log).await;
        match guard.admit(peer.ip()) {
            Ok(permit) => return (tcp, peer, permit),
            Err(why) => log.refused(peer, why),
        }
    }
}

/// Raises the open-file soft limit to the hard limit (as Go's runtime does at start);
/// returns the limit now in force.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        setrlimit(Resource::Nofile, lim).map_err(std::io::Error::from)?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
