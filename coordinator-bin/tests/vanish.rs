//! A reverse buildlet whose network vanishes without a FIN, with the real binaries: the
//! coordinator drops it within its keep-alive window, and once the network is back the
//! buildlet (`--reconnect`) notices its dead connection and registers again.
//!
//! The buildlet runs in a network namespace this test creates, joined to the test's
//! namespace by a veth pair with link-local addresses; taking the link down makes every
//! packet vanish, as when a machine loses power. Needs root and iproute2; without them
//! the test skips loudly, unless `REVDIAL_REQUIRE_NETNS=1` (set by `.ci/run`) makes that
//! a failure.

mod common;

use std::process::{Command, Stdio};

use buildlet_proto::testing::buildlet_bin;
use common::*;

const PUBLIC_IP: &str = "169.254.78.1";
const PRIVATE_IP: &str = "169.254.78.2";

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A namespace with one end of a veth pair; both removed on drop.
struct Netns {
    name: String,
    host_if: String,
}

impl Netns {
    fn create() -> Option<Netns> {
        let id = std::process::id() % 100_000;
        let ns = Netns {
            name: format!("cvn{id}"),
            host_if: format!("cvna{id}"),
        };
        let peer = format!("cvnb{id}");
        let (public, private) = (format!("{PUBLIC_IP}/30"), format!("{PRIVATE_IP}/30"));
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns.name.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        let ok = ip(&["netns", "add", &ns.name])
            && ip(&[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ])
            && ip(&["link", "set", &peer, "netns", &ns.name])
            && ip(&["addr", "add", &public, "dev", &ns.host_if])
            && ip(&["link", "set", &ns.host_if, "up"])
            && inside(&["addr", "add", &private, "dev", &peer])
            && inside(&["link", "set", &peer, "up"])
            && inside(&["link", "set", "lo", "up"]);
        ok.then_some(ns)
    }

    fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        assert!(ip(&["link", "set", &self.host_if, state]), "link {state}");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["link", "del", &self.host_if]);
        ip(&["netns", "del", &self.name]);
    }
}

/// Where the coordinator's pages are: plain HTTP on loopback, or (one-port mode) HTTPS
/// on the link the buildlet uses, with a token (reading is not anonymous there).
enum Web {
    Plain(u16),
    Tls(u16, String),
}

impl Web {
    fn status(&self, json: bool) -> String {
        let path = if json { "/status?mode=json" } else { "/status" };
        match self {
            Web::Plain(port) => http(*port, "GET", path, "").1,
            Web::Tls(port, token) => {
                let out = Command::new("curl")
                    .args(["-sSk", "--max-time", "10", "-H"])
                    .arg(format!("Authorization: Bearer {token}"))
                    .arg(format!("https://{PUBLIC_IP}:{port}{path}"))
                    .output()
                    .expect("curl runs");
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        }
    }

    fn listed(&self, name: &str) -> bool {
        self.status(false).contains(name)
    }
}

#[test]
fn a_buildlet_that_vanishes_is_dropped_and_registers_again_when_it_returns() {
    vanish_and_return("v2", &["--revdial-v2"], false);
}

/// The same in revdial's multiplexed mode: streams on the registration connection,
/// whose dead-peer detection must be as good as v2's.
#[test]
fn a_mux_buildlet_that_vanishes_is_dropped_and_registers_again_when_it_returns() {
    vanish_and_return("mux", &[], false);
}

/// The same through the one-port TLS listener, where a registration's socket must be
/// tuned as on the reverse pool's own listener (v2 relies on it).
#[test]
fn a_buildlet_on_the_one_port_listener_that_vanishes_is_dropped_and_returns() {
    vanish_and_return("v2", &["--revdial-v2"], true);
}

/// One namespace at a time: its names and addresses are fixed per process.
static NETNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn vanish_and_return(mode: &str, flags: &[&str], one_port: bool) {
    let _one = NETNS.lock().unwrap_or_else(|e| e.into_inner());
    let required = std::env::var("REVDIAL_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    let Some(ns) = Netns::create() else {
        eprintln!(
            "\n*** SKIPPED vanish test: cannot create a network namespace (needs root and iproute2) ***\n"
        );
        assert!(
            !required,
            "REVDIAL_REQUIRE_NETNS=1 but no network namespace could be made"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    std::fs::write(&key, dashboard_types::keys::DEV_MASTER_KEY).unwrap();
    let cfg = dir.path().join("coordinator.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"{listen}:0\"\nreverse_listen = \"{PUBLIC_IP}:0\"\ndata_dir = {data:?}\n\
             master_key_file = {key:?}\n\n[pools.reverse]\nhost-vanish = 1\n\n\
             [revdial]\nkeep_alive_secs = 1\nwrite_timeout_secs = 1\n{tls}",
            listen = if one_port { PUBLIC_IP } else { "127.0.0.1" },
            tls = if one_port {
                "\n[tls]\nenabled = true\none_port = true\n"
            } else {
                ""
            },
            data = dir.path().join("data").display().to_string(),
            key = key.display().to_string(),
        ),
    )
    .unwrap();
    let c = start(&cfg);
    let web = if one_port {
        Web::Tls(c.port, create_token(&cfg, "vanish", &["viewer"]))
    } else {
        Web::Plain(c.port)
    };
    let _buildlet = Proc(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(buildlet_bin())
            .args(["--reverse-type", "host-vanish", "--coordinator"])
            .arg(format!("{PUBLIC_IP}:{}", c.reverse_port))
            .args(["--hostname", "vanishing", "--halt=false", "--reconnect"])
            .args(["--health-addr", "127.0.0.1:0"])
            .args(flags)
            .arg("--workdir")
            .arg(dir.path().join("w"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the buildlet to register", 60, || {
        web.listed("vanishing").then_some(())
    });
    let status = web.status(true);
    assert!(
        status.contains(&format!("\"revdial\":\"{mode}\"")),
        "the machine speaks {mode}: {status}"
    );
    ns.link(false);
    // keep_alive + write_timeout is 2 s; allow for scheduling on a loaded machine.
    wait_for("the coordinator to drop the vanished buildlet", 30, || {
        (!web.listed("vanishing")).then_some(())
    });
    ns.link(true);
    // The buildlet's keep-alive probes (30 s of silence, then every 10 s) find the dead
    // connection; --reconnect registers again.
    wait_for("the buildlet to register again", 120, || {
        web.listed("vanishing").then_some(())
    });
}
