//! The grid and the status page in headless Chromium: what a person opening them sees.
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

#[test]
fn grid_and_status_in_a_real_browser() {
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
        "[[builders]]\nname = \"linux-check\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\n",
    );
    let c = start(&cfg);
    let port = c.port;
    wait_for("the build", 60, || {
        (cell(&grid(port), &rev, "linux-check") == "ok").then_some(())
    });

    let profile = dir.path().join("chromium-profile");
    let dom = rendered(&browser, &format!("http://127.0.0.1:{port}/"), &profile);
    assert!(dom.contains("<title>Build grid</title>"), "{dom}");
    let text = visible_text(&dom);
    assert!(text.contains("Build grid"), "{text}");
    assert!(text.contains("linux-check"), "the builder column: {text}");
    assert!(text.contains(&rev[..10]), "the commit: {text}");
    assert!(
        text.contains("Add the build script"),
        "the commit title: {text}"
    );
    assert!(
        text.contains("Tester <t@example.com>"),
        "the author: {text}"
    );
    assert!(
        dom.contains("class=\"ok\"><a href=\"/log/"),
        "a green ok cell linking its log: {dom}"
    );

    let dom = rendered(
        &browser,
        &format!("http://127.0.0.1:{port}/status"),
        &profile,
    );
    let text = visible_text(&dom);
    assert!(text.contains("Coordinator status"), "{text}");
    assert!(text.contains("0 running, 0 queued."), "{text}");
    assert!(
        text.contains("Buildlet pools host type machines idle busy waiting host-test 2 2 0 0"),
        "{text}"
    );
    assert!(text.contains("Queue empty."), "{text}");
    assert!(
        text.contains("linux-check at"),
        "recently completed: {text}"
    );
}
