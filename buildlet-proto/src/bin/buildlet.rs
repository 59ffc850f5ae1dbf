//! `buildlet`: the agent that runs on every worker machine of a build farm.
//!
//! Direct mode listens for a coordinator (or gomote) and serves the buildlet HTTP API;
//! reverse mode (`--reverse-type`) dials the coordinator and serves through revdial.
//! Password and TLS come from `META_password`, `META_tls_cert`, `META_tls_key` (a value
//! starting with `@` names a file) or `--password-file`.

/// mimalloc keeps freed blocks for reuse; glibc's allocator returns them to the kernel
/// and faults them back in, which costs revdial's mux mode a quarter of its throughput
/// (BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use buildlet_proto::api::VERSION;
use buildlet_proto::reverse::{ReverseConfig, tls_client_config};
use buildlet_proto::server::{Config, host_platform, serve, serve_tls};
use clap::Parser;
use dashboard_types::keys::{DEV_MASTER_KEY, builder_key};

/// The buildlet: runs commands and moves files in its work directory for a coordinator.
///
/// Examples:
///   buildlet --listen 127.0.0.1:5936 --workdir /tmp/w        # direct mode, no password
///   META_password=secret buildlet --listen :5936              # with Basic auth
///   buildlet --reverse-type host-linux-amd64-local --coordinator localhost:8119 --reconnect
#[derive(Parser, Debug)]
#[command(disable_version_flag = true, verbatim_doc_comment)]
struct Args {
    /// Address to listen on in direct mode. AUTO means localhost:5936 (or :443 with TLS).
    #[arg(long, default_value = "AUTO")]
    listen: String,
    /// Work directory W. Default: $TMPDIR/workdir (or workdir-TYPE in reverse mode), wiped at start.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Host type to register as; enables reverse mode.
    #[arg(long = "reverse-type", default_value = "")]
    reverse_type: String,
    /// Coordinator address for reverse mode (host:port).
    #[arg(long, default_value = "localhost:8119")]
    coordinator: String,
    /// Name reported to the coordinator. Default: $HOSTNAME, the OS host name, or "buildlet".
    #[arg(long, default_value = "")]
    hostname: String,
    /// Address of the /healthz listener in reverse mode. If it is taken (a second
    /// buildlet on the host), the buildlet warns and runs without it.
    #[arg(long = "health-addr", default_value = "0.0.0.0:8080")]
    health_addr: String,
    /// After /halt or the end of reverse mode, wait 5 s before exiting (upstream also powers
    /// the machine off; this buildlet never does).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    halt: bool,
    /// Print the protocol version and exit.
    #[arg(long)]
    version: bool,
    /// Read the password from this file (trimmed) instead of META_password.
    #[arg(long = "password-file")]
    password_file: Option<PathBuf>,
    /// Direct mode: serve without a password, on purpose. Without it an empty password
    /// (an empty META_password or password file) is refused at start.
    #[arg(long = "no-auth")]
    no_auth: bool,
    /// Reverse mode: redial with exponential backoff when the coordinator goes away.
    #[arg(long)]
    reconnect: bool,
    /// Reverse mode: speak only revdial v2 (a new TCP+TLS connection per stream) instead
    /// of offering the multiplexed mode (streams on the registration connection), which
    /// our coordinator accepts and Go's ignores.
    #[arg(long = "revdial-v2")]
    revdial_v2: bool,
    /// Reverse mode: trust this CA (PEM) for the coordinator instead of skipping
    /// verification (upstream skips it for any coordinator but farmer.golang.org).
    #[arg(long = "coordinator-ca", conflicts_with = "coordinator_ca_pem")]
    coordinator_ca: Option<PathBuf>,
    /// Reverse mode: the coordinator's CA as PEM text, for machines started with no files
    /// of their own (the coordinator's container and Kubernetes pools set it).
    #[arg(
        long = "coordinator-ca-pem",
        env = "BUILDLET_COORDINATOR_CA_PEM",
        hide_env_values = true
    )]
    coordinator_ca_pem: Option<String>,
    /// Reverse mode: builder key file (default $GO_BUILD_KEY_PATH or ~/.gobuildkey-TYPE;
    /// in dev mode the key is derived from the dev master key).
    #[arg(long = "key-file", conflicts_with = "key")]
    key_file: Option<PathBuf>,
    /// Reverse mode: the builder key itself. Set it as GO_BUILD_KEY in the environment: a
    /// command line is visible to every user of the machine. The coordinator's container
    /// and Kubernetes pools set it to the instance's own key.
    #[arg(
        long = "key",
        env = "GO_BUILD_KEY",
        hide = true,
        hide_env_values = true
    )]
    key: Option<String>,
    /// Largest body /write and /writetgz accept, in bytes (default: unlimited, as upstream).
    #[arg(long = "max-upload-bytes")]
    max_upload_bytes: Option<u64>,
    /// Most bytes of files one /writetgz may write (default: unlimited, as upstream).
    #[arg(long = "max-extract-bytes")]
    max_extract_bytes: Option<u64>,
    /// Most files and directories one /writetgz may create (default: unlimited).
    #[arg(long = "max-extract-entries")]
    max_extract_entries: Option<u64>,
    /// Local sshd address for /connect-ssh.
    #[arg(long = "ssh-addr", default_value = "127.0.0.1:22")]
    ssh_addr: String,
}

/// A metadata value: `META_<name>`, where a leading `@` names a file to read.
fn meta(name: &str) -> Result<Option<String>> {
    match std::env::var(format!("META_{name}")) {
        Ok(v) if v.starts_with('@') => Ok(Some(
            std::fs::read_to_string(&v[1..])
                .with_context(|| format!("reading META_{name} file {}", &v[1..]))?,
        )),
        Ok(v) => Ok(Some(v)),
        Err(_) => Ok(None),
    }
}

/// The direct-mode password: `--password-file` (trimmed), else `META_password`; none
/// means no authentication, as upstream. A source that yields an empty password is a
/// mistake (a blank file, an unset template variable) and is refused unless `--no-auth`
/// says that no authentication is meant.
fn direct_password(args: &Args) -> Result<String> {
    let (source, value) = match &args.password_file {
        Some(p) => (
            format!("--password-file {}", p.display()),
            Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?
                    .trim()
                    .to_owned(),
            ),
        ),
        None => ("META_password".to_owned(), meta("password")?),
    };
    match value {
        Some(v) if v.is_empty() && args.no_auth => Ok(v),
        Some(v) if v.is_empty() => bail!(
            "the password from {source} is empty, which would turn authentication off; \
             fix it, or pass --no-auth to serve without a password on purpose"
        ),
        Some(_) if args.no_auth => {
            bail!("--no-auth and a password from {source} contradict each other")
        }
        Some(v) => Ok(v),
        None => Ok(String::new()),
    }
}

fn hostname(flag: &str) -> String {
    [
        flag.to_owned(),
        std::env::var("HOSTNAME").unwrap_or_default(),
    ]
    .into_iter()
    .chain(
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_owned()),
    )
    .find(|s| !s.is_empty())
    .unwrap_or_else(|| "buildlet".into())
}

fn builder_key_for(args: &Args) -> Result<String> {
    if let Some(k) = &args.key {
        return Ok(k.trim().to_owned());
    }
    let dev = !args.coordinator.starts_with("farmer.golang.org");
    let path = match (&args.key_file, std::env::var_os("GO_BUILD_KEY_PATH")) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(p)) => Some(PathBuf::from(p)),
        (None, None) if dev => None,
        (None, None) => {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
            Some(home.join(format!(".gobuildkey-{}", args.reverse_type)))
        }
    };
    match path {
        Some(p) => Ok(std::fs::read_to_string(&p)
            .with_context(|| format!("reading builder key {}", p.display()))?
            .trim()
            .to_owned()),
        None => Ok(builder_key(DEV_MASTER_KEY.as_bytes(), &args.reverse_type)),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.version {
        println!("{VERSION}");
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // As Go's runtime does: every connection is a descriptor, and the soft limit (often
    // 1024) is far below what the hard limit allows.
    if let Err(e) = netguard::raise_nofile_limit() {
        tracing::warn!("could not raise the open-file limit: {e}");
    }

    let reverse = !args.reverse_type.is_empty();
    let workdir = match &args.workdir {
        Some(w) => std::path::absolute(w)?,
        None => {
            let name = if reverse {
                format!("workdir-{}", args.reverse_type)
            } else {
                "workdir".into()
            };
            let w = std::env::temp_dir().join(name);
            let _ = std::fs::remove_dir_all(&w);
            w
        }
    };
    for sub in ["", "tmp", "gocache", "goplscache"] {
        let d = workdir.join(sub);
        if !sub.is_empty() {
            let _ = std::fs::remove_dir_all(&d);
        }
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let password = if reverse {
        String::new() // reverse mode never reads the password (spec §1.3)
    } else {
        direct_password(&args)?
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let halt_after = args.halt;
    let mut cfg = Config::new(&workdir);
    cfg.password = password;
    cfg.platform = host_platform();
    cfg.ssh_addr = Some(args.ssh_addr.clone());
    cfg.max_upload = args.max_upload_bytes;
    cfg.extract_limits = buildlet_proto::tgz::ExtractLimits {
        max_bytes: args.max_extract_bytes,
        max_entries: args.max_extract_entries,
    };
    cfg.on_halt = Some(Arc::new(move || {
        let _ = tx.send(true);
    }));
    let halted = {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|h| *h).await;
        }
    };
    let stop = async {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = halted => tracing::info!("halt requested"),
        }
    };

    if reverse {
        let key = builder_key_for(&args)?;
        let ca = match (&args.coordinator_ca, &args.coordinator_ca_pem) {
            (Some(p), _) => {
                Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
            }
            (None, Some(pem)) => Some(pem.as_bytes().to_vec()),
            (None, None) => None,
        };
        if ca.is_none() {
            eprintln!(
                "buildlet: WARNING: not verifying the coordinator's certificate (upstream's dev \
                 mode); pass --coordinator-ca with its CA (coordinator-data/tls/ca.pem) to verify it"
            );
        }
        match tokio::net::TcpListener::bind(&args.health_addr).await {
            Ok(health) => {
                tokio::spawn(async move {
                    let app = axum::Router::new()
                        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
                    let _ = axum::serve(health, app).await;
                });
            }
            // Health checks are for the host's supervisor; losing them must not keep a
            // second buildlet on the same host from working.
            Err(e) => eprintln!(
                "buildlet: WARNING: no /healthz: cannot listen on {}: {e}; pick a free \
                 address with --health-addr",
                args.health_addr
            ),
        }
        let rc = ReverseConfig {
            coordinator: args.coordinator.clone(),
            host_type: args.reverse_type.clone(),
            hostname: hostname(&args.hostname),
            key,
            tls: Some(tls_client_config(ca.as_deref())?),
            reconnect: args.reconnect,
            max_backoff: std::time::Duration::from_secs(60),
            mux: (!args.revdial_v2).then(revdial::MuxConfig::default),
        };
        eprintln!(
            "buildlet: reverse mode, host type {}, coordinator {}, workdir {}",
            rc.host_type,
            rc.coordinator,
            workdir.display()
        );
        buildlet_proto::reverse::run(rc, cfg, stop)
            .await
            .map_err(|e| match e {
                buildlet_proto::Error::Refused { .. } => anyhow::anyhow!(
                    "{e}\nThe refusal is permanent: check the host type (--reverse-type) and \
                     the builder key (--key-file, or `coordinator key HOST_TYPE`)."
                ),
                e => anyhow::anyhow!("{e}"),
            })?;
        if halt_after && !*rx.borrow() {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
        return Ok(());
    }

    let cert = meta("tls_cert")?;
    let key = meta("tls_key")?;
    let tls = match (cert, key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some(tls_acceptor(&c, &k)?),
        _ => bail!("META_tls_cert and META_tls_key must be set together"),
    };
    let listen = match args.listen.as_str() {
        "AUTO" if tls.is_some() => ":443".to_owned(),
        "AUTO" => "localhost:5936".to_owned(),
        other => other.to_owned(),
    };
    let listen = if listen.starts_with(':') {
        format!("0.0.0.0{listen}")
    } else {
        listen
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let local = listener.local_addr()?;
    if cfg.password.is_empty() && !local.ip().is_loopback() {
        eprintln!(
            "buildlet: WARNING: no password, and listening on {local}: anyone who reaches this \
             address can run commands here. Set META_password or --password-file."
        );
    }
    eprintln!(
        "buildlet: listening on {local} ({}), workdir {}",
        if tls.is_some() { "TLS" } else { "plain HTTP" },
        workdir.display()
    );
    match tls {
        Some(t) => serve_tls(listener, cfg, Some(t), stop).await?,
        None => serve(listener, cfg, stop).await?,
    }
    Ok(())
}

fn tls_acceptor(cert_pem: &str, key_pem: &str) -> Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("parsing META_tls_cert")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("parsing META_tls_key")?;
    let cfg = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS key pair")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}
