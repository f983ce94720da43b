//! The command line of `yingji-sim`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use yingji_node::config::MqttUrl;

use crate::drill::{self, DrillOptions};
use crate::platform::{EmbeddedSpec, FieldBroker, Platform};
use crate::scenario::Scenario;

/// Drills with ground truth against a Yingji platform, and the one-command demo.
///
/// `yingji-sim demo` starts everything in this process (an in-process MQTT broker per node and
/// one for the hub, the hub with SQLite, three nodes) and plays the typhoon drill at a watchable
/// speed: open the console it prints. `yingji-sim drill SCENARIO` plays a scenario to its end
/// against a running platform, or one it starts (`--platform embedded`), writes the after-action
/// evaluation and exits non-zero when the platform's statistics differ from the truth.
#[derive(Debug, Parser)]
#[command(name = "yingji-sim", version, max_term_width = 100)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,

    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `yingji_simulator=debug`.
    #[arg(long, global = true, env = "YINGJI_SIM_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a broker, the hub, three nodes and the typhoon drill in this process, and keep
    /// serving the console until stopped (Ctrl-C).
    Demo(DemoArgs),
    /// Play a scenario to its end and write the after-action evaluation.
    Drill(DrillArgs),
    /// Write the sample geography (GeoJSON divisions with code, name and parent).
    Geography {
        /// The generator's seed (the shipped files use 7).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Where to write the GeoJSON.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a scenario file and print what it holds.
    Check {
        /// The scenario (TOML).
        scenario: PathBuf,
        /// The seed to build the world with.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the console and the hub's API listen.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub http: SocketAddr,
    /// The scenario to play (default: the shipped typhoon).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Scenario seconds per wall second.
    #[arg(long, default_value_t = 30.0)]
    pub speed: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the databases and the evaluation go (default: a fresh directory under the system's
    /// temporary directory).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    /// The scenario (TOML; see docs/scenarios.md).
    pub scenario: PathBuf,
    /// `embedded`: start the hub and the scenario's nodes in this process first (on in-process
    /// brokers, or all on the broker --mqtt names, each node under `n/<node>/`); `external`:
    /// drive a platform that is already running (--hub, and --mqtt or --node-broker).
    #[arg(long, default_value = "external", value_parser = ["embedded", "external"])]
    pub platform: String,
    /// The MQTT broker: with --platform embedded, the one broker for the hub and every node;
    /// with external, the shared field broker whose nodes run with --field-mount n/<node>/.
    #[arg(long, env = "YINGJI_SIM_MQTT", value_name = "URL")]
    pub mqtt: Option<String>,
    /// A node on a field broker of its own: NODE=mqtt://HOST:PORT (repeatable; external).
    #[arg(long = "node-broker", value_name = "NODE=URL")]
    pub node_brokers: Vec<String>,
    /// The hub's base URL (external), e.g. http://127.0.0.1:8080.
    #[arg(long, env = "YINGJI_SIM_HUB", value_name = "URL")]
    pub hub: Option<String>,
    /// An admin token for the hub's API (external): `yingji-hub token create --role admin`.
    #[arg(long, env = "YINGJI_SIM_HUB_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub hub_token: Option<String>,
    /// The embedded hub's database (default: SQLite in the data directory), e.g. postgres://...
    #[arg(long, env = "YINGJI_SIM_HUB_DB", value_name = "URL")]
    pub hub_db: Option<String>,
    /// Makes the drill deterministic: the same seed gives the same messages.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Scenario seconds per wall second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Where evaluation.json and report.html go (and, embedded, the databases).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// MQTT connections per node for the fleet.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// How long to wait, after the last message, for the platform to settle, in seconds.
    #[arg(long, default_value_t = 120)]
    pub settle_s: u64,
}

/// Sets up logging: warnings and the simulator's own progress by default.
pub fn init_logging(args: &Args) {
    let default = match args.command {
        Command::Demo(_) => "warn,yingji_simulator=info,rumqttd=off",
        _ => "warn,yingji_simulator=info,rumqttd=off",
    };
    let filter = tracing_subscriber::EnvFilter::try_new(args.log.as_deref().unwrap_or(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Runs a command; the exit code says how it went.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Geography { seed, out } => {
            let collection = crate::geography::generate(seed, &crate::geography::GeoSpec::sample());
            let text = serde_json::to_string(&collection)?;
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} divisions to {}", collection.features.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { scenario, seed } => {
            let loaded = Scenario::load(&scenario)?;
            let world = crate::model::World::new(&loaded, seed)?;
            println!(
                "{}: {} — {} nodes, {} stations, {} teams, {} scenario seconds",
                loaded.name,
                loaded.title,
                loaded.nodes.len(),
                world.stations(),
                world.teams().len(),
                world.duration_ms() / 1000
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Drill(d) => drill_command(d).await,
        Command::Demo(d) => crate::demo::run(d).await,
    }
}

async fn drill_command(args: DrillArgs) -> anyhow::Result<ExitCode> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!("--speed {}: a positive number of scenario seconds per second", args.speed);
    }
    let scenario = Scenario::load(&args.scenario)?;
    let mqtt = args.mqtt.as_deref().map(MqttUrl::parse).transpose()?;
    let options = DrillOptions {
        seed: args.seed,
        speed: args.speed,
        out: args.out.clone(),
        quiet: args.quiet,
        connections: args.connections.max(1),
        settle: Duration::from_secs(args.settle_s),
        ..DrillOptions::default()
    };
    let platform = match args.platform.as_str() {
        "embedded" => {
            let data_dir = match &args.out {
                Some(out) => out.join("data"),
                None => std::env::temp_dir().join(format!("yingji-sim-{}", std::process::id())),
            };
            let spec = EmbeddedSpec {
                mqtt,
                hub_db: args.hub_db.clone(),
                data_dir,
                hub_http: SocketAddr::from(([127, 0, 0, 1], 0)),
                exercise_console: true,
                ack_within_s: ack_within_s(args.speed),
            };
            Platform::start_embedded(&scenario, &spec).await?
        }
        _ => {
            let hub = args.hub.as_deref().context("--platform external needs --hub URL (or --platform embedded)")?;
            let token = args.hub_token.as_deref().context("--platform external needs --hub-token (an admin token)")?;
            let mut brokers = BTreeMap::new();
            for spec in &args.node_brokers {
                let (node, url) = spec.split_once('=').with_context(|| format!("--node-broker {spec:?}: NODE=URL"))?;
                brokers.insert(node.to_owned(), FieldBroker { url: MqttUrl::parse(url)?, mount: String::new() });
            }
            for node in &scenario.nodes {
                if brokers.contains_key(&node.id) {
                    continue;
                }
                let url = mqtt.clone().with_context(|| {
                    format!(
                        "node {:?} has no broker: pass --mqtt URL (shared) or --node-broker {}=URL",
                        node.id, node.id
                    )
                })?;
                brokers.insert(node.id.clone(), FieldBroker { url, mount: format!("n/{}/", node.id) });
            }
            let platform = Platform::external(hub, token, brokers);
            platform.load_resources(&scenario).await?;
            platform
        }
    };
    let result = drill::run(&scenario, &platform, &options).await;
    let stopped = platform.stop().await;
    let evaluation = result?;
    stopped?;
    print_summary(&evaluation, args.out.as_deref());
    Ok(if evaluation.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The hub's `ack_within_s` for a drill at `speed`: ten scenario minutes, at least 5 s.
pub fn ack_within_s(speed: f64) -> i64 {
    ((600.0 / speed.max(1e-3)).round() as i64).max(5)
}

/// A few lines for the terminal.
pub fn print_summary(e: &crate::eval::Evaluation, out: Option<&std::path::Path>) {
    let s = &e.statistics;
    println!(
        "{}: statistics {} ({} divisions, {} mismatches); warnings {}/{} raised, {} missed; orders {} issued, {} acknowledged, {} declined, {} overdue, {} escalated; report latency p50 {} ms p99 {} ms",
        e.scenario,
        if e.passed { "MATCH" } else { "DIFFER" },
        s.divisions,
        s.mismatches.len(),
        e.warnings.raised,
        e.warnings.expected,
        e.warnings.missed.len(),
        e.orders.issued,
        e.orders.acknowledged,
        e.orders.declined,
        e.orders.overdue,
        e.orders.escalated,
        e.report_latency_ms.p50.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into()),
        e.report_latency_ms.p99.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into()),
    );
    for m in s.mismatches.iter().take(20) {
        println!("  {} {} {}: truth {:?}, hub {:?}", m.incident, m.division, m.indicator, m.expected, m.got);
    }
    if let Some(dir) = out {
        println!(
            "evaluation: {}  report: {}",
            dir.join("evaluation.json").display(),
            dir.join("report.html").display()
        );
    }
}
