//! `coordinator`: the reference coordinator binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The reference coordinator of xbuild-rs.
///
/// Today it serves perf data: a perfdata-compatible benchmark store with its API and UI
/// under /perf, kept in SQLite in the data directory. Upload with Go's benchsave:
///
///   benchsave -server http://127.0.0.1:8880/perf old.txt new.txt
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP on the embedded defaults (no configuration needed).
    ///
    /// Example: coordinator serve --data-dir ./coordinator-data --listen 127.0.0.1:8880
    Serve {
        /// Where state is kept (perf.db); created if missing.
        #[arg(long, env = "COORDINATOR_DATA_DIR", default_value = "coordinator-data")]
        data_dir: PathBuf,
        /// Address to listen on; loopback by default.
        #[arg(long, env = "COORDINATOR_LISTEN", default_value = "127.0.0.1:8880")]
        listen: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { data_dir, listen } => {
            let app = coordinator_bin::app(&data_dir).await?;
            let listener = tokio::net::TcpListener::bind(listen).await?;
            tracing::info!(
                "serving on http://{}/ (perf data under /perf/, state in {})",
                listener.local_addr()?,
                data_dir.display()
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
    }
    Ok(())
}
