//! Every page in headless Chromium: what a person opening it sees, and that every link on
//! it resolves.
//!
//! Needs Debian's `chromium` (`.ci/run` installs it). Without it the test skips with a
//! loud message, unless `REQUIRE_BROWSER=1`, which turns the skip into a failure.

mod common;

use std::process::Command;

use common::*;

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_string)
}

/// The browser, or `None` after saying loudly that the test skips (a failure instead
/// under `REQUIRE_BROWSER=1`).
fn chromium_or_skip() -> Option<String> {
    let found = chromium();
    if found.is_none() {
        if std::env::var_os("REQUIRE_BROWSER").is_some_and(|v| v == "1") {
            panic!("REQUIRE_BROWSER=1 but no chromium is installed");
        }
        eprintln!(
            "\n*** SKIPPED: no chromium found; install Debian's `chromium` or run .ci/run. REQUIRE_BROWSER=1 turns this skip into a failure.\n"
        );
    }
    found
}

/// The DOM after Chromium loaded and rendered `url`.
fn rendered(browser: &str, url: &str, profile: &std::path::Path) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=2000", "--dump-dom", url])
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text a person reads: the DOM without tags.
fn visible_text(dom: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Every `href` of a page, resolved against the page's path.
fn links(page: &str, dom: &str) -> Vec<String> {
    let path = page.split('?').next().unwrap_or(page);
    let resolve = |href: &str| -> String {
        let mut parts: Vec<&str> = path.split('/').collect();
        parts.pop(); // the page's own name
        for seg in href.split('/') {
            match seg {
                "." => {}
                ".." => {
                    if parts.len() > 1 {
                        parts.pop();
                    }
                }
                s => parts.push(s),
            }
        }
        parts.join("/")
    };
    dom.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|href| href.replace("&amp;", "&"))
        .filter(|href| !href.starts_with("http") && !href.starts_with('#'))
        .map(|href| {
            if href.starts_with('?') {
                format!("{path}{href}")
            } else if href.starts_with('/') {
                href
            } else {
                resolve(&href)
            }
        })
        .map(|href| href.split('#').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn every_page_renders_and_its_links_resolve() {
    let Some(browser) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(&repo, "#!/bin/sh\necho fine\n", "Add the build script");
    let cfg = config(
        dir.path(),
        &repo,
        "[[builders]]\nname = \"linux-check\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\n\n\
         [[builders]]\nname = \"linux-fail\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"], [\"sh\", \"-c\", \"echo broken; exit 3\"]]\n",
    );
    let c = start(&cfg);
    let port = c.port;
    wait_for("the builds", 60, || {
        let g = grid(port);
        (cell(&g, &rev, "linux-check") == "ok" && cell(&g, &rev, "linux-fail").contains("/log/"))
            .then_some(())
    });
    let (_, status) = http(port, "GET", "/status?mode=json", "");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let id_of = |builder: &str| {
        status["recent"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["builder"] == builder)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ok, failed) = (id_of("linux-check"), id_of("linux-fail"));

    let profile = dir.path().join("chromium-profile");
    let mut checked = std::collections::BTreeSet::new();
    let mut page = |path: &str, wants: &[&str]| -> String {
        let dom = rendered(
            &browser,
            &format!("http://127.0.0.1:{port}{path}"),
            &profile,
        );
        let text = visible_text(&dom);
        for want in wants {
            assert!(text.contains(want), "{path}: want {want:?} in {text}");
        }
        for link in links(path, &dom) {
            if checked.insert(link.clone()) {
                let (code, body) = http(port, "GET", &link, "");
                assert!(
                    (200..400).contains(&code),
                    "{path} links {link}: {code} {body}"
                );
            }
        }
        dom
    };

    let dom = page(
        "/",
        &[
            "Build grid",
            "linux-check",
            "linux-fail",
            &rev[..10],
            "Add the build script",
            "Tester <t@example.com>",
            "page 1",
        ],
    );
    assert!(
        dom.contains("<title>Build grid · coordinator</title>"),
        "{dom}"
    );
    assert!(
        dom.contains(&format!("class=\"cell ok\"><a href=\"/build/{ok}\"")),
        "a green ok cell linking its build: {dom}"
    );
    assert!(
        dom.contains(&format!(
            "class=\"cell failed\"><a href=\"/build/{failed}#failed\""
        )),
        "a red cell linking its failing step: {dom}"
    );
    page("/?page=1", &["No older commits.", "newer"]);
    page(
        &format!("/build/{ok}"),
        &[
            "linux-check at",
            "succeeded",
            "push source",
            "$ ./build.sh",
            "ok",
            "full log",
        ],
    );
    let dom = page(
        &format!("/build/{failed}"),
        &[
            "linux-fail at",
            "failed",
            "$ sh -c echo broken; exit 3",
            "exit status 3",
        ],
    );
    assert!(
        dom.contains("id=\"failed\""),
        "the failing step is marked: {dom}"
    );
    page(
        "/status",
        &[
            "Coordinator status",
            "0 running, 0 waiting for a machine, 0 queued.",
            "host-test 2 2 0 0",
            "Queue empty.",
            "linux-check at",
        ],
    );
    page(&format!("/log/{failed}"), &["result: failed", "broken"]);
    page("/perf/", &["Performance data"]);
    assert!(checked.len() >= 8, "links followed: {checked:?}");
}

/// A page of headless Chromium driven over the DevTools protocol.
struct Devtools {
    _browser: Killed,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The page's session on the browser's socket.
    session: Option<String>,
    next_id: u64,
}

/// A child process killed when dropped (also when a test fails halfway).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Devtools {
    async fn start(browser: &str, profile: &std::path::Path) -> Devtools {
        use std::io::BufRead;
        let mut child = Killed(
            Command::new(browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--remote-debugging-port=0",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg("about:blank")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("chromium runs"),
        );
        let stderr = child.0.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let url = loop {
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("chromium printed its DevTools address");
            if let Some(i) = line.find("ws://") {
                break line[i..].trim().to_string();
            }
        };
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut d = Devtools {
            _browser: child,
            ws,
            session: None,
            next_id: 0,
        };
        // A page of our own, and a session on it over the browser's socket.
        let target = d
            .call(
                "Target.createTarget",
                serde_json::json!({"url": "about:blank"}),
            )
            .await;
        let attached = d
            .call(
                "Target.attachToTarget",
                serde_json::json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        d.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        d.call("Page.enable", serde_json::json!({})).await;
        d
    }

    /// Sends a command and returns its result; `load`: also waits for the page load it
    /// causes.
    async fn send(
        &mut self,
        method: &str,
        params: serde_json::Value,
        load: bool,
    ) -> serde_json::Value {
        use futures_util::{SinkExt, StreamExt};
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = serde_json::json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = s.clone().into();
        }
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::text(
                msg.to_string(),
            ))
            .await
            .unwrap();
        let (mut result, mut loaded) = (None, !load);
        while result.is_none() || !loaded {
            let next = tokio::time::timeout(std::time::Duration::from_secs(30), self.ws.next())
                .await
                .expect("chromium answered")
                .unwrap()
                .unwrap();
            let Ok(text) = next.to_text() else { continue };
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                result = Some(v["result"].clone());
            } else if v["method"] == "Page.loadEventFired" {
                loaded = true;
            }
        }
        result.unwrap()
    }

    async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.send(method, params, false).await
    }

    async fn open(&mut self, url: &str) {
        self.send("Page.navigate", serde_json::json!({ "url": url }), true)
            .await;
    }

    /// Evaluates JavaScript (awaiting a promise) and returns its value; `load`: it
    /// navigates, so wait for the next page.
    async fn eval(&mut self, js: &str, load: bool) -> serde_json::Value {
        let r = self
            .send(
                "Runtime.evaluate",
                serde_json::json!({"expression": js, "awaitPromise": true, "returnByValue": true}),
                load,
            )
            .await;
        r["result"]["value"].clone()
    }
}

#[test]
fn an_admin_logs_in_and_retries_a_build_with_its_button_and_a_forged_post_is_refused() {
    let Some(browser) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repo_with_script(&repo, "#!/bin/sh\necho fine\n", "Add the build script");
    let cfg = config(
        dir.path(),
        &repo,
        "[[builders]]\nname = \"linux-check\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\n",
    );
    let c = start(&cfg);
    let port = c.port;
    let id = wait_for("a finished build", 60, || {
        let (_, s) = http(port, "GET", "/status?mode=json", "");
        let v: serde_json::Value = serde_json::from_str(&s).ok()?;
        let b = v["recent"].as_array()?.first()?.clone();
        (b["state"] == "succeeded").then(|| b["id"].as_str().unwrap().to_string())
    });
    let token = create_token(&cfg, "alice", &["admin"]);
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut d = Devtools::start(&browser, &dir.path().join("profile")).await;
        // Not logged in: the page says how to act, and has no buttons.
        d.open(&format!("{base}/build/{id}")).await;
        let text = d.eval("document.body.innerText", false).await;
        assert!(
            text.as_str().unwrap().contains("Log in as an admin to retry"),
            "{text}"
        );
        assert_eq!(d.eval("!!document.getElementById('retry')", false).await, false);
        // A wrong token: the form again, saying so.
        d.open(&format!("{base}/login?next=/build/{id}")).await;
        d.eval(
            "document.getElementById('token').value = 'xbt_nope'; document.getElementById('login').submit()",
            true,
        )
        .await;
        let text = d.eval("document.body.innerText", false).await;
        assert!(text.as_str().unwrap().contains("unknown or revoked"), "{text}");
        // The right one: back on the build page, now with its buttons.
        d.eval(
            &format!(
                "document.getElementById('token').value = '{token}'; document.getElementById('login').submit()"
            ),
            true,
        )
        .await;
        let at = d.eval("location.pathname", false).await;
        assert_eq!(at, format!("/build/{id}"));
        // The cookie is HttpOnly: scripts cannot read the session.
        assert_eq!(d.eval("document.cookie", false).await, "");
        // Retry through the button: the new build's page.
        d.eval("document.getElementById('retry').click()", true).await;
        let at = d.eval("location.pathname", false).await;
        let at = at.as_str().unwrap();
        assert!(at.starts_with("/build/B") && at != format!("/build/{id}"), "{at}");
        // The same POST from a script with the session but without the CSRF token, or
        // with a wrong one, is refused; with the page's token it goes through.
        for body in ["", "csrf=00"] {
            let status = d
                .eval(
                    &format!(
                        "fetch('/api/builds/{id}/retry', {{method: 'POST', headers: {{'Content-Type': 'application/x-www-form-urlencoded'}}, body: '{body}'}}).then(r => r.status)"
                    ),
                    false,
                )
                .await;
            assert_eq!(status, 403, "body {body:?}");
        }
        d.open(&format!("{base}/build/{id}")).await;
        let status = d
            .eval(
                &format!(
                    "fetch('/api/builds/{id}/retry', {{method: 'POST', headers: {{'Content-Type': 'application/x-www-form-urlencoded'}}, body: 'csrf=' + document.querySelector('input[name=csrf]').value, redirect: 'manual'}}).then(r => r.type)"
                ),
                false,
            )
            .await;
        assert_eq!(status, "opaqueredirect", "a 303 to the new build");
        // perfstore's upload form carries the token too: a file uploaded through it is
        // stored with who uploaded it; the same multipart post without it is refused.
        let bench = dir.path().join("bench.txt");
        std::fs::write(&bench, "pkg: example.com/x\nBenchmarkX-2 10 123 ns/op\n").unwrap();
        d.open(&format!("{base}/perf/upload")).await;
        let doc = d.call("DOM.getDocument", serde_json::json!({})).await;
        let input = d
            .call(
                "DOM.querySelector",
                serde_json::json!({"nodeId": doc["root"]["nodeId"], "selector": "input[type=file]"}),
            )
            .await;
        d.call(
            "DOM.setFileInputFiles",
            serde_json::json!({"nodeId": input["nodeId"], "files": [bench.to_str().unwrap()]}),
        )
        .await;
        d.eval("document.querySelector('form').submit()", true).await;
        let text = d.eval("document.body.innerText", false).await;
        assert!(text.as_str().unwrap().contains("\"uploadid\""), "{text}");
        let status = d
            .eval(
                "(() => { const f = new FormData(); f.append('file', new Blob(['BenchmarkY 1 1 ns/op\\n']), 'y.txt'); return fetch('/perf/upload', {method: 'POST', body: f}).then(r => r.status); })()",
                false,
            )
            .await;
        assert_eq!(status, 403, "a multipart post without the form's token");
    });
    let (_, found) = http(port, "GET", "/perf/search?q=by:alice", "");
    assert!(
        found.contains("BenchmarkX"),
        "the upload is alice's: {found}"
    );
    // The audit log has the login, the retries and the refusals, by name.
    let (_, audit) = http(port, "GET", "/api/audit", "");
    let v: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let entries = v["entries"].as_array().unwrap();
    let count = |route: &str, status: u64| {
        entries
            .iter()
            .filter(|e| e["who"] == "alice" && e["route"] == route && e["status"] == status)
            .count()
    };
    assert_eq!(count("POST /login", 303), 1, "{audit}");
    assert_eq!(count("POST /api/builds/{id}/retry", 303), 2, "{audit}");
    assert_eq!(count("POST /api/builds/{id}/retry", 403), 2, "{audit}");
}
