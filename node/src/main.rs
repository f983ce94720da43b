//! `yingji-node`: see `yingji-node --help` and docs/node.toml.

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use yingji_node::config::{Args, Config};

/// mimalloc rather than the system allocator: ingest allocates and frees millions of small
/// strings a second, and glibc's malloc spent a fifth of the node's time on them and on zeroing
/// pages it had given back (BENCHMARKS.md, node ingest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = match Config::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("yingji-node: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{},rumqttd=warn", config.log)));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let node = match yingji_node::Node::build(config).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("yingji-node: {e:#}");
            return std::process::ExitCode::from(1);
        }
    };
    tracing::info!(http = %node.http_addr(), "HTTP API listening");
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stop signal received");
        signal.cancel();
    });
    match node.run_until_stopped(stop).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("stopped with an error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
