//! Helpers shared by the coordinator's end-to-end tests: temporary git repos, the real
//! `coordinator` binary as a child process, and plain HTTP over loopback.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod fixture;

pub use fixture::git;

/// A child process killed on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A repository with `build.sh` committed, executable.
pub fn repo_with_script(dir: &Path, script: &str, message: &str) -> String {
    if !dir.join(".git").exists() {
        std::fs::create_dir_all(dir).unwrap();
        git(dir, &["init", "-q", "-b", "main"]);
    }
    let path = dir.join("build.sh");
    std::fs::write(&path, script).unwrap();
    git(dir, &["add", "build.sh"]);
    git(dir, &["update-index", "--chmod=+x", "build.sh"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Writes a config for one source `repo` and the given builders' TOML. Both listeners use
/// ephemeral ports, which [`start`] reads from the coordinator's output: a port picked in
/// advance could be taken by another test's buildlet before the coordinator binds it.
pub fn config(dir: &Path, repo: &Path, builders: &str) -> PathBuf {
    let path = dir.join("coordinator.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nreverse_listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\npoll_secs = 1\n\n\
             [[sources]]\nname = \"repo\"\nurl = {url:?}\nbranches = [\"main\"]\n\n{builders}{pools}",
            data = dir.join("data").display().to_string(),
            url = repo.display().to_string(),
            // The tests' builders run on `host-test` unless they declare their own pools.
            pools = if builders.contains("[pools.local]") {
                ""
            } else {
                "\n[pools.local]\nhost-test = 2\n"
            },
        ),
    )
    .unwrap();
    path
}

/// A running coordinator and its ports.
#[derive(Debug)]
pub struct Coord {
    /// The process.
    pub proc: Proc,
    /// Its HTTP port.
    pub port: u16,
    /// Its reverse-buildlet (TLS) port.
    pub reverse_port: u16,
}

/// The admin token each test coordinator (by HTTP port) was started with: [`http`] and
/// [`get_bytes`] send it, so tests act as an admin unless they use [`http_as`].
static ADMIN_TOKENS: std::sync::Mutex<Vec<(u16, String)>> = std::sync::Mutex::new(Vec::new());

fn admin_token(port: u16) -> Option<String> {
    let tokens = ADMIN_TOKENS.lock().unwrap();
    tokens
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, t)| t.clone())
}

/// `coordinator token create` on `cfg`'s data directory; returns the token.
pub fn create_token(cfg: &Path, name: &str, roles: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coordinator"));
    cmd.args(["token", "create", "--name", name, "--config"])
        .arg(cfg);
    for r in roles {
        cmd.args(["--role", r]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Starts `coordinator serve --config <cfg>` and reads its ports from its first lines.
/// An admin token is made first; requests through [`http`] carry it.
pub fn start(cfg: &Path) -> Coord {
    use std::io::BufRead;
    // A new name per start: a test may restart a coordinator on the same data.
    static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let admin = create_token(cfg, &format!("test-admin-{n}"), &["admin"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["serve", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining after the ports so the child never blocks on a full pipe.
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let port_of = |line: &str, prefix: &str| -> Option<u16> {
        let rest = line.strip_prefix(prefix)?;
        let addr = rest.split(['/', ' ']).next()?;
        addr.rsplit(':').next()?.parse().ok()
    };
    let (mut port, mut reverse_port) = (None, 0);
    while port.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the coordinator printed its address");
        if let Some(p) = port_of(&line, "reverse buildlets: ") {
            reverse_port = p;
        }
        port = port_of(&line, "serving http://").or_else(|| port_of(&line, "serving https://"));
    }
    let port = port.unwrap();
    ADMIN_TOKENS.lock().unwrap().push((port, admin));
    Coord {
        proc: Proc(child),
        port,
        reverse_port,
    }
}

/// One HTTP/1.1 request as `token` (none: no credentials); returns the whole raw
/// response.
fn request_as(token: Option<&str>, port: u16, method: &str, path: &str, body: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    raw
}

/// One HTTP/1.1 request as the coordinator's admin; returns the whole raw response.
fn request(port: u16, method: &str, path: &str, body: &str) -> Vec<u8> {
    request_as(admin_token(port).as_deref(), port, method, path, body)
}

/// One HTTP/1.1 request as the coordinator's admin; returns (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    parse(&request(port, method, path, body))
}

/// One HTTP/1.1 request as `token` (none: no credentials); returns (status, body).
pub fn http_as(
    token: Option<&str>,
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    parse(&request_as(token, port, method, path, body))
}

/// A raw response as (status, body), chunked bodies joined.
fn parse(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// A GET of a binary body (with a Content-Length or chunked); returns (status, body bytes).
pub fn get_bytes(port: u16, path: &str) -> (u16, Vec<u8>) {
    let raw = request(port, "GET", path, "");
    let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let mut body = &raw[end + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return (status, body.to_vec());
    }
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..eol]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + n]);
        body = &body[eol + 2 + n + 2..];
    }
    (status, out)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// The JSON grid.
pub fn grid(port: u16) -> serde_json::Value {
    let (status, body) = http(port, "GET", "/?mode=json", "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The grid cell of `rev` for `builder`, or "" when absent.
pub fn cell(grid: &serde_json::Value, rev: &str, builder: &str) -> String {
    let Some(col) = grid["builders"]
        .as_array()
        .and_then(|b| b.iter().position(|x| x == builder))
    else {
        return String::new();
    };
    grid["revisions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["revision"] == rev)
        .map(|r| r["results"][col].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Waits (bounded) until `f` returns `Some`.
pub fn wait_for<T>(what: &str, secs: u64, f: impl FnMut() -> Option<T>) -> T {
    wait_for_or(what, secs, f, String::new)
}

/// [`wait_for`], with `explain` (say, the status page) added to the message on a timeout.
pub fn wait_for_or<T>(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> Option<T>,
    explain: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}\n{}", explain());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The builder key of `host_type`, asked of `coordinator key`, written to a file for
/// `buildlet --key-file`.
pub fn builder_key_file(dir: &Path, cfg: &Path, host_type: &str) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["key", host_type, "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap();
    assert_eq!(key.trim().len(), 32);
    let path = dir.join(format!("{host_type}.key"));
    std::fs::write(&path, key.trim()).unwrap();
    path
}

/// A real `buildlet --reverse-type HOST_TYPE` registering with the coordinator at
/// `reverse_port` (trusting the CA in its data dir), working in `dir/name`.
pub fn reverse_buildlet(
    dir: &Path,
    host_type: &str,
    name: &str,
    reverse_port: u16,
    key_file: &Path,
) -> Proc {
    let ca = dir.join("data/tls/ca.pem");
    Proc(
        Command::new(buildlet_proto::testing::buildlet_bin())
            .args([
                "--reverse-type",
                host_type,
                "--coordinator",
                &format!("127.0.0.1:{reverse_port}"),
            ])
            .args([
                "--hostname",
                name,
                "--halt=false",
                "--health-addr",
                "127.0.0.1:0",
                "--reconnect",
            ])
            .arg("--coordinator-ca")
            .arg(&ca)
            .arg("--key-file")
            .arg(key_file)
            .arg("--workdir")
            .arg(dir.join(name))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Asserts the coordinator counted exactly `n` finished builds of `builder` with `result`
/// (the metric that shows a build recorded one result).
pub fn assert_finished(port: u16, builder: &str, result: &str, n: u64) {
    let (_, metrics) = http(port, "GET", "/metrics", "");
    let line = format!(
        "coordinator_builds_finished_total{{builder=\"{builder}\",result=\"{result}\"}} {n}"
    );
    assert!(metrics.contains(&line), "want {line}: {metrics}");
}
