//! `serve --tls` in upstream's one-port mode, over real sockets with real clients: curl
//! trusting the generated CA reaches the UI and API, curl trusting only the system's CAs
//! is refused, and a real reverse buildlet registers on the same port and runs a build.

mod common;

use std::process::Command;

use common::*;

/// `curl` over HTTPS: (exit code, body).
fn curl(args: &[&str], url: &str) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn one_tls_port_serves_the_ui_and_registers_reverse_buildlets() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(&repo, "#!/bin/sh\necho built over one port\n", "one commit");
    let cfg = config(
        dir.path(),
        &repo,
        "[[builders]]\nname = \"rev\"\nhost_type = \"host-tls-rev\"\nsteps = [[\"./build.sh\"]]\n\n\
         [pools.reverse]\nhost-tls-rev = 1\n\n[pools.local]\n\n\
         [tls]\nenabled = true\none_port = true\n",
    );
    let c = start(&cfg);
    assert_eq!(c.reverse_port, c.port, "reverse buildlets use the web port");
    let ca = dir.path().join("data/tls/ca.pem");
    let ca = ca.to_str().unwrap();
    let base = format!("https://127.0.0.1:{}", c.port);
    // Trusting the generated CA: the UI answers.
    let (code, body) = curl(&["--cacert", ca], &format!("{base}/healthz"));
    assert_eq!((code, body.as_str()), (0, "ok\n"));
    // Trusting only the system's CAs: the handshake is refused (curl's 60: the peer's
    // certificate cannot be verified).
    let (code, _) = curl(&[], &format!("{base}/healthz"));
    assert_eq!(code, 60);
    // Plain HTTP to the TLS port gets no page.
    let (code, _) = curl(&[], &format!("http://127.0.0.1:{}/healthz", c.port));
    assert_ne!(code, 0);
    // A real reverse buildlet registers on the same port and builds.
    let key = builder_key_file(dir.path(), &cfg, "host-tls-rev");
    let _b = reverse_buildlet(dir.path(), "host-tls-rev", "rev-1", c.port, &key);
    let admin = create_token(&cfg, "tls-admin", &["admin"]);
    let auth = format!("Authorization: Bearer {admin}");
    let log = wait_for("the build on the reverse buildlet", 60, || {
        let (_, s) = curl(
            &["--cacert", ca, "-H", &auth],
            &format!("{base}/status?mode=json"),
        );
        let v: serde_json::Value = serde_json::from_str(&s).ok()?;
        let b = v["recent"].as_array()?.first()?.clone();
        (b["state"] == "succeeded").then(|| b["id"].as_str().unwrap().to_string())
    });
    let (_, text) = curl(&["--cacert", ca], &format!("{base}/log/{log}"));
    assert!(text.contains("built over one port"), "{text}");
    let (_, status) = curl(&["--cacert", ca], &format!("{base}/status?mode=json"));
    assert!(status.contains("rev-1"), "{status}");
    assert!(status.contains(&rev[..10]), "{status}");
    // `coordinator retry` speaks https too, trusting the CA it is given (and no other).
    let retry = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["retry", "--rev", &rev[..8], "--url", &base])
            .args(extra)
            .env("COORDINATOR_TOKEN", &admin)
            .output()
            .unwrap()
    };
    let out = retry(&["--ca", ca]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("retried"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = retry(&[]);
    assert!(
        !out.status.success(),
        "the system's roots do not know the generated CA"
    );
}
