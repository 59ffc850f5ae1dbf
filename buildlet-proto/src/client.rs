//! The client side (spec §7): the [`BuildletClient`] trait and [`HttpClient`], its one HTTP
//! implementation, generic over how a connection is made ([`Connect`]): plain TCP, or any
//! stream such as a revdial pickup.
//!
//! Every call that waits for response headers races them against its limit and against
//! the peer being declared dead; a heartbeat (`GET /status` every 10 s) declares it dead
//! after three failures in a row and fires a callback once. Bodies stream in both
//! directions: `put_tgz` and `get_tgz` never hold a whole archive in memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dashboard_types::BuildletStatus;
use futures_util::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use revdial::RevConn;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;

use crate::api::{ExecRequest, GoFileMode, LsEntry, PROCESS_STATE, ProcessState, encode_form};
use crate::error::{Error, Result};

/// Limits on waiting for response headers (spec §8).
pub const EXEC_HEADER_LIMIT: Duration = Duration::from_secs(20);
/// `Status` and `WorkDir` header limit.
pub const STATUS_HEADER_LIMIT: Duration = Duration::from_secs(20);
/// How long past an exec's `timeout` the client waits before it closes the connection
/// itself: our buildlet reports its own timeout (with output and a `Process-State`) at
/// the deadline; upstream's ignores the form value and kills the command only when the
/// client goes away, so the client's deadline is what enforces the limit there.
pub const EXEC_DEADLINE_GRACE: Duration = Duration::from_secs(5);
/// Largest text reply (`/status`, `/workdir`, `/ls`) the client reads; a longer one is an
/// invalid reply rather than unbounded memory.
pub const MAX_TEXT_REPLY: usize = 16 << 20;
/// How long a text reply's body may take once its headers arrived.
pub const TEXT_BODY_LIMIT: Duration = Duration::from_secs(120);
/// How long `/removeall` may take (a work-dir wipe of a large tree included).
pub const REMOVE_ALL_LIMIT: Duration = Duration::from_secs(300);
/// `ConnectSSH` limit for dial plus upgrade.
pub const CONNECT_SSH_LIMIT: Duration = Duration::from_secs(15);
/// `Close` (`/halt`) header limit.
pub const CLOSE_HEADER_LIMIT: Duration = Duration::from_secs(2);

/// What a caller can do with a buildlet. Keep it small: conveniences belong in callers.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait BuildletClient: Send + Sync {
    /// `GET /status`.
    async fn status(&self) -> Result<BuildletStatus>;
    /// `GET /workdir`: the buildlet's absolute work directory.
    async fn work_dir(&self) -> Result<String>;
    /// Runs a command, copying its combined output into `output`; returns its result.
    /// An `Err` means the infrastructure failed, not the command.
    async fn exec(
        &self,
        req: ExecRequest,
        output: Box<dyn AsyncWrite + Send + Unpin>,
    ) -> Result<ProcessState>;
    /// `PUT /write`: one file.
    async fn put(&self, path: &str, mode: GoFileMode, data: Bytes) -> Result<()>;
    /// `PUT /writetgz`: extracts a streamed `.tar.gz` beneath `dir`.
    async fn put_tgz(&self, dir: &str, tgz: Box<dyn AsyncRead + Send + Unpin>) -> Result<()>;
    /// `POST /writetgz` with `url`: the buildlet fetches the archive itself.
    async fn put_tgz_url(&self, dir: &str, url: &str) -> Result<()>;
    /// `GET /tgz`: streams `dir` as `.tar.gz` into `out`.
    async fn get_tgz(&self, dir: &str, out: Box<dyn AsyncWrite + Send + Unpin>) -> Result<()>;
    /// `GET /ls`.
    async fn list_dir(
        &self,
        dir: &str,
        recursive: bool,
        digest: bool,
        skip: Vec<String>,
    ) -> Result<Vec<LsEntry>>;
    /// `POST /removeall`; does nothing for an empty list.
    async fn remove_all(&self, paths: Vec<String>) -> Result<()>;
    /// `POST /connect-ssh` on a fresh connection: after the `101` the stream is a raw
    /// tunnel to the buildlet's sshd. Installs `authorized_key` for `user` when both are set.
    async fn connect_ssh(&self, user: &str, authorized_key: &str) -> Result<RevConn>;
    /// `POST /halt` (best effort), then the client is closed for good.
    async fn close(&self);
}

/// Opens one connection to the buildlet.
pub type Connect =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<RevConn>> + Send>> + Send + Sync>;

/// A connector for plain TCP to `addr`.
pub fn tcp_connect(addr: String) -> Connect {
    Arc::new(move || {
        let addr = addr.clone();
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(RevConn::new(s))
        })
    })
}

/// A connector for TLS to `addr` with upstream's key pinning (spec §5.2): the handshake
/// succeeds only if the server's public key equals the one in `expected_cert_pem` (the
/// certificate the coordinator generated for this buildlet). Host name and chain are not
/// checked, as upstream; the server must still prove it holds the private key.
pub fn tls_pinned_connect(addr: String, expected_cert_pem: &str) -> std::io::Result<Connect> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cert = CertificateDer::from_pem_slice(expected_cert_pem.as_bytes())
        .map_err(|e| std::io::Error::other(format!("expected certificate: {e}")))?;
    let spki = crate::tls::spki(&cert)
        .ok_or_else(|| std::io::Error::other("expected certificate: no public key found"))?
        .to_vec();
    let cfg = tokio_rustls::rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::tls::KeyCheck::pinned(spki)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    Ok(Arc::new(move || {
        let (addr, connector) = (addr.clone(), connector.clone());
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            // The name is not checked; any valid one will do for SNI.
            let name = ServerName::try_from("buildlet").expect("valid DNS name");
            Ok(RevConn::new(connector.connect(name, tcp).await?))
        })
    }))
}

/// Adapts a [`Connect`] to hyper's connector interface.
#[derive(Clone)]
struct Connector(Connect);

struct Conn(TokioIo<RevConn>);

impl tower::Service<Uri> for Connector {
    type Response = Conn;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Conn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let f = (self.0)();
        Box::pin(async move { Ok(Conn(TokioIo::new(f.await?))) })
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Heartbeat settings (spec §7.4); the defaults are upstream's.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Time between checks, counted after the previous check ends. Default 10 s.
    pub interval: Duration,
    /// Consecutive failures that mark the peer dead. Default 3.
    pub failures: u32,
    /// Header limit of each check. Default 20 s.
    pub timeout: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            interval: Duration::from_secs(10),
            failures: 3,
            timeout: STATUS_HEADER_LIMIT,
        }
    }
}

struct Inner {
    http: Client<Connector, ReqBody>,
    connect: Connect,
    host: String,
    password: String,
    dead: CancellationToken,
    on_dead: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// The HTTP [`BuildletClient`]. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("host", &self.inner.host)
            .field("dead", &self.is_dead())
            .finish()
    }
}

/// Builds an [`HttpClient`].
pub struct HttpClientBuilder {
    host: String,
    connect: Connect,
    password: String,
    heartbeat: Option<Heartbeat>,
    on_dead: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClientBuilder")
            .field("host", &self.host)
            .finish()
    }
}

impl HttpClientBuilder {
    /// A client for `host` (used in the `Host` header and logs), connecting with `connect`.
    pub fn new(host: impl Into<String>, connect: Connect) -> Self {
        HttpClientBuilder {
            host: host.into(),
            connect,
            password: String::new(),
            heartbeat: Some(Heartbeat::default()),
            on_dead: None,
        }
    }

    /// Sends Basic auth (`gomote:<password>`) on every request.
    pub fn password(mut self, p: impl Into<String>) -> Self {
        self.password = p.into();
        self
    }

    /// Changes (or with `None` disables) the heartbeat.
    pub fn heartbeat(mut self, h: Option<Heartbeat>) -> Self {
        self.heartbeat = h;
        self
    }

    /// Called once when the peer is declared dead or the client is closed.
    pub fn on_dead(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_dead = Some(Box::new(f));
        self
    }

    /// Builds the client; starts the heartbeat (must run inside a tokio runtime).
    pub fn build(self) -> HttpClient {
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(Connector(self.connect.clone()));
        let inner = Arc::new(Inner {
            http,
            connect: self.connect,
            host: self.host,
            password: self.password,
            dead: CancellationToken::new(),
            on_dead: Mutex::new(self.on_dead),
        });
        if let Some(h) = self.heartbeat {
            tokio::spawn(heartbeat(Arc::downgrade(&inner), h));
        }
        HttpClient { inner }
    }
}

async fn heartbeat(inner: Weak<Inner>, h: Heartbeat) {
    let mut failures = 0;
    loop {
        tokio::time::sleep(h.interval).await;
        let Some(inner) = inner.upgrade() else { return };
        let c = HttpClient { inner };
        if c.is_dead() {
            return;
        }
        let ok = c.get_text("/status", Some(h.timeout)).await.is_ok();
        failures = if ok { 0 } else { failures + 1 };
        if failures >= h.failures {
            tracing::warn!(host = %c.inner.host, "buildlet heartbeat failed {failures} times; marking dead");
            c.mark_dead();
            return;
        }
    }
}

/// Up to 4 KiB of a body, for error messages.
async fn body_snippet(resp: Response<Incoming>) -> String {
    let limited = http_body_util::Limited::new(resp.into_body(), 4096);
    match limited.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    }
}

fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

impl HttpClient {
    /// A plain-TCP client for `addr` (`host:port`).
    pub fn tcp(addr: &str) -> HttpClientBuilder {
        HttpClientBuilder::new(addr, tcp_connect(addr.to_owned()))
    }

    /// Whether the peer was declared dead or the client closed.
    pub fn is_dead(&self) -> bool {
        self.inner.dead.is_cancelled()
    }

    /// Completes when the peer is declared dead or the client closed.
    pub async fn dead(&self) {
        self.inner.dead.cancelled().await
    }

    /// Declares the peer dead without contacting it (its connection is known to be gone):
    /// every waiting and future call fails with [`Error::Dead`] at once.
    pub fn abort(&self) {
        self.mark_dead();
    }

    fn mark_dead(&self) {
        self.inner.dead.cancel();
        let f = self
            .inner
            .on_dead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(f) = f {
            f();
        }
    }

    /// Sends a request and waits for its headers within `limit` (and before death).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        content_type: Option<&str>,
        limit: Option<Duration>,
    ) -> Result<Response<Incoming>> {
        if self.is_dead() {
            return Err(Error::Dead);
        }
        let uri: Uri = format!("http://{}{path}", self.inner.host)
            .parse()
            .map_err(|e| Error::Transport(format!("bad URL for {path}: {e}")))?;
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
        }
        if !self.inner.password.is_empty() {
            use base64::Engine;
            let cred = base64::engine::general_purpose::STANDARD
                .encode(format!("gomote:{}", self.inner.password));
            req = req.header(hyper::header::AUTHORIZATION, format!("Basic {cred}"));
        }
        let req = req
            .body(body)
            .map_err(|e| Error::Transport(e.to_string()))?;
        let fut = self.inner.http.request(req);
        let limit = limit.unwrap_or(Duration::MAX / 4);
        tokio::select! {
            r = fut => r.map_err(|e| Error::Transport(error_chain(&e))),
            _ = self.inner.dead.cancelled() => Err(Error::Dead),
            _ = tokio::time::sleep(limit) => Err(Error::HeaderTimeout(limit)),
        }
    }

    async fn expect_ok(&self, resp: Response<Incoming>) -> Result<Response<Incoming>> {
        if resp.status() == hyper::StatusCode::OK {
            return Ok(resp);
        }
        let status = format!(
            "{} {}",
            resp.status().as_u16(),
            resp.status().canonical_reason().unwrap_or("")
        );
        Err(Error::Status {
            status,
            body: body_snippet(resp).await,
        })
    }

    async fn get_text(&self, path: &str, limit: Option<Duration>) -> Result<String> {
        let resp = self
            .send(Method::GET, path, full(Bytes::new()), None, limit)
            .await?;
        let resp = self.expect_ok(resp).await?;
        let body = http_body_util::Limited::new(resp.into_body(), MAX_TEXT_REPLY).collect();
        let b = tokio::select! {
            b = body => b.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Error::InvalidReply(format!("{path}: reply longer than {MAX_TEXT_REPLY} bytes"))
                } else {
                    Error::Transport(format!("{path}: {e}"))
                }
            })?,
            _ = tokio::time::sleep(TEXT_BODY_LIMIT) => {
                return Err(Error::Transport(format!(
                    "{path}: reply not finished within {TEXT_BODY_LIMIT:?}"
                )));
            }
            _ = self.inner.dead.cancelled() => return Err(Error::Dead),
        };
        String::from_utf8(b.to_bytes().to_vec()).map_err(|e| Error::InvalidReply(e.to_string()))
    }

    async fn post_form(
        &self,
        path: &str,
        form: String,
        limit: Option<Duration>,
    ) -> Result<Response<Incoming>> {
        let resp = self
            .send(
                Method::POST,
                path,
                full(form),
                Some("application/x-www-form-urlencoded"),
                limit,
            )
            .await?;
        self.expect_ok(resp).await
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

fn query(pairs: &[(&str, &str)]) -> String {
    encode_form(pairs)
}

/// Copies a response body into `out`, frame by frame; returns the trailers.
async fn drain_into(
    resp: Response<Incoming>,
    out: &mut (dyn AsyncWrite + Send + Unpin),
) -> Result<Option<hyper::HeaderMap>> {
    let mut body = resp.into_body();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Transport(error_chain(&e)))?;
        match frame.into_data() {
            Ok(data) => {
                out.write_all(&data).await?;
                // Lines must reach the caller as they arrive, not when a buffer fills.
                out.flush().await?;
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    Ok(trailers)
}

#[async_trait]
impl BuildletClient for HttpClient {
    async fn status(&self) -> Result<BuildletStatus> {
        let text = self.get_text("/status", Some(STATUS_HEADER_LIMIT)).await?;
        serde_json::from_str(&text)
            .map_err(|e| Error::InvalidReply(format!("/status: {e}: {text:?}")))
    }

    async fn work_dir(&self) -> Result<String> {
        self.get_text("/workdir", Some(STATUS_HEADER_LIMIT)).await
    }

    async fn exec(
        &self,
        req: ExecRequest,
        mut output: Box<dyn AsyncWrite + Send + Unpin>,
    ) -> Result<ProcessState> {
        let deadline = (req.timeout_secs > 0)
            .then(|| Duration::from_secs(req.timeout_secs).saturating_add(EXEC_DEADLINE_GRACE));
        let run = async {
            let resp = self
                .post_form("/exec", req.to_form(), Some(EXEC_HEADER_LIMIT))
                .await?;
            tokio::select! {
                r = drain_into(resp, &mut *output) => r,
                _ = self.inner.dead.cancelled() => Err(Error::Dead),
            }
        };
        // Dropping the request at the deadline closes its connection: that is the signal
        // a buildlet acts on (upstream's kills the command, ours its process group).
        let trailers = match deadline {
            Some(d) => tokio::time::timeout(d, run)
                .await
                .map_err(|_| Error::ExecTimeout)??,
            None => run.await?,
        };
        match trailers.as_ref().and_then(|t| t.get(PROCESS_STATE)) {
            Some(v) => Ok(ProcessState::from_trailer(&String::from_utf8_lossy(
                v.as_bytes(),
            ))),
            None => Err(Error::MissingTrailer),
        }
    }

    async fn put(&self, path: &str, mode: GoFileMode, data: Bytes) -> Result<()> {
        let q = query(&[("mode", &mode.0.to_string()), ("path", path)]);
        let resp = self
            .send(Method::PUT, &format!("/write?{q}"), full(data), None, None)
            .await?;
        self.expect_ok(resp).await.map(drop)
    }

    async fn put_tgz(&self, dir: &str, tgz: Box<dyn AsyncRead + Send + Unpin>) -> Result<()> {
        let stream = ReaderStream::with_capacity(tgz, 256 * 1024).map_ok(Frame::data);
        let body = BodyExt::boxed_unsync(StreamBody::new(stream));
        let q = query(&[("dir", dir)]);
        let resp = self
            .send(Method::PUT, &format!("/writetgz?{q}"), body, None, None)
            .await?;
        self.expect_ok(resp).await.map(drop)
    }

    async fn put_tgz_url(&self, dir: &str, url: &str) -> Result<()> {
        let q = query(&[("dir", dir)]);
        self.post_form(
            &format!("/writetgz?{q}"),
            encode_form(&[("url", url)]),
            None,
        )
        .await
        .map(drop)
    }

    async fn get_tgz(&self, dir: &str, mut out: Box<dyn AsyncWrite + Send + Unpin>) -> Result<()> {
        let q = query(&[("dir", dir)]);
        let resp = self
            .send(
                Method::GET,
                &format!("/tgz?{q}"),
                full(Bytes::new()),
                None,
                None,
            )
            .await?;
        let resp = self.expect_ok(resp).await?;
        drain_into(resp, &mut *out).await?;
        out.shutdown().await?;
        Ok(())
    }

    async fn list_dir(
        &self,
        dir: &str,
        recursive: bool,
        digest: bool,
        skip: Vec<String>,
    ) -> Result<Vec<LsEntry>> {
        let (r, d) = (recursive.to_string(), digest.to_string());
        let mut pairs = vec![
            ("digest", d.as_str()),
            ("dir", dir),
            ("recursive", r.as_str()),
        ];
        pairs.extend(skip.iter().map(|s| ("skip", s.as_str())));
        let text = self
            .get_text(&format!("/ls?{}", query(&pairs)), None)
            .await?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                LsEntry::parse(l).ok_or_else(|| Error::InvalidReply(format!("/ls line {l:?}")))
            })
            .collect()
    }

    async fn remove_all(&self, paths: Vec<String>) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(&str, &str)> = paths.iter().map(|p| ("path", p.as_str())).collect();
        // The buildlet answers only when the removal is done, so the head limit bounds
        // the whole call.
        self.post_form("/removeall", encode_form(&pairs), Some(REMOVE_ALL_LIMIT))
            .await
            .map(drop)
    }

    async fn connect_ssh(&self, user: &str, authorized_key: &str) -> Result<RevConn> {
        use revdial::http1::{parse_response_head, read_head};
        if self.is_dead() {
            return Err(Error::Dead);
        }
        // Both go into a hand-written request head: a line break would inject headers.
        // (Both may be empty: the buildlet then installs no key, as upstream's.)
        for (what, v) in [("user name", user), ("authorized key", authorized_key)] {
            if v.bytes().any(|b| b.is_ascii_control()) {
                return Err(Error::InvalidArgument(format!(
                    "the SSH {what} must be free of control characters"
                )));
            }
        }
        let attempt = async {
            let mut conn = (self.inner.connect)().await?;
            let mut req = format!(
                "POST /connect-ssh HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nX-Go-Ssh-User: {user}\r\nX-Go-Authorized-Key: {authorized_key}\r\n",
                self.inner.host
            );
            if !self.inner.password.is_empty() {
                use base64::Engine;
                let cred = base64::engine::general_purpose::STANDARD
                    .encode(format!("gomote:{}", self.inner.password));
                req.push_str(&format!("Authorization: Basic {cred}\r\n"));
            }
            req.push_str("\r\n");
            conn.write_all(req.as_bytes()).await?;
            conn.flush().await?;
            let mut buf = bytes::BytesMut::new();
            let head = read_head(&mut conn, &mut buf, parse_response_head).await?;
            Ok::<_, std::io::Error>((head, buf, conn))
        };
        let (head, buf, conn) = tokio::time::timeout(CONNECT_SSH_LIMIT, attempt)
            .await
            .map_err(|_| Error::HeaderTimeout(CONNECT_SSH_LIMIT))??;
        if head.status != 101 {
            let body = String::from_utf8_lossy(&buf[..buf.len().min(4096)]).into_owned();
            return Err(Error::Status {
                status: head.status_text(),
                body,
            });
        }
        Ok(RevConn::new(revdial::io::Rewind::new(buf.freeze(), conn)))
    }

    async fn close(&self) {
        let _ = self
            .send(
                Method::POST,
                "/halt",
                full(Bytes::new()),
                None,
                Some(CLOSE_HEADER_LIMIT),
            )
            .await;
        self.mark_dead();
    }
}
