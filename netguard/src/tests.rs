use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use http_body_util::BodyExt;

use super::*;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

#[test]
fn admits_up_to_the_caps_and_frees_on_drop() {
    let g = Guard::new(Limits {
        max_connections: 3,
        max_per_ip: 2,
        ..Limits::default()
    });
    let a1 = g.admit(ip(1)).unwrap();
    let _a2 = g.admit(ip(1)).unwrap();
    assert_eq!(g.admit(ip(1)).unwrap_err(), Refusal::PerIp);
    let _b1 = g.admit(ip(2)).unwrap();
    assert_eq!(g.admit(ip(3)).unwrap_err(), Refusal::Full);
    assert_eq!(g.open_connections(), 3);
    drop(a1);
    assert_eq!(g.open_connections(), 2);
    let _c = g.admit(ip(3)).unwrap();
    assert_eq!(g.admit(ip(1)).unwrap_err(), Refusal::Full);
}

#[tokio::test(start_paused = true)]
async fn an_idle_body_fails_after_its_limit_and_not_before() {
    let (mut tx, rx) = http_body_util_channel();
    let mut body = IdleBody::new(rx, Duration::from_secs(5), "the client");
    tx.send(bytes::Bytes::from_static(b"a")).await;
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "a"
    );
    // 4 s pass, a byte comes: the clock restarts.
    tokio::time::sleep(Duration::from_secs(4)).await;
    tx.send(bytes::Bytes::from_static(b"b")).await;
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "b"
    );
    let err = body.frame().await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("no data from the client for 5s"),
        "{err}"
    );
}

/// A minimal channel body for the test (http-body-util's is behind a feature).
fn http_body_util_channel() -> (Sender, Receiver) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (Sender(tx), Receiver(rx))
}

struct Sender(tokio::sync::mpsc::Sender<bytes::Bytes>);

impl Sender {
    async fn send(&mut self, b: bytes::Bytes) {
        self.0.send(b).await.unwrap();
    }
}

struct Receiver(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl http_body::Body for Receiver {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    use rustix::process::{Resource, getrlimit};
    let n = raise_nofile_limit().unwrap();
    let lim = getrlimit(Resource::Nofile);
    assert_eq!(lim.current, lim.maximum);
    assert_eq!(Some(n), lim.current.or(Some(u64::MAX)));
}
