//! `yingji-hub`: see `yingji-hub --help`, docs/hub.toml and docs/rules.md.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use yingji_hub::config::{Args, Command, Config, ResourcesCommand, RulesCommand, TokenCommand, UserCommand};
use yingji_hub::rules::{self, RuleSet};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match &args.command {
        Some(Command::Rules { command }) => return rules_command(command),
        Some(Command::Token { command: TokenCommand::Create { role, name } }) => {
            return token_create(&args, role, name).await;
        }
        Some(Command::Resources { command }) => return resources_command(&args, command).await,
        Some(Command::User { command }) => return user_command(&args, command).await,
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

/// Reads a new password: the first line of standard input when that is not a terminal, else
/// twice from the terminal without echo.
fn read_password() -> Result<String, String> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ").map_err(|e| format!("reading the password: {e}"))?;
        let again = rpassword::prompt_password("again: ").map_err(|e| format!("reading the password: {e}"))?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password from standard input: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// `yingji-hub user add|list|remove`.
async fn user_command(args: &Args, command: &UserCommand) -> ExitCode {
    let fail = |code: u8, message: String| {
        eprintln!("yingji-hub user: {message}");
        ExitCode::from(code)
    };
    let config = match Config::resolve(args) {
        Ok(c) => c,
        Err(e) => return fail(2, format!("{e:#}")),
    };
    // Check what can be checked before asking for a password.
    let add = match command {
        UserCommand::Add { name, role } => {
            let role = match role.parse::<yingji_hub::auth::Role>() {
                Ok(r) => r,
                Err(e) => return fail(2, e),
            };
            if let Err(e) = yingji_hub::console::users::valid_name(name) {
                return fail(2, e.to_string());
            }
            let password = match read_password() {
                Ok(p) => p,
                Err(e) => return fail(2, e),
            };
            if let Err(e) = yingji_hub::console::users::valid_password(&password) {
                return fail(2, e.to_string());
            }
            Some((name.clone(), role, password))
        }
        _ => None,
    };
    let store = match yingji_hub::store::Store::connect(&config.db).await {
        Ok(s) => s,
        Err(e) => return fail(1, format!("{e} ({})", yingji_node::redact(&config.db))),
    };
    let who = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    let audit = |action: &'static str, target: String, detail: serde_json::Value| {
        let store = store.clone();
        let who = who.clone();
        async move {
            let entry = yingji_hub::store::NewAudit {
                who: &who,
                role: "admin",
                action,
                target: &target,
                remote: "cli",
                detail,
            };
            let _ = store.audit_one(&entry, chrono::Utc::now().timestamp_millis()).await;
        }
    };
    let code = match (command, add) {
        (UserCommand::Add { .. }, Some((name, role, password))) => {
            match yingji_hub::add_user(&store, &name, role, &password).await {
                Ok(()) => {
                    audit("user_add", name.clone(), serde_json::json!({"role": role.as_str()})).await;
                    println!("added {name} ({})", role.as_str());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, e.to_string()),
            }
        }
        (UserCommand::List, _) => match store.users().await {
            Ok(users) => {
                for u in users {
                    println!("{}\t{}", u.name, u.role);
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, e.to_string()),
        },
        (UserCommand::Remove { name }, _) => match store.remove_user(name).await {
            Ok(true) => {
                audit("user_remove", name.clone(), serde_json::json!({})).await;
                println!("removed {name}");
                ExitCode::SUCCESS
            }
            Ok(false) => fail(1, format!("no user {name:?}")),
            Err(e) => fail(1, e.to_string()),
        },
        (UserCommand::Add { .. }, None) => ExitCode::from(2),
    };
    store.close().await;
    code
}

async fn resources_command(args: &Args, command: &ResourcesCommand) -> ExitCode {
    use yingji_hub::resources::{self, Kind};
    let fail = |code: u8, message: String| {
        eprintln!("yingji-hub resources: {message}");
        ExitCode::from(code)
    };
    let config = match Config::resolve(args) {
        Ok(c) => c,
        Err(e) => return fail(2, format!("{e:#}")),
    };
    let (ResourcesCommand::Import { kind, .. } | ResourcesCommand::Export { kind, .. }) = command;
    let Some(kind) = Kind::parse(kind) else {
        return fail(2, format!("{kind:?}: teams, stockpiles, hazards or targets"));
    };
    let store = match yingji_hub::store::Store::connect(&config.db).await {
        Ok(s) => s,
        Err(e) => return fail(1, format!("{e} ({})", yingji_node::redact(&config.db))),
    };
    let code = match command {
        ResourcesCommand::Import { file, .. } => {
            let regions = match &config.regions {
                Some(p) => match yingji_node::regions::Regions::load(p) {
                    Ok(r) => r,
                    Err(e) => return fail(1, format!("{e:#}")),
                },
                None => Default::default(),
            };
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => return fail(1, format!("reading {}: {e}", file.display())),
            };
            let content_type = match file.extension().and_then(|e| e.to_str()) {
                Some("csv") => "text/csv",
                _ => "application/geo+json",
            };
            let locate = |lat: f64, lon: f64| {
                regions.locate(lat, lon).map(|d| yingji_hub::picture::province_of(&regions, &d.code))
            };
            match resources::parse(kind, content_type, &text, &locate) {
                Ok(records) => {
                    let actor = yingji_hub::dispatch::Actor {
                        who: std::env::var("USER").unwrap_or_else(|_| "operator".into()),
                        role: "admin".into(),
                        remote: "cli".into(),
                    };
                    match yingji_hub::http::import(&store, &records, &actor, kind).await {
                        Ok(n) => {
                            println!("imported {n} {}", kind.as_str());
                            ExitCode::SUCCESS
                        }
                        Err(e) => fail(1, e.to_string()),
                    }
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{}:{e}", file.display());
                    }
                    fail(1, format!("{} rows refused; nothing was imported", errors.len()))
                }
            }
        }
        ResourcesCommand::Export { format, .. } => {
            let items: Vec<serde_json::Value> = match kind {
                Kind::Teams => {
                    store.teams().await.map(|v| v.iter().map(|t| serde_json::to_value(t).unwrap_or_default()).collect())
                }
                Kind::Stockpiles => store
                    .stockpiles()
                    .await
                    .map(|v| v.iter().map(|t| serde_json::to_value(t).unwrap_or_default()).collect()),
                Kind::Hazards | Kind::Targets => store.places(kind).await,
            }
            .unwrap_or_default();
            match format.as_str() {
                "csv" => {
                    print!("{}", yingji_hub::http::to_csv(kind, &items));
                    ExitCode::SUCCESS
                }
                "geojson" => {
                    println!("{}", yingji_hub::http::to_geojson(&items));
                    ExitCode::SUCCESS
                }
                other => fail(2, format!("--format {other:?}: csv or geojson")),
            }
        }
    };
    store.close().await;
    code
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
