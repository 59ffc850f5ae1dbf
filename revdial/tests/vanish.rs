//! A peer that vanishes without a FIN is detected within the keep-alive window, in v2
//! (keep-alives and the socket's user timeout) and in mux mode (unanswered PINGs).
//!
//! The private side runs in a network namespace this test creates, joined to the test's
//! namespace by a veth pair with link-local addresses; taking the link down makes every
//! packet vanish, as when a machine loses power. Needs root and iproute2; without them the
//! test skips loudly, unless `REVDIAL_REQUIRE_NETNS=1` (set by `.ci/run`) makes that a failure.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use revdial::DialerConfig;

/// Each namespace's /30 of link-local addresses: (the test's side, the namespace's).
fn addresses(tag: char) -> (&'static str, &'static str) {
    match tag {
        'm' => ("169.254.77.5", "169.254.77.6"),
        _ => ("169.254.77.1", "169.254.77.2"),
    }
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A namespace and veth pair that are removed on drop, with the helper process.
struct Netns {
    name: String,
    host_if: String,
    peer_if: String,
    child: Option<Child>,
}

impl Netns {
    /// `tag` tells apart the namespaces of tests running at once in one process.
    fn create(tag: char) -> Option<Netns> {
        let id = std::process::id() % 100_000;
        let peer_if = format!("rdvb{id}{tag}");
        let (public_ip, private_ip) = addresses(tag);
        let ns = Netns {
            name: format!("rdv{id}{tag}"),
            host_if: format!("rdva{id}{tag}"),
            peer_if: peer_if.clone(),
            child: None,
        };
        let ok = sh(&["ip", "netns", "add", &ns.name])
            && sh(&[
                "ip",
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer_if,
            ])
            && sh(&["ip", "link", "set", &peer_if, "netns", &ns.name])
            && sh(&[
                "ip",
                "addr",
                "add",
                &format!("{public_ip}/30"),
                "dev",
                &ns.host_if,
            ])
            && sh(&["ip", "link", "set", &ns.host_if, "up"])
            && sh(&[
                "ip",
                "netns",
                "exec",
                &ns.name,
                "ip",
                "addr",
                "add",
                &format!("{private_ip}/30"),
                "dev",
                &peer_if,
            ])
            && sh(&[
                "ip", "netns", "exec", &ns.name, "ip", "link", "set", &peer_if, "up",
            ])
            && sh(&[
                "ip", "netns", "exec", &ns.name, "ip", "link", "set", "lo", "up",
            ]);
        ok.then_some(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        sh(&["ip", "link", "del", &self.host_if]);
        sh(&["ip", "netns", "del", &self.name]);
    }
}

fn config() -> DialerConfig {
    DialerConfig {
        keep_alive: Duration::from_secs(1),
        write_timeout: Duration::from_secs(1),
        ..DialerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_peer_is_detected_within_the_keep_alive_window() {
    vanish(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_mux_peer_is_detected_within_the_ping_window() {
    vanish(true).await;
}

/// Registers a private side in a namespace (offering mux or not), checks a stream, takes
/// the namespace's link down, and waits for the Dialer to notice.
async fn vanish(mux: bool) {
    let required = std::env::var("REVDIAL_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    let tag = if mux { 'm' } else { 'v' };
    let Some(mut ns) = Netns::create(tag) else {
        eprintln!(
            "\n*** SKIPPED vanished_peer test: cannot create a network namespace (needs root and iproute2) ***\n"
        );
        assert!(
            !required,
            "REVDIAL_REQUIRE_NETNS=1 but no network namespace could be created"
        );
        return;
    };
    let mut p = common::public_on(&format!("{}:0", addresses(tag).0), false, config()).await;
    let exe = std::env::current_exe().unwrap();
    ns.child = Some(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(exe)
            .args(["private_side_helper", "--exact", "--ignored", "--nocapture"])
            .env("REVDIAL_VANISH_ADDR", p.addr.to_string())
            .env("REVDIAL_VANISH_MUX", if mux { "1" } else { "0" })
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let d = tokio::time::timeout(Duration::from_secs(30), p.dialers.recv())
        .await
        .expect("the private side did not register")
        .unwrap();
    assert_eq!(d.mode() == revdial::Mode::Mux, mux, "the mode registered");
    // The connection works before the peer vanishes.
    let mut c = d.dial().await.unwrap();
    let mut b = [0u8; 2];
    tokio::io::AsyncReadExt::read_exact(&mut c, &mut b)
        .await
        .unwrap();
    assert_eq!(&b, b"ok");

    // Vanish: no FIN, no RST, nothing.
    assert!(sh(&[
        "ip",
        "netns",
        "exec",
        &ns.name,
        "ip",
        "link",
        "set",
        &ns.peer_if,
        "down"
    ]));
    // Detection is expected within keep_alive + write_timeout (2 s here); the bound
    // below only keeps a broken build from hanging.
    tokio::time::timeout(Duration::from_secs(30), d.done())
        .await
        .expect("the vanished peer was not detected");
    assert!(d.dial().await.is_err());
}

/// Runs inside the namespace: registers with the public side and answers every stream
/// with `ok`. Started by the test above; ignored in normal runs.
#[tokio::test]
#[ignore = "helper process for vanished_peer_is_detected_within_the_keep_alive_window"]
async fn private_side_helper() {
    let addr = std::env::var("REVDIAL_VANISH_ADDR").expect("run by the vanish test only");
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let mux = std::env::var("REVDIAL_VANISH_MUX").is_ok_and(|v| v == "1");
    let mut conn = common::connect(addr, None).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let offer = [(revdial::mux::MUX_HEADER, revdial::mux::MUX_PROTOCOL)];
    let head = revdial::http1::request_switch(
        &mut conn,
        &mut buf,
        "/reverse",
        if mux { &offer[..] } else { &[] },
    )
    .await
    .unwrap();
    let control = revdial::io::Rewind::new(buf.freeze(), conn);
    let accepted = head
        .header(revdial::mux::MUX_HEADER)
        .and_then(|v| std::str::from_utf8(v).ok());
    let mut ln = if revdial::mux::offers_mux(accepted) {
        revdial::Listener::new_mux(control, &revdial::MuxConfig::following(&config()))
    } else {
        revdial::Listener::new(
            control,
            common::dial_back(addr, None),
            revdial::ListenerConfig::default(),
        )
    };
    while let Ok(mut c) = ln.accept().await {
        let _ = tokio::io::AsyncWriteExt::write_all(&mut c, b"ok").await;
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut c, &mut sink).await;
        });
    }
}
