//! Test harness: a real buildlet server on loopback with its own W, and a raw HTTP/1.1
//! client that exposes exact status lines, headers, chunked bodies and trailers.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use buildlet_proto::server::{Config, serve};
use proptest::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub struct Server {
    pub addr: SocketAddr,
    pub w: PathBuf,
    pub halted: Arc<AtomicBool>,
    _tmp: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn start(password: &str) -> Server {
    start_with(password, |_| {}).await
}

pub async fn start_with(password: &str, tweak: impl FnOnce(&mut Config)) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path().join("w");
    let halted = Arc::new(AtomicBool::new(false));
    let mut cfg = Config::new(&w);
    cfg.password = password.into();
    cfg.platform = "linux-amd64".into();
    let h = halted.clone();
    cfg.on_halt = Some(Arc::new(move || h.store(true, Ordering::SeqCst)));
    tweak(&mut cfg);
    std::fs::create_dir_all(w.join("tmp")).unwrap();
    std::fs::create_dir_all(w.join("gocache")).unwrap();
    std::fs::create_dir_all(w.join("goplscache")).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve(l, cfg, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server {
        addr,
        w,
        halted,
        _tmp: tmp,
        _stop: tx,
    }
}

/// A parsed response.
#[derive(Debug, Default)]
pub struct Resp {
    pub status_line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    pub chunked: bool,
    /// The body ended cleanly (length reached or terminating chunk seen).
    pub complete: bool,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// Builds a request. `auth` adds `Authorization: Basic any:<auth>`.
pub fn request(
    method: &str,
    target: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: buildlet\r\n");
    if let Some(p) = auth {
        r.push_str(&format!("Authorization: {}\r\n", basic("any", p)));
    }
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut v = r.into_bytes();
    v.extend_from_slice(body);
    v
}

pub fn form(method: &str, target: &str, auth: Option<&str>, body: &str) -> Vec<u8> {
    request(
        method,
        target,
        auth,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
}

/// Sends raw bytes on a fresh connection and reads one response.
pub async fn send(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    read_response(&mut BufReader::new(s)).await
}

pub async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Resp {
    let mut resp = Resp::default();
    let mut line = String::new();
    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
        return resp; // closed without a response
    }
    resp.status_line = line.trim_end().to_owned();
    resp.status = resp
        .status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        resp.headers.push((k.to_owned(), v.trim().to_owned()));
    }
    if resp.status == 101 {
        resp.complete = true;
        return resp;
    }
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        resp.chunked = true;
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return resp;
            }
            let Ok(n) = usize::from_str_radix(line.trim_end(), 16) else {
                return resp;
            };
            if n == 0 {
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return resp;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        resp.complete = true;
                        return resp;
                    }
                    let (k, v) = l.split_once(':').unwrap();
                    resp.trailers.push((k.to_owned(), v.trim().to_owned()));
                }
            }
            let mut chunk = vec![0u8; n + 2];
            if r.read_exact(&mut chunk).await.is_err() {
                return resp;
            }
            resp.body.extend_from_slice(&chunk[..n]);
        }
    }
    if let Some(n) = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut b = vec![0u8; n];
        if r.read_exact(&mut b).await.is_ok() {
            resp.body = b;
            resp.complete = true;
        }
        return resp;
    }
    let _ = r.read_to_end(&mut resp.body).await;
    resp.complete = true;
    resp
}

/// A tar.gz of (name, typeflag, mode, content) entries, built with the tar crate.
pub fn tgz(entries: &[(&str, u8, u32, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut b = tar::Builder::new(Vec::new());
    for (name, flag, mode, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::new(*flag));
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&tar).unwrap();
    e.finish().unwrap()
}

// --- random trees -----------------------------------------------------------------

#[derive(Debug, Clone)]
pub enum Node {
    File(Vec<u8>, u32),
    Dir(Vec<(String, Node)>),
}

/// Modes that survive the usual umask (022) unchanged, as upstream does no chmod.
pub const MODES: &[u32] = &[0o600, 0o644, 0o700, 0o755, 0o400, 0o444, 0o500, 0o555];

pub fn node() -> impl Strategy<Value = Node> {
    let file = (
        prop::collection::vec(any::<u8>(), 0..3000),
        prop::sample::select(MODES),
    )
        .prop_map(|(d, m)| Node::File(d, m));
    file.prop_recursive(3, 24, 5, |inner| {
        prop::collection::btree_map("[a-zA-Z0-9_.-]{1,12}", inner, 0..5).prop_map(|m| {
            Node::Dir(
                m.into_iter()
                    .filter(|(k, _)| k != "." && k != "..")
                    .collect(),
            )
        })
    })
}

pub fn build(path: &Path, children: &[(String, Node)]) {
    for (name, n) in children {
        let p = path.join(name);
        match n {
            Node::File(data, mode) => {
                std::fs::write(&p, data).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            Node::Dir(c) => {
                std::fs::create_dir(&p).unwrap();
                build(&p, c);
            }
        }
    }
}

/// (relative path, kind, mode, content) of every entry, sorted.
pub fn snapshot(root: &Path) -> Vec<(String, bool, u32, Vec<u8>)> {
    let mut out = Vec::new();
    fn rec(base: &Path, dir: &Path, out: &mut Vec<(String, bool, u32, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_str().unwrap().to_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            if m.is_dir() {
                out.push((rel, true, mode, Vec::new()));
                rec(base, &p, out);
            } else {
                out.push((rel, false, mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    rec(root, root, &mut out);
    out.sort();
    out
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// Waits (up to 10 s; the hook runs 1 s after `/halt`) for the server's halt hook.
pub async fn wait_halted(s: &Server) {
    for _ in 0..100 {
        if s.halted.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the halt hook did not run");
}
