//! File endpoints: `/write`, `/writetgz`, `/tgz`, `/ls`, `/removeall` (spec §3.3–3.7).
//!
//! Every path from the network passes upstream's RelPath check (for upstream's messages)
//! and is then resolved beneath W by `cap-std`, so symlinks in W cannot lead outside it.
//! File-system work runs on blocking threads; bodies stream through bounded channels.

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirBuilder, DirBuilderExt, OpenOptions, OpenOptionsExt};
use futures_util::TryStreamExt;
use sha1::{Digest, Sha1};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::reply::{Reject, go_error, requires, text};
use super::{AppState, params};
use crate::api::{GoFileMode, LsEntry, clean_slash, first, parse_bool, rel_path};
use crate::tgz::{PackOptions, extract_limited, pack};

/// Go's text for an OS error: the message without Rust's ` (os error N)`, lower-cased
/// first letter (`no such file or directory`).
pub(crate) fn go_err(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// "Ensure W": create it (0755) if missing, and open it as the root of every lookup, on
/// a blocking thread like every file-system call of the handlers.
pub(crate) async fn ensure_w(st: &AppState) -> Result<Dir, Reject> {
    let w = st.cfg.workdir.clone();
    blocking(move || {
        let mut b = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(b.recursive(true), 0o755);
        b.create(&w).map_err(|e| Reject::new(500, go_err(&e)))?;
        Dir::open_ambient_dir(&w, ambient_authority()).map_err(|e| Reject::new(500, go_err(&e)))
    })
    .await
}

fn mkdirs(root: &Dir, rel: &str) -> io::Result<()> {
    if rel.is_empty() || rel == "." {
        return Ok(());
    }
    let mut b = DirBuilder::new();
    b.recursive(true).mode(0o755);
    root.create_dir_with(rel, &b)
}

/// A blocking reader over a request body, for use on a blocking thread.
fn body_reader(body: Body, max: Option<u64>) -> impl Read + Send + 'static {
    let stream = body.into_data_stream().map_err(io::Error::other);
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    LimitReader {
        inner: reader,
        left: max.unwrap_or(u64::MAX),
    }
}

/// Fails (instead of truncating) once a body goes over its limit.
struct LimitReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self
            .left
            .checked_sub(n as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::FileTooLarge, "request body too large"))?;
        Ok(n)
    }
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// `PUT /write?path=…&mode=…`: writes to a temporary name beside the target and renames
/// it into place, so a failed upload never leaves a partial file (beyond upstream).
pub(crate) async fn write(State(st): State<AppState>, req: Request) -> Response {
    if req.method() != Method::PUT {
        return requires("POST"); // sic: upstream's message says POST
    }
    let q = params::query(&req);
    let path = first(&q, "path").unwrap_or("").to_owned();
    if let Err(reason) = rel_path(&path) {
        return go_error(400, format!("invalid 'path' parameter: {reason}"));
    }
    let Some(mode) = GoFileMode::from_param(first(&q, "mode").unwrap_or("")) else {
        return go_error(400, "bad mode");
    };
    let root = match ensure_w(&st).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let body = body_reader(req.into_body(), st.cfg.max_upload);
    let rel = clean_slash(&path);
    let result = blocking(move || write_file(&root, &rel, mode, body)).await;
    match result {
        Ok(()) => text("OK"),
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => go_error(413, go_err(&e)),
        Err(e) => go_error(500, go_err(&e)),
    }
}

fn write_file(root: &Dir, rel: &str, mode: GoFileMode, mut body: impl Read) -> io::Result<()> {
    let (parent, base) = rel.rsplit_once('/').unwrap_or(("", rel));
    mkdirs(root, parent)?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| io::Error::other(format!("random temp name: {e}")))?;
    let tmp_base = format!(".{base}.buildlet-{}", hex(&suffix));
    let tmp = if parent.is_empty() {
        tmp_base
    } else {
        format!("{parent}/{tmp_base}")
    };
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true).mode(mode.perm());
    let file = root.open_with(&tmp, &opts)?;
    let done = (|| {
        let mut f = file.into_std();
        io::copy(&mut body, &mut f)?;
        // An existing file keeps its mode on open; set it explicitly, like upstream.
        f.set_permissions(std::fs::Permissions::from_mode(mode.unix_mode()))?;
        root.rename(&tmp, root, rel)
    })();
    if done.is_err() {
        let _ = root.remove_file(&tmp);
    }
    done
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `PUT /writetgz?dir=…` (body) or `POST /writetgz?dir=…` with form `url=…`.
pub(crate) async fn writetgz(State(st): State<AppState>, req: Request) -> Response {
    let root = match ensure_w(&st).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let q = params::query(&req);
    let dir = first(&q, "dir").unwrap_or("").to_owned();
    let base = if dir.is_empty() {
        ".".to_owned()
    } else {
        if let Err(reason) = rel_path(&dir) {
            return go_error(400, format!("invalid 'dir' parameter: {reason}"));
        }
        clean_slash(&dir)
    };
    let method = req.method().clone();
    let skip_go14 = method == Method::POST && dir == "go1.4";
    let prepared = blocking(move || {
        // Upstream's bootstrap shortcut: never fetch go1.4 twice.
        if skip_go14 && root.metadata("go1.4").is_ok_and(|m| m.is_dir()) {
            return Ok(None);
        }
        mkdirs(&root, &base)
            .and_then(|()| root.open_dir(&base))
            .map(Some)
            .map_err(|e| format!("mkdir of base: {}", go_err(&e)))
    })
    .await;
    let base_dir = match prepared {
        Ok(Some(d)) => d,
        Ok(None) => return text("SKIP"),
        Err(e) => return go_error(500, e),
    };
    let body: Box<dyn Read + Send> = match method {
        Method::PUT => Box::new(body_reader(req.into_body(), st.cfg.max_upload)),
        Method::POST => {
            let p = match params::read(req).await {
                Ok(p) => p,
                Err(e) => return go_error(400, e),
            };
            let url = p.value("url").to_owned();
            if url.is_empty() {
                return go_error(400, "missing url POST param");
            }
            match super::fetch::fetch(&url, st.cfg.fetch_idle_timeout).await {
                Ok(body) => Box::new(body_reader(body, st.cfg.max_upload)),
                Err(r) => return r.into_response(),
            }
        }
        _ => return go_error(400, "requires PUT or POST method"),
    };
    let started = SystemTime::now();
    let limits = st.cfg.extract_limits;
    match blocking(move || extract_limited(body, &base_dir, started, limits)).await {
        Ok(()) => text("OK"),
        Err(e) => go_error(e.status(), e),
    }
}

/// A `Write` that hands buffered chunks to an async body through a bounded channel.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHANNEL_CHUNK: usize = 128 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHANNEL_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

fn channel_body(rx: mpsc::Receiver<io::Result<Bytes>>) -> Body {
    Body::from_stream(tokio_stream_from(rx))
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `GET /tgz?dir=…`: the tree as multi-member tar.gz. A failure after the response began
/// aborts the connection, so the client sees a truncated body, never a clean end.
pub(crate) async fn tgz(State(st): State<AppState>, req: Request) -> Response {
    if req.method() != Method::GET {
        return requires("GET");
    }
    let root = match ensure_w(&st).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let p = match params::read(req).await {
        Ok(p) => p,
        Err(e) => return go_error(400, e),
    };
    let dir = p.value("dir").to_owned();
    if let Err(reason) = rel_path(&dir) {
        return go_error(400, format!("invalid 'dir' parameter: {reason}"));
    }
    let (tx, rx) = mpsc::channel(16);
    let rel = clean_slash(&dir);
    tokio::task::spawn_blocking(move || {
        let result = root.open_dir(&rel).and_then(|d| {
            let w = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHANNEL_CHUNK),
            };
            let mut w = pack(&d, w, &PackOptions::default())?;
            w.flush()
        });
        if let Err(e) = result {
            tracing::info!("/tgz of {rel:?} aborted: {e}");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let mut r = Response::new(channel_body(rx));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-gzip"),
    );
    r
}

/// `GET /ls?dir=…&recursive=…&digest=…&skip=…`.
pub(crate) async fn ls(State(st): State<AppState>, req: Request) -> Response {
    if req.method() != Method::GET {
        return requires("GET");
    }
    let p = match params::read(req).await {
        Ok(p) => p,
        Err(e) => return go_error(400, e),
    };
    let dir = p.value("dir").to_owned();
    let rel = if dir.is_empty() {
        ".".to_owned()
    } else {
        if let Err(reason) = rel_path(&dir) {
            return go_error(400, format!("invalid 'dir' parameter: {reason}"));
        }
        clean_slash(&dir)
    };
    let opts = LsOptions {
        recursive: parse_bool(p.value("recursive")),
        digest: parse_bool(p.value("digest")),
        skip: p.values("skip").into_iter().map(str::to_owned).collect(),
    };
    let root = match ensure_w(&st).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let abs = st.cfg.workdir.join(&rel);
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(16);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::new(),
        };
        let r = list(&root, &rel, &opts, &mut out).and_then(|()| out.flush());
        if let Err(e) = r {
            let _ = tx.blocking_send(Err(e));
        }
    });
    // An error before any output is a 500; later ones cut the stream.
    match rx.recv().await {
        Some(Err(e)) => go_error(
            500,
            format!("Walk error: lstat {}: {}", abs.display(), go_err(&e)),
        ),
        Some(Ok(first)) => {
            let rest = tokio_stream_from(rx);
            let stream = futures_util::StreamExt::chain(
                futures_util::stream::once(async move { Ok(first) }),
                rest,
            );
            text(Body::from_stream(stream))
        }
        None => text(""),
    }
}

struct LsOptions {
    recursive: bool,
    digest: bool,
    skip: Vec<String>,
}

fn mtime_rfc3339(m: &cap_std::fs::Metadata) -> String {
    let secs = m
        .modified()
        .ok()
        .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    dashboard_types::go_json::GoTime::from_unix(secs, 0)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn entry_line(
    dir: &Dir,
    name: &str,
    rel: &str,
    meta: &cap_std::fs::Metadata,
    digest: bool,
) -> io::Result<String> {
    use cap_std::fs::MetadataExt;
    let mode = GoFileMode::from_unix(meta.mode());
    let e = if meta.is_dir() {
        LsEntry {
            mode: mode.to_string(),
            name: format!("{rel}/"),
            size: None,
            mtime: None,
            sha1: None,
        }
    } else if meta.is_file() {
        let sha1 = if digest {
            let mut f = dir.open(name)?;
            let mut h = Sha1::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            Some(hex(&h.finalize()))
        } else {
            None
        };
        LsEntry {
            mode: mode.to_string(),
            name: rel.to_owned(),
            size: Some(meta.len()),
            mtime: Some(mtime_rfc3339(meta)),
            sha1,
        }
    } else {
        LsEntry {
            mode: mode.to_string(),
            name: rel.to_owned(),
            size: None,
            mtime: None,
            sha1: None,
        }
    };
    Ok(e.to_line())
}

fn list(root: &Dir, rel: &str, opts: &LsOptions, out: &mut impl Write) -> io::Result<()> {
    let meta = root.symlink_metadata(rel)?;
    if !meta.is_dir() {
        let (parent, name) = rel.rsplit_once('/').unwrap_or((".", rel));
        let d = root.open_dir(parent)?;
        return out.write_all(entry_line(&d, name, "", &meta, opts.digest)?.as_bytes());
    }
    let d = root.open_dir(rel)?;
    walk_ls(&d, "", opts, out)
}

fn walk_ls(dir: &Dir, prefix: &str, opts: &LsOptions, out: &mut impl Write) -> io::Result<()> {
    use cap_fs_ext::DirExt;
    let mut names: Vec<String> = dir
        .entries()?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    names.sort_unstable();
    for name in names {
        let rel = format!("{prefix}{name}");
        let meta = dir.symlink_metadata(&name)?;
        if meta.is_dir() && opts.skip.contains(&rel) {
            continue;
        }
        out.write_all(entry_line(dir, &name, &rel, &meta, opts.digest)?.as_bytes())?;
        if meta.is_dir() && opts.recursive {
            let sub = dir.open_dir_nofollow(&name)?;
            walk_ls(&sub, &format!("{rel}/"), opts, out)?;
        }
    }
    Ok(())
}

/// `POST /removeall` with form `path=…` (repeated). Every path is checked before anything
/// is removed; `path=.` removes W itself (recreated by the next request).
pub(crate) async fn removeall(State(st): State<AppState>, req: Request) -> Response {
    if req.method() != Method::POST {
        return requires("POST");
    }
    let p = match params::read(req).await {
        Ok(p) => p,
        Err(e) => return go_error(400, e),
    };
    let paths: Vec<String> = p.values("path").into_iter().map(str::to_owned).collect();
    if paths.is_empty() {
        return go_error(400, "requires 'path' parameter");
    }
    for path in &paths {
        if let Err(reason) = rel_path(path) {
            return go_error(400, format!("invalid 'path' parameter: {reason}"));
        }
    }
    let root = match ensure_w(&st).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let w = st.cfg.workdir.clone();
    let result = blocking(move || {
        for path in paths {
            let rel = clean_slash(&path);
            remove(&root, &w, &rel)?;
        }
        Ok::<(), io::Error>(())
    })
    .await;
    match result {
        Ok(()) => Response::new(Body::empty()),
        Err(e) => go_error(500, go_err(&e)),
    }
}

fn remove(root: &Dir, w: &std::path::Path, rel: &str) -> io::Result<()> {
    let attempt = || -> io::Result<()> {
        if rel == "." {
            // W is configuration, not input: removing it by its own path is safe, and
            // std's remove_dir_all never follows symlinks inside it.
            return match std::fs::remove_dir_all(w) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                // A busy mount point cannot go, but an emptied one is fine.
                Err(_) if std::fs::read_dir(w).is_ok_and(|mut d| d.next().is_none()) => Ok(()),
                Err(e) => Err(e),
            };
        }
        match root.symlink_metadata(rel) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(m) if m.is_dir() => root.remove_dir_all(rel),
            Ok(_) => root.remove_file(rel),
        }
    };
    match attempt() {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(root, if rel == "." { "." } else { rel });
            attempt()
        }
        r => r,
    }
}

/// Adds owner write permission to everything below `rel` (best effort), as upstream
/// does before retrying a removal.
fn make_writable(root: &Dir, rel: &str) {
    use cap_fs_ext::DirExt;
    use cap_std::fs::PermissionsExt as _;
    let Ok(meta) = root.symlink_metadata(rel) else {
        return;
    };
    if meta.is_symlink() {
        return;
    }
    let mut perm = meta.permissions();
    perm.set_mode(perm.mode() | 0o200);
    let _ = root.set_permissions(rel, perm);
    if meta.is_dir()
        && let Ok(d) = root.open_dir_nofollow(rel)
        && let Ok(entries) = d.entries()
    {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            make_writable(&d, &name);
        }
    }
}
