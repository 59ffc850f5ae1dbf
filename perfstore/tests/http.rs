//! The HTTP API over a real loopback socket, against a real SQLite store: the spec's
//! server conformance cases.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use perfstore::SqliteStore;
use perfstore::http::{ServerConfig, router};
use tokio::io::AsyncWriteExt;

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

async fn start(config: ServerConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("perf.db")).await.unwrap();
    let app = router(Arc::new(store), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base: format!("http://{addr}"),
        addr,
        _dir: dir,
    }
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

async fn request(method: &str, url: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(url: String) -> Reply {
    request("GET", &url, None, Vec::new()).await
}

const BOUNDARY: &str = "b0undary";

/// A multipart body of `(field name, file name, content)` parts.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, content) in parts {
        body.extend(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(f) => body.extend(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n")
                    .as_bytes(),
            ),
            None => body
                .extend(format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes()),
        }
        body.extend(b"\r\n");
        body.extend(*content);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(s: &Server, parts: &[(&str, Option<&str>, &[u8])]) -> Reply {
    request(
        "POST",
        &format!("{}/upload", s.base),
        Some(&format!("multipart/form-data; boundary={BOUNDARY}")),
        multipart(parts),
    )
    .await
}

fn json(r: &Reply) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

fn today() -> String {
    chrono::Utc::now().format("%Y%m%d").to_string()
}

#[tokio::test]
async fn upload_search_and_list() {
    let s = start(ServerConfig {
        view_url_base: Some("https://perf.example/search?q=upload:".into()),
        ..ServerConfig::default()
    })
    .await;
    let day = today();
    // Case 21.
    let r = upload(
        &s,
        &[(
            "file",
            Some("1.txt"),
            b"key: value\nBenchmarkOne 5 ns/op\nkey:value2\nBenchmarkTwo 10 ns/op\n",
        )],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type, "application/json");
    let v = json(&r);
    assert_eq!(v["uploadid"], format!("{day}.1"));
    assert_eq!(v["fileids"], serde_json::json!([format!("{day}.1/0")]));
    assert_eq!(
        v["viewurl"],
        format!("https://perf.example/search?q=upload:{day}.1")
    );

    // Case 25: parts counted from 0 including `commit`; case 22: next ID.
    let r = upload(
        &s,
        &[
            ("commit", None, b"1"),
            (
                "file",
                Some("dir\\sub/run.txt"),
                b"key: other\nBenchmarkOne 7 ns/op\n",
            ),
        ],
    )
    .await;
    assert_eq!(
        json(&r)["fileids"],
        serde_json::json!([format!("{day}.2/1")])
    );

    // Case 42: labels printed as differences.
    let r = get(format!("{}/search?q=name:One", s.base)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    let first = format!(
        "key: value\nupload: {day}.1\nupload-file: 1.txt\nupload-part: {day}.1/0\nupload-time: "
    );
    assert!(r.body.starts_with(&first), "{}", r.body);
    assert!(r.body.contains(&format!(
        "BenchmarkOne 5 ns/op\nkey: other\nupload: {day}.2\nupload-file: run.txt\nupload-part: {day}.2/1\n"
    )), "{}", r.body);

    // Case 33.
    let r = get(format!("{}/search", s.base)).await;
    assert_eq!((r.status, r.body.as_str()), (400, "missing q parameter\n"));
    let r = get(format!("{}/search?q=%20", s.base)).await;
    assert_eq!(r.body.matches("Benchmark").count(), 3);
    // Form-encoded POST bodies work too.
    let r = request(
        "POST",
        &format!("{}/search", s.base),
        Some("application/x-www-form-urlencoded"),
        b"q=name%3ATwo".to_vec(),
    )
    .await;
    assert_eq!(r.body.matches("Benchmark").count(), 1, "{}", r.body);

    // Case 34, with 400 instead of upstream's 500 (see the http module docs).
    for (q, msg) in [
        ("bogus", "query part \"bogus\" is missing operator\n"),
        ("GOOS:linux", "query part \"GOOS:linux\" has invalid key\n"),
        ("a:1%20OR%20a:2", "query part \"OR\" has invalid key\n"),
        ("k:", "missing value for key \"k\"\n"),
    ] {
        let r = get(format!("{}/search?q={q}", s.base)).await;
        assert_eq!((r.status, r.body.as_str()), (400, msg));
    }
    // Case 36.
    let r = get(format!("{}/search?q=key:value%20key:other", s.base)).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let r = get(format!("{}/uploads?q=key:value%20key:other", s.base)).await;
    assert_eq!((r.status, r.body.as_str()), (500, "EOF\n"));

    // Cases 43 and 44.
    let r = get(format!("{}/uploads", s.base)).await;
    assert_eq!(r.content_type, "application/json");
    assert_eq!(
        r.body,
        format!(
            "{{\"Count\":1,\"UploadID\":\"{day}.2\"}}\n{{\"Count\":2,\"UploadID\":\"{day}.1\"}}\n"
        )
    );
    let r = get(format!("{}/uploads?limit=1", s.base)).await;
    assert_eq!(r.body.lines().count(), 1);
    let r = get(format!("{}/uploads?limit=0", s.base)).await;
    assert_eq!(r.body.lines().count(), 2);
    let r = get(format!("{}/uploads?limit=x", s.base)).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "invalid limit parameter\n")
    );
    let r = get(format!(
        "{}/uploads?q=key:value&extra_label=key&extra_label=missing",
        s.base
    ))
    .await;
    assert_eq!(
        r.body,
        format!("{{\"Count\":2,\"UploadID\":\"{day}.1\",\"LabelValues\":{{\"key\":\"value\"}}}}\n")
    );
}

#[tokio::test]
async fn failures_store_nothing() {
    let s = start(ServerConfig {
        max_upload_bytes: 200_000,
        ..ServerConfig::default()
    })
    .await;
    let day = today();
    // Case 23: no ID consumed.
    let r = upload(&s, &[("commit", None, b"1")]).await;
    assert_eq!((r.status, r.body.as_str()), (500, "no files processed\n"));
    // Case 24: ID consumed, not listed.
    let r = upload(&s, &[("file", Some("a"), b"PASS\n")]).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "no valid benchmark lines found\n")
    );
    // Case 26: `abort` after a good file.
    let r = upload(
        &s,
        &[
            ("file", Some("a"), b"BenchmarkA 1 1 ns/op\n"),
            ("abort", None, b"1"),
        ],
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "unexpected field \"abort\"\n")
    );
    // Case 31: the second file fails (case 19: a 65,536-byte line).
    let mut long = b"BenchmarkB 1 1 ns/op\n".to_vec();
    long.extend(vec![b'x'; 65_536]);
    long.push(b'\n');
    let r = upload(
        &s,
        &[
            ("file", Some("a"), b"BenchmarkA 1 1 ns/op\n"),
            ("file", Some("b"), &long),
        ],
    )
    .await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("token too long"), "{}", r.body);
    // Case 29: a configuration key that is also a name label.
    let r = upload(&s, &[("file", None, b"name: foo\nBenchmarkX 1 1 ns/op\n")]).await;
    assert_eq!(r.status, 500);
    // Over the size limit: 413 with a clear message.
    let big = vec![b'a'; 300_000];
    let r = upload(&s, &[("file", Some("big"), &big)]).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.body,
        "upload is larger than the configured limit of 200000 bytes\n"
    );
    // A client that disconnects mid-upload.
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let partial = multipart(&[("file", Some("cut"), b"BenchmarkCut 1 1 ns/op\n")]);
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        partial.len() + 1000
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&partial[..partial.len() - 10])
        .await
        .unwrap();
    drop(conn);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // Nothing of any failed request is visible.
    let r = get(format!("{}/search?q=%20", s.base)).await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let r = get(format!("{}/uploads", s.base)).await;
    assert_eq!(r.body, "");
    // A good upload now gets the next ID: failed ones consumed theirs (upstream behaviour).
    let r = upload(&s, &[("file", Some("ok"), b"BenchmarkOK 1 1 ns/op\n")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = json(&r)["uploadid"].as_str().unwrap().to_string();
    assert!(
        id.starts_with(&format!("{day}.")) && id != format!("{day}.1"),
        "{id}"
    );
}

#[tokio::test]
async fn methods_and_pages() {
    let s = start(ServerConfig::default()).await;
    // Case 32.
    let r = get(format!("{}/upload", s.base)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("<input type=\"file\" name=\"file\" multiple>")
    );
    let r = request("PUT", &format!("{}/upload", s.base), None, Vec::new()).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (405, "/upload must be called as a POST request\n")
    );
    let r = get(format!("{}/", s.base)).await;
    assert!(r.body.contains("<form action=\"./ui/search\""));
    let r = get(format!("{}/no/such/page", s.base)).await;
    assert_eq!(r.status, 404);

    let old: String = (0..10)
        .map(|i| format!("BenchmarkX 1 {} ns/op\n", 200 + i))
        .collect();
    let new: String = (0..10)
        .map(|i| format!("BenchmarkX 1 {} ns/op\n", 100 + i))
        .collect();
    let a = json(&upload(&s, &[("file", Some("old"), old.as_bytes())]).await)["uploadid"]
        .as_str()
        .unwrap()
        .to_string();
    let b = json(&upload(&s, &[("file", Some("new"), new.as_bytes())]).await)["uploadid"]
        .as_str()
        .unwrap()
        .to_string();
    let r = get(format!("{}/ui/search?q=upload:{a}", s.base)).await;
    assert!(r.body.contains("1 record(s)"), "{}", r.body);
    let r = get(format!(
        "{}/ui/compare?old=upload:{a}&new=upload:{b}",
        s.base
    ))
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("-48.90% (p=0.000 n=10)"), "{}", r.body);
    let r = get(format!("{}/ui/compare?old=BAD&new=x:1", s.base)).await;
    assert_eq!(r.status, 400);
}

/// Every link and form action of a page, resolved against the page's path.
fn resolved_links(page_path: &str, html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "action=\""] {
        for piece in html.split(attr).skip(1) {
            let target = &piece[..piece.find('"').unwrap()];
            let dir = &page_path[..=page_path.rfind('/').unwrap()];
            let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
            for seg in target.split('/') {
                match seg {
                    "." | "" => {}
                    ".." => {
                        parts.pop();
                    }
                    s => parts.push(s),
                }
            }
            let mut path = format!("/{}", parts.join("/"));
            if target.ends_with('/') && path != "/" {
                path.push('/');
            }
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn ui_links_resolve_and_unknown_paths_are_404() {
    let s = start(ServerConfig::default()).await;
    for page in [
        "/",
        "/upload",
        "/ui/search?q=a:b",
        "/ui/compare?old=a:b&new=a:c",
    ] {
        let r = get(format!("{}{page}", s.base)).await;
        assert_eq!(r.status, 200, "{page}: {}", r.body);
        let path = page.split('?').next().unwrap();
        for link in resolved_links(path, &r.body) {
            assert!(
                ["/", "/upload", "/ui/search", "/ui/compare"].contains(&link.as_str()),
                "{page} links to {link}"
            );
        }
    }
    for bad in ["/ui/ui/search", "/nothing", "/ui/"] {
        let r = get(format!("{}{bad}", s.base)).await;
        assert_eq!(r.status, 404, "{bad}: {}", r.body);
        assert!(r.body.contains("404 page not found"), "{}", r.body);
    }
}

#[tokio::test]
async fn an_unterminated_quote_is_a_400_not_the_whole_database() {
    let s = start(ServerConfig::default()).await;
    for path in ["/search?q=%22", "/ui/search?q=pkg:%22a", "/uploads?q=%22"] {
        let r = get(format!("{}{path}", s.base)).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.body.contains("unterminated quote"), "{}", r.body);
    }
}

#[tokio::test]
async fn uploads_beyond_the_cap_wait_for_their_turn() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start(ServerConfig {
        max_concurrent_uploads: 1,
        ..ServerConfig::default()
    })
    .await;
    let head = |len: usize| {
        format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    let body = multipart(&[("file", Some("a.txt"), b"BenchmarkA 1 1 ns/op\n")]);
    // The first upload sends half its body and holds its place.
    let mut first = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    first.write_all(head(body.len()).as_bytes()).await.unwrap();
    first.write_all(&body[..body.len() / 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The second is complete, but must wait for the first.
    let second = tokio::spawn({
        let body = body.clone();
        let addr = s.addr;
        let head = head(body.len());
        async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(head.as_bytes()).await.unwrap();
            c.write_all(&body).await.unwrap();
            let mut reply = Vec::new();
            let mut buf = [0u8; 1024];
            while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut buf).await.unwrap();
                assert!(n > 0);
                reply.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&reply).into_owned()
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !second.is_finished(),
        "the second upload ran beside the first"
    );
    first.write_all(&body[body.len() / 2..]).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the second upload never ran")
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn comparing_two_commits_gives_one_table_with_a_delta() {
    let s = start(ServerConfig::default()).await;
    let run = |commit: &str, base: u32| -> String {
        let mut t = format!("goos: linux\ncommit: {commit}\n");
        for i in 0..8 {
            t.push_str(&format!("BenchmarkEncode-2 1000 {} ns/op\n", base + i));
        }
        t
    };
    for (commit, base) in [("aaa", 1250), ("bbb", 1050)] {
        let text = run(commit, base);
        upload(&s, &[("file", Some("run.txt"), text.as_bytes())]).await;
    }
    let r = get(format!(
        "{}/ui/compare?old=commit:aaa&new=commit:bbb&ignore=goos",
        s.base
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // One table (one unit header per column), both columns filled, and the delta.
    assert_eq!(r.body.matches("sec/op").count(), 2, "{}", r.body);
    assert!(
        r.body.contains("-15.8") || r.body.contains("-15.9"),
        "{}",
        r.body
    );
    assert!(r.body.contains("(p=0.000 n=8)"), "{}", r.body);
    // The forms show the comparison that is on the page.
    assert!(
        r.body.contains(r#"name="old" value="commit:aaa""#),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_comparison_page_takes_benchstats_projections() {
    let s = start(ServerConfig::default()).await;
    for (commit, base) in [("aaa", 1250), ("bbb", 1050), ("ccc", 900)] {
        let mut t = format!("pkg: example.com/x\ncommit: {commit}\n");
        for i in 0..8 {
            t.push_str(&format!(
                "BenchmarkEncode/size=64-2 1000 {} ns/op\n",
                base + i
            ));
            t.push_str(&format!(
                "BenchmarkEncode/size=512-2 1000 {} ns/op\n",
                4 * base + i
            ));
        }
        upload(&s, &[("file", Some("run.txt"), t.as_bytes())]).await;
    }
    // One query, split by commit: three columns of one table, the first the baseline.
    let r = get(format!(
        "{}/ui/compare?old=pkg:example.com/x&col=commit&row=/size",
        s.base
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let header = r.body.lines().find(|l| l.contains("aaa")).unwrap();
    let (a, b, c) = (
        header.find("aaa").unwrap(),
        header.find("bbb").unwrap(),
        header.find("ccc").unwrap(),
    );
    assert!(a < b && b < c, "{header}");
    assert_eq!(r.body.matches("vs base").count(), 2, "{}", r.body);
    // Rows are the size alone; the page keeps the projection in its form.
    assert!(r.body.lines().any(|l| l.starts_with("512 ")), "{}", r.body);
    assert!(
        r.body.contains(r#"name="col" value="commit""#),
        "{}",
        r.body
    );
    // A key benchstat knows but this page does not offer is a 400 that says which.
    let r = get(format!(
        "{}/ui/compare?old=pkg:example.com/x&col=.config",
        s.base
    ))
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("col") && r.body.contains(".config"),
        "{}",
        r.body
    );
    let r = get(format!(
        "{}/ui/compare?old=pkg:example.com/x&ignore=a@b",
        s.base
    ))
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

/// Sends a refused upload (an unexpected first field) whose rest is `rest` bytes on one
/// connection, then a search on the same connection; returns the first answer's head and
/// whether the second request got an answer.
async fn refused_then_reused(s: &Server, rest: usize) -> (String, bool) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"bogus\"\r\n\r\nx\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n"
    )
    .into_bytes();
    body.extend(std::iter::repeat_n(b'a', rest));
    body.extend(format!("\r\n--{BOUNDARY}--\r\n").into_bytes());
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (rd, mut wr) = c.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(&body).await;
        wr
    });
    let mut rd = BufReader::new(rd);
    let mut first = String::new();
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        first.push_str(&line);
    }
    let len: usize = first
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut skip = vec![0u8; len];
    rd.read_exact(&mut skip).await.unwrap();
    let mut wr = writer.await.unwrap();
    let reused = wr
        .write_all(b"GET /search?q=k:v HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_ok()
        && {
            let mut line = String::new();
            let got =
                tokio::time::timeout(std::time::Duration::from_secs(10), rd.read_line(&mut line))
                    .await;
            matches!(got, Ok(Ok(n)) if n > 0) && line.starts_with("HTTP/1.1 200")
        };
    (first, reused)
}

#[tokio::test]
async fn a_small_unread_rest_is_read_so_the_connection_stays_usable() {
    let s = start(ServerConfig::default()).await;
    let (head, reused) = refused_then_reused(&s, 64 << 10).await;
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(reused, "the connection was not kept after a drained rest");
}

#[tokio::test]
async fn a_large_unread_rest_closes_the_connection_and_says_so() {
    let s = start(ServerConfig::default()).await;
    let (head, reused) = refused_then_reused(&s, 2 * perfstore::http::MAX_DRAIN_BYTES).await;
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(!reused, "a connection announced as closing answered again");
}
