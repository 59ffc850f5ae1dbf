//! Connections: serving the router over HTTP/1, graceful shutdown, `/connect-ssh`, and
//! fetching archives by URL for `/writetgz`.
//!
//! Go's client sends `POST /connect-ssh` without an `Upgrade` header and expects the raw
//! `101` below, which hyper cannot produce for such a request. So each connection's first
//! request head is read here: `/connect-ssh` is served raw; everything else (that request
//! included, replayed byte for byte) goes to hyper and the router.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use bytes::{Buf, BytesMut};
use hyper_util::rt::TokioIo;
use revdial::http1::{Parsed, RequestHead, parse_request_head, write_go_error};
use revdial::io::{Io, Rewind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::reply::go_error;
use super::te::TrailersAllowed;
use super::{AppState, Config, auth};

/// How long `serve` waits for in-flight requests after the shutdown signal (upstream: 5 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `cfg`'s router on `listener` until `shutdown` completes, then drains for up to
/// [`SHUTDOWN_GRACE`]; requests still running after that (a long `/exec`) are cut off,
/// which kills their process groups.
pub async fn serve(
    listener: TcpListener,
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    serve_tls(listener, cfg, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given (direct mode with a key pair, spec §5.2).
pub async fn serve_tls(
    listener: TcpListener,
    cfg: Config,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let cfg = Arc::new(cfg);
    let router = super::router((*cfg).clone());
    let guard = netguard::Guard::new(cfg.limits);
    let mut log = netguard::AcceptLog::new("buildlet");
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer, permit) = tokio::select! {
            _ = &mut shutdown => break,
            c = netguard::accept_admitted(&listener, &guard, &mut log) => c,
        };
        let _ = tcp.set_nodelay(true);
        let (router, cfg, watcher, tls, guard) = (
            router.clone(),
            cfg.clone(),
            graceful.watcher(),
            tls.clone(),
            guard.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let io = match tls {
                Some(acceptor) => match guard.handshake(acceptor.accept(tcp)).await {
                    Ok(s) => revdial::RevConn::new(s),
                    Err(e) => {
                        tracing::debug!(%peer, "{e}");
                        return;
                    }
                },
                None => revdial::RevConn::new(tcp),
            };
            if let Some(io) = first_head(io, &cfg).await {
                let conn = cfg
                    .limits
                    .http1()
                    .serve_connection(TokioIo::new(io), cfg.limits.service(router));
                let _ = watcher.watch(conn).await;
            }
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: requests still running after {SHUTDOWN_GRACE:?} were cut off");
    }
    Ok(())
}

/// Serves one already-accepted connection (for instance a revdial stream) to completion.
pub async fn serve_connection<IO: Io>(io: IO, cfg: Arc<Config>, router: Router) {
    if let Some(io) = first_head(io, &cfg).await {
        let _ = cfg
            .limits
            .http1()
            .serve_connection(TokioIo::new(io), cfg.limits.service(router))
            .await;
    }
}

/// [`hijack_or_pass`] within the head timeout: hyper's own timer starts only once the
/// connection is handed to it, so a slow first head must be bounded here.
async fn first_head<IO: Io>(io: IO, cfg: &Config) -> Option<TrailersAllowed<IO>> {
    tokio::time::timeout(cfg.limits.header_read, hijack_or_pass(io, cfg))
        .await
        .ok()
        .flatten()
}

/// Reads the first request head. A `/connect-ssh` request is served here (and `None`
/// returned); otherwise the connection comes back with every byte read so far replayed.
async fn hijack_or_pass<IO: Io>(mut io: IO, cfg: &Config) -> Option<TrailersAllowed<IO>> {
    let mut buf = BytesMut::with_capacity(2048);
    let head = loop {
        match parse_request_head(&buf) {
            Ok(Parsed::Complete(head, n)) => break Some((head, n)),
            Ok(Parsed::Incomplete) => {}
            Err(_) => break None, // let hyper answer the malformed request
        }
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    };
    if let Some((head, n)) = head
        && head.path() == "/connect-ssh"
    {
        buf.advance(n);
        connect_ssh(head, Rewind::new(buf.freeze(), io), cfg).await;
        return None;
    }
    Some(TrailersAllowed::new(&buf, io))
}

/// `/connect-ssh` as the first request of a connection (spec §3.9).
async fn connect_ssh<IO: Io>(head: RequestHead, mut io: Rewind<IO>, cfg: &Config) {
    if !auth::check(&cfg.password, head.header("authorization")) {
        let _ = write_go_error(&mut io, 403, &[], "invalid password").await;
        return;
    }
    if head.method != "POST" {
        let _ = write_go_error(&mut io, 400, &[], "requires POST method").await;
        return;
    }
    let chunked = head.header("transfer-encoding").is_some();
    let len_ok = head
        .header("content-length")
        .is_none_or(|v| v.trim_ascii() == b"0");
    if chunked || !len_ok {
        let _ = write_go_error(&mut io, 400, &[], "requires zero Content-Length").await;
        return;
    }
    let user = head
        .header("x-go-ssh-user")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let key = head
        .header("x-go-authorized-key")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    if let (Some(user), Some(key)) = (user, key)
        && !user.is_empty()
        && !key.is_empty()
        && let Err(e) = add_authorized_key(&user, &key)
    {
        let _ = write_go_error(
            &mut io,
            400,
            &[],
            &format!("adding ssh authorized key: {e}"),
        )
        .await;
        return;
    }
    let Some(addr) = cfg.ssh_addr.clone() else {
        let _ = write_go_error(&mut io, 502, &[], "no local ssh server configured").await;
        return;
    };
    let mut last = None;
    let mut ssh = None;
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match tokio::net::TcpStream::connect(&addr).await {
            Ok(s) => {
                ssh = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(mut ssh) = ssh else {
        let msg = last
            .map(|e| format!("dial tcp {addr}: {}", super::files::go_err(&e)))
            .unwrap_or_default();
        let _ = write_go_error(&mut io, 502, &[], &msg).await;
        return;
    };
    let upgrade =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ssh\r\nConnection: Upgrade\r\n\r\n";
    if io.write_all(upgrade).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut io, &mut ssh).await;
}

fn add_authorized_key(user: &str, key: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if user.contains(['/', '\0']) || user == "." || user == ".." {
        return Err(std::io::Error::other(format!("invalid user name {user:?}")));
    }
    let home = if user == "root" {
        "/root".to_owned()
    } else {
        format!("/home/{user}")
    };
    let ssh = std::path::Path::new(&home).join(".ssh");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&ssh)?;
    let file = ssh.join("authorized_keys");
    let existing = std::fs::read_to_string(&file).unwrap_or_default();
    let line = key.trim();
    if existing.lines().any(|l| l.trim() == line) {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&file)?;
    std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes())
}

/// `/connect-ssh` reached through hyper: not the first request on its connection.
pub(crate) async fn connect_ssh_not_first(State(_st): State<AppState>, req: Request) -> Response {
    if req.method() != Method::POST {
        return go_error(400, "requires POST method");
    }
    go_error(
        400,
        "/connect-ssh must be the first request on a connection",
    )
}
