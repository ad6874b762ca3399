//! The command line of `ferrolb-test-apiserver`, in the library so that every binary built from
//! it (this package's and the lab's) behaves the same.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::server::{Server, ServerConfig};

/// Command line of the test API server.
#[derive(Debug, Parser)]
#[command(
    name = "ferrolb-test-apiserver",
    about = "In-memory Kubernetes API server for ferrolb's lab (plain HTTP)"
)]
pub struct Cli {
    /// Address to listen on (plain HTTP).
    #[arg(long, default_value = "0.0.0.0:6443")]
    pub listen: SocketAddr,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Load the objects from this file at start if it exists, and save them to it on SIGTERM
    /// or SIGINT.
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Changes kept per resource for watches from a resourceVersion (older ones get 410).
    #[arg(long, default_value_t = 20_000)]
    pub history_limit: usize,
    /// Seconds between BOOKMARK events on idle watches that allow them.
    #[arg(long, default_value_t = 30)]
    pub bookmark_interval_seconds: u64,
}

/// The whole program: logs, arguments, runtime, serving; a failure is printed on stderr and
/// gives a non-zero exit status.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let outcome = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrolb-test-apiserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the state, listens, writes the ready file, and serves until SIGTERM or SIGINT, then
/// saves the state file.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // Installed before the ready file exists, so a signal sent once it does is never missed.
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let config = ServerConfig {
        history_limit: cli.history_limit,
        bookmark_interval: Duration::from_secs(cli.bookmark_interval_seconds.max(1)),
        state_file: cli.state_file,
        ..ServerConfig::default()
    };
    // Loaded before listening: a bad state file stops the start before any client connects.
    let server = Server::new(config)?;
    let listener = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    if let Some(path) = &cli.ready_file {
        // Written under a temporary name and renamed, so a reader never sees half an address.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("writing the ready file {}", path.display()))?;
    }
    tracing::info!(%addr, "test API server listening (plain HTTP)");
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        }
    };
    server.serve_until(listener, stop).await?;
    Ok(())
}
