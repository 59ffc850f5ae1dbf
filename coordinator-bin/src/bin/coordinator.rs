//! `coordinator`: the reference coordinator binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use coordinator_bin::Coordinator;
use coordinator_bin::config::Config;

/// mimalloc keeps freed blocks for reuse; glibc's allocator returns them to the kernel
/// and faults them back in, which costs revdial's mux mode a quarter of its throughput
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The reference coordinator of xbuild-rs: watches git branches, builds every new commit on
/// buildlets, and shows the results.
///
/// With no configuration it builds the git checkout it is started in, with a quick built-in
/// builder on two local buildlets, and keeps everything in ./coordinator-data:
///
///   coordinator serve
///   open http://127.0.0.1:8880/          (the build grid; /status, /perf/, /metrics)
///
/// Writes need an API token (reads too, unless the listener is on loopback):
///
///   coordinator token create --name me --role admin      (prints the token once)
///   export TOKEN=xbt_…
///   curl -H "Authorization: Bearer $TOKEN" -d '{"source":"myrepo","rev":"main","builder":"local-quick"}' http://127.0.0.1:8880/api/builds
///   curl -H "Authorization: Bearer $TOKEN" -X POST http://127.0.0.1:8880/api/builds/B0123456789/retry
#[derive(Debug, Parser)]
#[command(version, about, long_about, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web UI and API, poll the sources and run builds.
    ///
    /// Everything is optional: without --config the checkout in the current directory is
    /// watched. `coordinator config` prints the effective configuration as TOML, a starting
    /// point for your own file; the format is documented in `coordinator_bin::config`.
    ///
    /// Example: coordinator serve --config farm.toml --listen 127.0.0.1:8880
    ///          coordinator serve --tls --one-port --listen 0.0.0.0:443   (HTTPS; reverse buildlets on the same port)
    #[command(verbatim_doc_comment)]
    Serve {
        /// A TOML configuration file.
        #[arg(long, env = "COORDINATOR_CONFIG")]
        config: Option<PathBuf>,
        /// Where builds, logs, perf data, snapshots and git mirrors are kept (overrides the file).
        #[arg(long, env = "COORDINATOR_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// HTTP address (overrides the file; default 127.0.0.1:8880).
        #[arg(long, env = "COORDINATOR_LISTEN")]
        listen: Option<SocketAddr>,
        /// Seconds between polls of the sources (overrides the file; default 15).
        #[arg(long)]
        poll_secs: Option<u64>,
        /// A named environment of the file (`[env.NAME]`: dev, staging, …) whose settings
        /// replace the top-level ones.
        #[arg(long, env = "COORDINATOR_ENV")]
        env: Option<String>,
        /// Serve HTTPS: with --tls-cert and --tls-key, or a self-signed certificate
        /// generated into DATA_DIR/tls/ (clients trust its ca.pem).
        #[arg(long)]
        tls: bool,
        /// A PEM certificate (chain) for --tls.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Upstream's one-port mode: reverse buildlets register on this listener (implies
        /// --tls; the separate reverse listener is not opened).
        #[arg(long)]
        one_port: bool,
    },
    /// Print the builder key a reverse buildlet of HOST_TYPE needs (its `--key-file`).
    ///
    /// Example: coordinator key host-linux-arm64-rev > ~/.gobuildkey-host-linux-arm64-rev
    #[command(verbatim_doc_comment)]
    Key {
        /// The host type.
        host_type: String,
        /// A TOML configuration file.
        #[arg(long, env = "COORDINATOR_CONFIG")]
        config: Option<PathBuf>,
        /// The data directory (overrides the file).
        #[arg(long, env = "COORDINATOR_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// A named environment of the file.
        #[arg(long, env = "COORDINATOR_ENV")]
        env: Option<String>,
    },
    /// Create, list or revoke API tokens (the data directory's database; works while the
    /// coordinator runs, and a revoked token is refused at once).
    ///
    /// Roles: viewer (pages and JSON), submitter (queue builds), gomote (interactive
    /// buildlets), perf-uploader (/perf/upload), admin (retry, cancel, poll, the audit
    /// log; implies all the others).
    ///
    /// Example: coordinator token create --name ci --role submitter --role perf-uploader
    ///          coordinator token list
    ///          coordinator token revoke ci
    #[command(verbatim_doc_comment)]
    Token {
        #[command(subcommand)]
        action: TokenAction,
        /// A TOML configuration file (for its data directory).
        #[arg(long, env = "COORDINATOR_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// The data directory (overrides the file).
        #[arg(long, env = "COORDINATOR_DATA_DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// A named environment of the file.
        #[arg(long, env = "COORDINATOR_ENV", global = true)]
        env: Option<String>,
    },
    /// Build again what failed, as upstream's retrybuilds: one build, every failed build of
    /// a builder, or every finished build of a revision (for each builder and revision
    /// only the newest build counts, so history is never queued twice). A client of a
    /// running coordinator's API; needs an admin token.
    ///
    /// Example: coordinator retry --builder linux-amd64 --dry-run
    ///          COORDINATOR_TOKEN=xbt_… coordinator retry --rev 1a2b3c4d
    ///          coordinator retry --build B0123456789 --url http://farm:8880 --token-file ~/.coordinator-token
    #[command(verbatim_doc_comment)]
    #[command(group(clap::ArgGroup::new("what").required(true).args(["build", "builder", "rev"])))]
    Retry {
        /// One build, by id.
        #[arg(long)]
        build: Option<String>,
        /// Every failed build of this builder.
        #[arg(long)]
        builder: Option<String>,
        /// Every finished build of this revision (a hash or a prefix of 4+ hex digits).
        #[arg(long)]
        rev: Option<String>,
        /// List what would be retried, and retry nothing.
        #[arg(long)]
        dry_run: bool,
        /// The coordinator's web address.
        #[arg(long, env = "COORDINATOR_URL", default_value = "http://127.0.0.1:8880")]
        url: String,
        /// An admin token (or --token-file).
        #[arg(long, env = "COORDINATOR_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A file holding the token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// For an https coordinator with its generated certificate: its `tls/ca.pem`
        /// (default: the system's roots).
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Build images for [pools.container] (see `coordinator image build --help`).
    Image {
        #[command(subcommand)]
        action: ImageAction,
    },
    /// Print the effective configuration (defaults filled in, an environment applied) as
    /// TOML, after checking it.
    ///
    /// Example: coordinator config > farm.toml   (then edit it and: coordinator serve --config farm.toml)
    ///          coordinator config --config farm.toml --env staging
    #[command(verbatim_doc_comment)]
    Config {
        /// A TOML configuration file.
        #[arg(long, env = "COORDINATOR_CONFIG")]
        config: Option<PathBuf>,
        /// A named environment of the file.
        #[arg(long, env = "COORDINATOR_ENV")]
        env: Option<String>,
    },
}

/// What `coordinator image` does.
#[derive(Debug, Subcommand)]
enum ImageAction {
    /// Build the buildlet image and load it into the engine (no registry, no Dockerfile).
    ///
    /// The image holds a statically linked buildlet and a static busybox (a shell and the
    /// usual tools): make the first with
    ///   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
    ///     --target x86_64-unknown-linux-gnu -p buildlet-proto --bin buildlet
    /// and install Debian's busybox-static for the second. Then:
    ///   coordinator image build --buildlet target/x86_64-unknown-linux-gnu/release/buildlet
    /// and name the tag as `image` of a [pools.container] host type.
    #[command(verbatim_doc_comment)]
    Build {
        /// The statically linked buildlet.
        #[arg(long)]
        buildlet: PathBuf,
        /// The static busybox.
        #[arg(long, default_value = pool::providers::container::image::DEFAULT_BUSYBOX)]
        busybox: PathBuf,
        /// The image's name and tag.
        #[arg(long, default_value = pool::providers::container::image::DEFAULT_TAG)]
        tag: String,
        /// The engine's API socket (Docker, or `podman system service`); default: $DOCKER_HOST
        /// if it names a Unix socket, else unix:///var/run/docker.sock.
        #[arg(long)]
        socket: Option<String>,
    },
}

/// What `coordinator token` does.
#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Make a token and print it (the only time it is shown; only its hash is kept).
    Create {
        /// A name for the token (who or what uses it): 1–64 of A-Z a-z 0-9 . _ -
        #[arg(long)]
        name: String,
        /// A role; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// List the tokens: name, id, roles, created, revoked.
    List,
    /// Revoke a token by name or id.
    Revoke {
        /// The token's name or id.
        name: String,
    },
}

/// The configuration: the file (or none), the environment, the defaults.
fn load(config: Option<PathBuf>, env: Option<&str>) -> anyhow::Result<Config> {
    let cfg = match &config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let cfg = cfg.for_env(env).map_err(|e| match &config {
        Some(path) => anyhow::anyhow!("{}: {e}", path.display()),
        None => anyhow::anyhow!("{e} (no --config given)"),
    })?;
    Ok(cfg.with_defaults(&std::env::current_dir()?))
}

/// [`load`], with `--data-dir` over the file's.
fn load_in(
    config: Option<PathBuf>,
    env: Option<&str>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Config> {
    let mut cfg = load(config, env)?;
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    Ok(cfg)
}

/// Checks a configuration, naming the file.
fn checked(cfg: Config, file: Option<&PathBuf>) -> anyhow::Result<Config> {
    cfg.check().map_err(|e| match file {
        Some(path) => anyhow::anyhow!("{}: {e}", path.display()),
        None => anyhow::anyhow!("{e}"),
    })?;
    Ok(cfg)
}

/// `coordinator token …` on the data directory's database.
async fn token(
    store: &coordinator_bin::store::SqliteStore,
    action: TokenAction,
) -> anyhow::Result<()> {
    use coordinator_bin::store::AccessStore;
    match action {
        TokenAction::Create { name, roles } => {
            let t = coordinator_bin::auth::token::create(store, &name, &roles).await?;
            eprintln!("token {name:?} created; it is shown only now:");
            println!("{t}");
        }
        TokenAction::List => {
            let tokens = store.tokens().await?;
            if tokens.is_empty() {
                eprintln!("no tokens; make one: coordinator token create --name NAME --role ROLE");
            }
            for t in tokens {
                println!(
                    "{:<24} {}  {:<40} created {}{}",
                    t.name,
                    t.id,
                    t.roles.join(","),
                    t.created,
                    t.revoked
                        .map(|r| format!("  REVOKED {r}"))
                        .unwrap_or_default()
                );
            }
        }
        TokenAction::Revoke { name } => {
            if !store.revoke_token(&name).await? {
                anyhow::bail!(
                    "no token named {name:?} (or with that id) that is not already revoked; see `coordinator token list`"
                );
            }
            eprintln!("token {name:?} revoked: it is refused from now on");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // As Go's runtime does: every connection is a descriptor, and the soft limit (often
    // 1024) is far below what the hard limit allows.
    if let Err(e) = netguard::raise_nofile_limit() {
        tracing::warn!("could not raise the open-file limit: {e}");
    }
    match Cli::parse().command {
        Command::Key {
            host_type,
            config,
            data_dir,
            env,
        } => {
            let cfg = load_in(config, env.as_deref(), data_dir)?;
            let path = Coordinator::master_key_path(&cfg);
            // Creating a key here would print a key no coordinator uses: a reverse
            // buildlet given it would be refused with 412 and nobody would know why.
            if !path.exists() {
                anyhow::bail!(
                    "no master key at {}: the coordinator creates it when it first starts. \
                     Run this where `coordinator serve` runs, or point --data-dir (or \
                     --config) at its data directory.",
                    path.display()
                );
            }
            let master = coordinator_bin::tls::master_key(&path)?;
            println!(
                "{}",
                dashboard_types::keys::builder_key(&master, &host_type)
            );
        }
        Command::Token {
            action,
            config,
            data_dir,
            env,
        } => {
            let cfg = load_in(config, env.as_deref(), data_dir)?;
            std::fs::create_dir_all(&cfg.data_dir)?;
            let db = cfg.data_dir.join(coordinator_bin::app::BUILDS_DB);
            let store = coordinator_bin::store::SqliteStore::open(&db)?;
            token(&store, action).await?;
        }
        Command::Retry {
            build,
            builder,
            rev,
            dry_run,
            url,
            token,
            token_file,
            ca,
        } => {
            use coordinator_bin::retrybuilds::{ApiClient, Selection};
            let token = match (token, token_file) {
                (Some(t), _) => t,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .map_err(|e| anyhow::anyhow!("--token-file {}: {e}", f.display()))?,
                (None, None) => anyhow::bail!(
                    "retrying needs an admin token: --token, --token-file or COORDINATOR_TOKEN \
                     (make one with `coordinator token create --name me --role admin`)"
                ),
            };
            let sel = match (build, builder, rev) {
                (Some(b), _, _) => Selection::Build(b),
                (_, Some(b), _) => Selection::FailedOf(b),
                (_, _, Some(r)) => Selection::Revision(r),
                _ => unreachable!("clap requires one"),
            };
            let api = ApiClient::new(&url, &token, ca.as_deref())?;
            let builds = api.select(&sel).await?;
            if builds.is_empty() {
                eprintln!("nothing to retry");
            }
            for b in &builds {
                let what = format!(
                    "{} at {} ({})",
                    b.builder,
                    &b.rev[..b.rev.len().min(10)],
                    b.state
                );
                if dry_run {
                    println!("would retry {} {what}", b.id);
                } else {
                    let new = api.retry(b).await?;
                    println!("retried {} {what}: now {new}", b.id);
                }
            }
            if dry_run && !builds.is_empty() {
                eprintln!(
                    "{} build(s) would be retried; run again without --dry-run",
                    builds.len()
                );
            }
        }
        Command::Image {
            action:
                ImageAction::Build {
                    buildlet,
                    busybox,
                    tag,
                    socket,
                },
        } => {
            use pool::providers::container::{ContainerBackend, default_socket, image};
            let socket = socket.unwrap_or_else(default_socket);
            let engine = ContainerBackend::connect(&socket, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let spec = image::ImageSpec {
                tag: tag.clone(),
                buildlet,
                busybox,
            };
            let size = image::build(engine.docker(), &spec)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "built {tag} ({:.1} MB) in the engine at {socket}",
                size as f64 / 1e6
            );
        }
        Command::Config { config, env } => {
            let cfg = checked(load(config.clone(), env.as_deref())?, config.as_ref())?;
            print!("{}", toml::to_string(&cfg)?);
        }
        Command::Serve {
            config,
            data_dir,
            listen,
            poll_secs,
            env,
            tls,
            tls_cert,
            tls_key,
            one_port,
        } => {
            let file = config.clone();
            let mut cfg = load_in(config, env.as_deref(), data_dir)?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(p) = poll_secs {
                cfg.poll_secs = p;
            }
            cfg.tls.enabled |= tls || one_port || tls_cert.is_some();
            cfg.tls.one_port |= one_port;
            if tls_cert.is_some() {
                (cfg.tls.cert, cfg.tls.key) = (tls_cert, tls_key);
            }
            if cfg.sources.is_empty() {
                tracing::warn!(
                    "no work sources: not in a git checkout and none configured; builds come only from the API"
                );
            }
            let listen = cfg.listen;
            let data_dir = cfg.data_dir.clone();
            // open() checks the configuration; its mistakes are the file's.
            let c = Coordinator::open(cfg)
                .await
                .map_err(|e| match (&e, &file) {
                    (coordinator_bin::Error::Config(_), Some(path)) => {
                        anyhow::anyhow!("{}: {e}", path.display())
                    }
                    _ => anyhow::Error::from(e),
                })?;
            if c.access.tokens().await?.iter().all(|t| t.revoked.is_some()) {
                tracing::warn!(
                    "no API tokens yet: every write answers 401; make one with `coordinator token create --name me --role admin`"
                );
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("listening on {listen}: {e}"))?;
            // Two plain lines on stdout, for people and for scripts that start it on port 0.
            let web = listener.local_addr()?;
            let scheme = if c.web_tls.is_some() { "https" } else { "http" };
            match (c.reverse_addr, &c.one_port) {
                (Some(r), _) => println!("reverse buildlets: {r} (TLS)"),
                (None, Some(_)) => println!("reverse buildlets: {web} (TLS, the web port)"),
                (None, None) => {}
            }
            println!("serving {scheme}://{web}/");
            tracing::info!(
                "serving on {scheme}://{web}/ (grid at /, status at /status, perf data at /perf/; state in {})",
                data_dir.display()
            );
            c.run(listener, coordinator_bin::shutdown::signal()).await;
        }
    }
    Ok(())
}
