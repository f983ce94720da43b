//! `yingji-sim demo`: the whole system in one process, playing the typhoon drill.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tracing::warn;

use crate::cli::{DemoArgs, ack_within_s, print_summary};
use crate::drill::{self, DrillOptions};
use crate::platform::{EmbeddedSpec, Platform};
use crate::scenario::Scenario;

/// The demo's login for the console.
pub const DEMO_USER: &str = "demo";
/// The demo login's password (a demo only: the data directory is throwaway).
pub const DEMO_PASSWORD: &str = "yingji-demo";

/// The shipped scenarios, next to this crate's sources.
pub fn shipped(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios")).join(name)
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let path = args.scenario.clone().unwrap_or_else(|| shipped("typhoon.toml"));
    let scenario = Scenario::load(&path).with_context(|| {
        format!(
            "loading the demo scenario {} (run the demo from the source tree, or pass --scenario FILE)",
            path.display()
        )
    })?;
    anyhow::ensure!(args.speed.is_finite() && args.speed > 0.0, "--speed must be a positive number");
    let data_dir = args.data.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("yingji-demo-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S")))
    });
    if let Err(e) = std::net::TcpListener::bind(args.http) {
        anyhow::bail!(
            "cannot serve the console on {}: {e}. Is another demo or hub running? Stop it, or pass --http 127.0.0.1:PORT",
            args.http
        );
    }
    eprintln!("Starting the hub and {} nodes (data in {}) ...", scenario.nodes.len(), data_dir.display());
    let spec = EmbeddedSpec {
        mqtt: None,
        hub_db: None,
        data_dir: data_dir.clone(),
        hub_http: args.http,
        exercise_console: true,
        ack_within_s: ack_within_s(args.speed),
    };
    let platform = Platform::start_embedded(&scenario, &spec).await?;
    if let Some(store) = &platform.hub_store {
        // A demo run again on the same --data has its login already.
        match yingji_hub::console::add_user(store, DEMO_USER, yingji_hub::auth::Role::Officer, DEMO_PASSWORD).await {
            Ok(()) | Err(yingji_hub::console::users::UserError::Exists(_)) => {}
            Err(e) => return Err(e).context("creating the demo's console login"),
        }
    }
    print_banner(&platform, &scenario, args.http, &args);

    let options = DrillOptions {
        seed: args.seed,
        speed: args.speed,
        out: Some(data_dir.join("evaluation")),
        quiet: false,
        connections: 4,
        officer_delay: Duration::from_secs(8),
        settle: Duration::from_secs(180),
    };
    let stop = platform.stopping();
    let drill = async {
        match drill::run(&scenario, &platform, &options).await {
            Ok(e) => {
                print_summary(&e, options.out.as_deref());
                println!("The drill is over; the console stays up. Press Ctrl-C to stop.");
            }
            Err(e) => warn!(error = %format!("{e:#}"), "the drill stopped"),
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = drill => {}
        _ = shutdown_signal() => eprintln!("Stopping ..."),
        _ = stop.cancelled() => {}
    }
    platform.stop().await?;
    Ok(ExitCode::SUCCESS)
}

fn print_banner(platform: &Platform, scenario: &Scenario, http: SocketAddr, args: &DemoArgs) {
    println!();
    println!("  Yingji demo — {} (speed ×{}, seed {})", scenario.title, args.speed, args.seed);
    println!("  Console:   http://{http}/   login {DEMO_USER} / {DEMO_PASSWORD} (officer)");
    println!(
        "  API token: {} (admin; e.g. curl -H 'Authorization: Bearer …' {}/api/v1/incidents?exercise=true)",
        platform.token, platform.hub_url
    );
    for (node, broker) in &platform.brokers {
        let http = platform.node_http.get(node).map(|a| a.to_string()).unwrap_or_default();
        println!("  Node {node}: devices on mqtt://{}:{}, API http://{http}", broker.url.host, broker.url.port);
    }
    println!();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
