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
    let Some(browser) = chromium() else {
        if std::env::var_os("REQUIRE_BROWSER").is_some_and(|v| v == "1") {
            panic!("REQUIRE_BROWSER=1 but no chromium is installed");
        }
        eprintln!(
            "\n*** SKIPPED: no chromium found; install Debian's `chromium` or run .ci/run. REQUIRE_BROWSER=1 turns this skip into a failure.\n"
        );
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
