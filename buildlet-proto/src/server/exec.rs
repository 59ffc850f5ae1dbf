//! `POST /exec` (spec §4): resolve the command, build its environment, run it with stdout
//! and stderr on one pipe, stream every read to the client at once, and report the result
//! in the `Process-State` trailer.
//!
//! Beyond upstream, the child leads its own process group, and the whole group is killed
//! when the client disconnects (the response body is dropped) or when the optional
//! `timeout` form value elapses, so no grandchild outlives its request.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Version, header};
use axum::response::Response;
use http_body_util::StreamBody;
use hyper::body::Frame;

use super::files::{blocking, ensure_w, go_err};
use super::reply::{Reject, go_error};
use super::{AppState, params};
use crate::api::{ExecRequest, PROCESS_STATE, clean_slash, process_state_text, rel_path};
use axum::response::IntoResponse;

/// Adds `Trailer: Process-State` and forces chunked framing (no length), as upstream
/// does for every `/exec` response from step 5 on, errors included.
fn with_trailer_decl(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::TRAILER, HeaderValue::from_static(PROCESS_STATE));
    r.headers_mut().remove(header::CONTENT_LENGTH);
    r
}

fn chunked_error(status: u16, msg: impl std::fmt::Display) -> Response {
    let r = go_error(status, msg);
    let (parts, body) = r.into_parts();
    let stream = futures_util::stream::once(async move {
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        Ok::<_, io::Error>(Frame::data(bytes))
    });
    with_trailer_decl(Response::from_parts(
        parts,
        Body::new(StreamBody::new(stream)),
    ))
}

/// Whether `p` is an executable regular file.
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Looks a bare name up in the buildlet process's own PATH.
fn look_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// Resolves `cmd` (spec §4.3). The error is the complete response.
fn resolve_cmd(w: &Path, req: &ExecRequest) -> Result<PathBuf, Reject> {
    let cmd = &req.cmd;
    if cmd.is_empty() {
        return Err(Reject::new(
            400,
            "invalid 'cmd' parameter: requires 'cmd' parameter",
        ));
    }
    if cmd.starts_with('/') {
        return Ok(PathBuf::from(clean_slash(cmd)));
    }
    if let Err(reason) = rel_path(cmd) {
        // The prefix really is doubled upstream.
        return Err(Reject::new(
            400,
            format!("invalid 'cmd' parameter: invalid 'cmd' parameter: {reason}"),
        ));
    }
    if cmd.contains('/') {
        if req.system_level {
            return Err(Reject::new(
                400,
                "invalid 'cmd' parameter: 'sys' mode requires absolute or system 'cmd' path",
            ));
        }
        return Ok(w.join(clean_slash(cmd)));
    }
    if !req.system_level && is_executable(&w.join(cmd)) {
        return Ok(w.join(cmd));
    }
    look_path(cmd).ok_or_else(|| {
        Reject::new(
            422,
            format!(
                "invalid 'cmd' parameter: command {} not found",
                crate::api::go_quote(cmd)
            ),
        )
    })
}

fn resolve_dir(w: &Path, cmd: &Path, req: &ExecRequest) -> Result<PathBuf, Reject> {
    let dir = &req.dir;
    if dir.is_empty() {
        return Ok(if req.system_level {
            w.to_path_buf()
        } else {
            cmd.parent()
                .map_or_else(|| w.to_path_buf(), Path::to_path_buf)
        });
    }
    if dir.starts_with('/') {
        return Ok(PathBuf::from(clean_slash(dir)));
    }
    match rel_path(dir) {
        Ok(_) => Ok(w.join(clean_slash(dir))),
        Err(reason) => Err(Reject::new(
            400,
            format!("invalid 'dir' parameter: invalid 'dir' parameter: {reason}"),
        )),
    }
}

/// Removes duplicate keys, keeping the last occurrence (upstream's `envutil.Dedup`).
fn dedup_env(env: Vec<String>) -> Vec<String> {
    let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_owned();
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<String> = env
        .into_iter()
        .rev()
        .filter(|kv| seen.insert(key(kv)))
        .collect();
    out.reverse();
    out
}

/// One `path` element with `$PATH`, `$WORKDIR` and `$EMPTY` replaced wherever they stand
/// in it (`$WORKDIR/go1.4/go/bin` included), left to right in one pass, as upstream's
/// `strings.Replacer` does: a replacement's text is never scanned again.
fn expand_path_element(elem: &str, orig_path: &str, workdir: &str) -> String {
    const VARS: [&str; 3] = ["$PATH", "$WORKDIR", "$EMPTY"];
    let mut out = String::with_capacity(elem.len());
    let mut rest = elem;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match VARS.iter().find(|v| rest.starts_with(**v)) {
            Some(&var) => {
                out.push_str(match var {
                    "$PATH" => orig_path,
                    "$WORKDIR" => workdir,
                    _ => "",
                });
                rest = &rest[var.len()..];
            }
            None => {
                out.push('$');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The child's environment, in upstream's order (spec §4.4).
fn build_env(st: &AppState, req: &ExecRequest, dir: &Path) -> Vec<String> {
    let w = &st.cfg.workdir;
    let mut env: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| {
            Some(format!(
                "{}={}",
                k.into_string().ok()?,
                v.into_string().ok()?
            ))
        })
        .collect();
    // Upstream sets WORKDIR in the buildlet's own environment at start, so every child
    // inherits it and a request's env may still override it.
    env.push(format!("WORKDIR={}", w.display()));
    let bootstrap = st.bootstrap.get_or_init(|| {
        let ours = w.join("go1.4");
        match std::env::var("GOROOT_BOOTSTRAP") {
            Ok(inherited) if inherited != ours.display().to_string() && !ours.exists() => None,
            _ => Some(ours.display().to_string()),
        }
    });
    if let Some(b) = bootstrap {
        env.push(format!("GOROOT_BOOTSTRAP={b}"));
    }
    env.extend(req.env.iter().cloned());
    for (k, sub) in [
        ("TMPDIR", "tmp"),
        ("GOCACHE", "gocache"),
        ("GOPLSCACHE", "goplscache"),
    ] {
        env.push(format!("{k}={}", w.join(sub).display()));
    }
    if let Some(elems) = &req.path {
        let orig = env
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or("")
            .to_owned();
        let wd = w.display().to_string();
        let elems: Vec<String> = if elems.is_empty() {
            vec!["$EMPTY".into()]
        } else {
            elems.clone()
        };
        let joined = elems
            .iter()
            .map(|e| expand_path_element(e, &orig, &wd))
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>()
            .join(":");
        if joined != orig {
            env.push(format!("PATH={joined}"));
        }
    }
    env.push(format!("PWD={}", dir.display()));
    dedup_env(env)
}

pub(crate) async fn exec(State(st): State<AppState>, req: Request) -> Response {
    if req.method() != Method::POST {
        return go_error(400, "requires POST method");
    }
    if req.version() < Version::HTTP_11 {
        return go_error(400, "HTTP/1.1 or higher required");
    }
    if let Err(r) = ensure_w(&st).await {
        return r.into_response();
    }
    let w = st.cfg.workdir.clone();
    let p = match params::read(req).await {
        Ok(p) => p,
        Err(e) => return chunked_error(400, e),
    };
    let er = ExecRequest::from_form(&p.query, &p.body);
    // The directories, the PATH search and the stat calls touch the disk: blocking thread.
    let resolved = blocking(move || {
        for sub in ["tmp", "gocache", "goplscache"] {
            std::fs::create_dir_all(w.join(sub)).map_err(|e| Reject::new(500, go_err(&e)))?;
        }
        let cmd = resolve_cmd(&w, &er)?;
        let dir = resolve_dir(&w, &cmd, &er)?;
        Ok::<_, Reject>((er, cmd, dir))
    })
    .await;
    let (er, cmd, dir) = match resolved {
        Ok(r) => r,
        Err(r) if r.status == 500 => return go_error(500, r.msg),
        Err(r) => return chunked_error(r.status, r.msg),
    };
    let env = build_env(&st, &er, &dir);
    let banner = er.debug.then(|| {
        format!(
            ":: Running {} with args {:?} and env {:?} in dir {}\n\n",
            cmd.display(),
            std::iter::once(cmd.display().to_string())
                .chain(er.args.iter().cloned())
                .collect::<Vec<_>>(),
            env,
            dir.display()
        )
    });
    let run = Run::start(&cmd, &er.args, &env, &dir, er.timeout_secs);
    let body = ExecBody {
        banner: banner.map(Bytes::from),
        run,
        buf: vec![0u8; 32 * 1024],
    };
    with_trailer_decl(Response::new(Body::new(body)))
}

/// A running child and what is known about it.
struct Started {
    child: tokio::process::Child,
    output: tokio::net::unix::pipe::Receiver,
    pgid: Option<rustix::process::Pid>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    killed_by_timeout: bool,
    exited: Option<io::Result<std::process::ExitStatus>>,
}

/// A started (or failed-to-start) child process.
enum Run {
    Started(Box<Started>),
    /// The process never started; the trailer carries why.
    Failed(String),
    Done,
}

impl Run {
    fn start(cmd: &Path, args: &[String], env: &[String], dir: &Path, timeout_secs: u64) -> Run {
        if !dir.is_dir() {
            let why = match std::fs::metadata(dir) {
                Ok(_) => "not a directory".to_owned(),
                Err(e) => go_err(&e),
            };
            return Run::Failed(format!("chdir {}: {why}", dir.display()));
        }
        match Self::spawn(cmd, args, env, dir) {
            Ok((child, output)) => {
                let pgid = child
                    .id()
                    .and_then(|id| rustix::process::Pid::from_raw(id as i32));
                let deadline = (timeout_secs > 0)
                    .then(|| Box::pin(tokio::time::sleep(Duration::from_secs(timeout_secs))));
                Run::Started(Box::new(Started {
                    child,
                    output,
                    pgid,
                    deadline,
                    killed_by_timeout: false,
                    exited: None,
                }))
            }
            Err(e) => Run::Failed(format!("fork/exec {}: {}", cmd.display(), go_err(&e))),
        }
    }

    fn spawn(
        cmd: &Path,
        args: &[String],
        env: &[String],
        dir: &Path,
    ) -> io::Result<(tokio::process::Child, tokio::net::unix::pipe::Receiver)> {
        let (reader, writer) = std::io::pipe()?;
        let writer2 = writer.try_clone()?;
        let mut c = tokio::process::Command::new(cmd);
        c.args(args)
            .env_clear()
            .envs(env.iter().filter_map(|kv| kv.split_once('=')))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer2))
            .process_group(0)
            .kill_on_drop(true);
        let child = c.spawn()?;
        // Our copies of the write end must close so the pipe reaches EOF with the child.
        drop(c);
        let output = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
        Ok((child, output))
    }

    fn kill_group(pgid: Option<rustix::process::Pid>) {
        if let Some(pgid) = pgid {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for Run {
    /// The client went away (or the body finished): nothing of the group may survive.
    fn drop(&mut self) {
        if let Run::Started(s) = self {
            Self::kill_group(s.pgid);
        }
    }
}

/// The streamed `/exec` body: the banner, then every read of the pipe as its own frame,
/// then (after EOF and exit) the trailer.
struct ExecBody {
    banner: Option<Bytes>,
    run: Run,
    buf: Vec<u8>,
}

fn trailer(value: &str) -> Frame<Bytes> {
    let mut h = HeaderMap::new();
    let v = HeaderValue::from_str(value)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid process state"));
    h.insert(PROCESS_STATE, v);
    Frame::trailers(h)
}

impl hyper::body::Body for ExecBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = &mut *self;
        if let Some(b) = this.banner.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        match &mut this.run {
            Run::Done => Poll::Ready(None),
            Run::Failed(why) => {
                let f = trailer(why);
                this.run = Run::Done;
                Poll::Ready(Some(Ok(f)))
            }
            Run::Started(started) => {
                let Started {
                    child,
                    output,
                    pgid,
                    deadline,
                    killed_by_timeout,
                    exited,
                } = &mut **started;
                if let Some(d) = deadline
                    && d.as_mut().poll(cx).is_ready()
                {
                    *deadline = None;
                    *killed_by_timeout = true;
                    Run::kill_group(*pgid);
                }
                if exited.is_none()
                    && let Poll::Ready(status) = std::pin::pin!(child.wait()).poll(cx)
                {
                    *exited = Some(status);
                    // Whatever the child left running would hold the pipe open forever.
                    Run::kill_group(*pgid);
                }
                let mut rb = ReadBuf::new(&mut this.buf);
                match Pin::new(output).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) if !rb.filled().is_empty() => {
                        let chunk = Bytes::copy_from_slice(rb.filled());
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    Poll::Ready(Err(e)) if e.kind() != io::ErrorKind::BrokenPipe => {
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(_) => {} // EOF
                }
                let Some(status) = exited.take() else {
                    return Poll::Pending; // EOF before exit: the wait above woke us up later
                };
                let mut text = match status {
                    Ok(s) => process_state_text(s),
                    Err(e) => go_err(&e),
                };
                if *killed_by_timeout {
                    text.push_str(crate::api::TIMEOUT_SUFFIX);
                }
                this.run = Run::Done;
                Poll::Ready(Some(Ok(trailer(&text))))
            }
        }
    }
}

use std::future::Future;
use tokio::io::{AsyncRead, ReadBuf};

#[cfg(test)]
mod tests {
    use super::expand_path_element;

    #[test]
    fn path_variables_expand_anywhere_in_an_element() {
        let x = |e| expand_path_element(e, "/usr/bin:/bin", "/w");
        assert_eq!(x("$WORKDIR"), "/w");
        assert_eq!(x("$WORKDIR/go1.4/go/bin"), "/w/go1.4/go/bin");
        assert_eq!(x("/opt/$WORKDIR/x"), "/opt//w/x");
        assert_eq!(x("$PATH"), "/usr/bin:/bin");
        assert_eq!(x("a$EMPTYb"), "ab");
        assert_eq!(x("$EMPTY"), "");
        // Unknown variables and lone dollars stay as they are.
        assert_eq!(x("$HOME/bin$"), "$HOME/bin$");
        assert_eq!(x("$WORK"), "$WORK");
        // A replacement's text is not scanned again.
        assert_eq!(expand_path_element("$PATH", "$WORKDIR", "/w"), "$WORKDIR");
    }
}
