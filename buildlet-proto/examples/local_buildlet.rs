//! A buildlet server and a client in one process, on loopback.
//!
//! Run with: cargo run -p buildlet-proto --example local_buildlet

use buildlet_proto::api::{ExecRequest, GoFileMode};
use buildlet_proto::{BuildletClient, HttpClient, server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let w = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let mut cfg = server::Config::new(w.path().join("w"));
    cfg.password = "secret".into();
    tokio::spawn(server::serve(listener, cfg, std::future::pending()));
    println!(
        "buildlet on {addr}, work dir {}",
        w.path().join("w").display()
    );

    let c = HttpClient::tcp(&addr).password("secret").build();
    println!("status: version {}", c.status().await?.version);
    c.put(
        "hello.sh",
        GoFileMode(0o755),
        "#!/bin/sh\necho hello from $PWD\n".into(),
    )
    .await?;
    let req = ExecRequest {
        cmd: "hello.sh".into(),
        ..Default::default()
    };
    let state = c.exec(req, Box::new(tokio::io::stdout())).await?;
    println!("Process-State: {state:?}");
    for e in c.list_dir(".", false, true, vec![]).await? {
        println!("ls: {} {} {:?}", e.mode, e.name, e.sha1);
    }
    Ok(())
}
