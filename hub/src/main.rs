//! `yingji-hub`: see `yingji-hub --help`, docs/hub.toml and docs/rules.md.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use yingji_hub::config::{Args, Command, Config, RulesCommand, TokenCommand};
use yingji_hub::rules::{self, RuleSet};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match &args.command {
        Some(Command::Rules { command }) => return rules_command(command),
        Some(Command::Token { command: TokenCommand::Create { role, name } }) => {
            return token_create(&args, role, name).await;
        }
        None => {}
    }
    let config = match Config::resolve(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("yingji-hub: {e:#}");
            return ExitCode::from(2);
        }
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{},rumqttd=warn", config.log)));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let hub = match yingji_hub::Hub::build(config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("yingji-hub: {e:#}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(http = %hub.http_addr(), "HTTP API listening");
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stop signal received");
        signal.cancel();
    });
    match hub.run_until_stopped(stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("stopped with an error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `yingji-hub token create --role ROLE`: the token alone on the last line.
async fn token_create(args: &Args, role: &str, name: &str) -> ExitCode {
    let role = match role.parse::<yingji_hub::auth::Role>() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("yingji-hub token create: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("yingji-hub: {e:#}");
            return ExitCode::from(2);
        }
    };
    let store = match yingji_hub::store::Store::connect(&config.db).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("yingji-hub token create: {e} ({})", yingji_node::redact(&config.db));
            return ExitCode::from(1);
        }
    };
    let token = yingji_hub::auth::new_token();
    let now = chrono::Utc::now().timestamp_millis();
    if let Err(e) = store.add_token(&yingji_hub::auth::hash(&token), role.as_str(), name, now).await {
        eprintln!("yingji-hub token create: {e}");
        return ExitCode::from(1);
    }
    store.close().await;
    eprintln!("created a {} token; it is shown once, only its hash is kept:", role.as_str());
    println!("{token}");
    ExitCode::SUCCESS
}

fn rules_command(command: &RulesCommand) -> ExitCode {
    match command {
        RulesCommand::Check { file } => match RuleSet::load(file) {
            Ok(set) => {
                for r in set.rules() {
                    println!("{:<40} level {}  scope {:?}", r.name, r.level, r.scope);
                }
                println!("{}: {} rules, all compile", file.display(), set.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        RulesCommand::Test { file, cases } => {
            let set = match RuleSet::load(file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(1);
                }
            };
            let text = match std::fs::read_to_string(cases) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("reading {}: {e}", cases.display());
                    return ExitCode::from(1);
                }
            };
            match rules::cases::run(&set, &text, &cases.display().to_string()) {
                Ok(report) => {
                    print!("{report}");
                    if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
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
