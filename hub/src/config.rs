//! The hub's configuration: flags, environment (`YINGJI_HUB_*`) and an optional TOML file, in
//! that order of precedence. Every field is documented here and in `docs/hub.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde::Deserialize;
use yingji_node::config::{Broker, Credentials, MqttUrl};

/// yingji-hub: the central hub of the Yingji emergency platform.
///
/// It takes in the summarized events the nodes send (yingji/v1/node/+/event), commits each once
/// by its id and answers with a receipt; keeps the national picture (incidents, statistics
/// rolled up to provinces and the nation, warnings, node and station health); judges risk with
/// the rules file and records every change of a response level with its explanation; publishes
/// warnings and assessments as CAP 1.2; and serves the JSON API.
///
/// With no --mqtt it starts an embedded MQTT broker on 127.0.0.1:1883; with no --db it keeps its
/// data in ./yingji-hub.db (SQLite, created if missing).
///
/// Every option can also be set in the file named by --config (TOML; see docs/hub.toml) or in
/// the environment variable shown with it. Flags win over the environment, which wins over the
/// file.
#[derive(Debug, Parser, Default)]
#[command(name = "yingji-hub", version, about, long_about, max_term_width = 100)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// A TOML file with any of the options below (names with `_`, e.g. `mqtt_username`).
    #[arg(long, env = "YINGJI_HUB_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// The hub's id: names its MQTT client (`yingji-hub-<ID>`) and is the CAP sender.
    #[arg(long, env = "YINGJI_HUB_ID", value_name = "ID")]
    pub id: Option<String>,

    /// The hub broker: mqtt://HOST:PORT or mqtts://HOST:PORT. Absent: start an embedded broker.
    #[arg(long, env = "YINGJI_HUB_MQTT", value_name = "URL")]
    pub mqtt: Option<String>,

    /// A PEM file of CA certificates to trust for mqtts:// (default: the system's roots).
    #[arg(long, env = "YINGJI_HUB_MQTT_CA", value_name = "FILE")]
    pub mqtt_ca: Option<PathBuf>,

    /// The MQTT user name of the hub.
    #[arg(long, env = "YINGJI_HUB_MQTT_USERNAME", value_name = "NAME")]
    pub mqtt_username: Option<String>,

    /// A file whose first line is the MQTT password (or set YINGJI_HUB_MQTT_PASSWORD; never a
    /// flag, never logged).
    #[arg(long, env = "YINGJI_HUB_MQTT_PASSWORD_FILE", value_name = "FILE")]
    pub mqtt_password_file: Option<PathBuf>,

    /// Where the embedded broker listens when no --mqtt is given.
    #[arg(long, env = "YINGJI_HUB_EMBEDDED_BROKER", value_name = "ADDR")]
    pub embedded_broker: Option<SocketAddr>,

    /// Take events through the MQTT shared subscription $share/GROUP/yingji/v1/node/+/event, so
    /// that several hub processes (on one PostgreSQL database) share the load.
    #[arg(long, env = "YINGJI_HUB_SHARED_GROUP", value_name = "GROUP")]
    pub shared_group: Option<String>,

    /// The database: sqlite://PATH or postgres://USER@HOST/DB. Default: sqlite://./yingji-hub.db
    #[arg(long, env = "YINGJI_HUB_DB", value_name = "URL", global = true)]
    pub db: Option<String>,

    /// Division polygons (GeoJSON; properties `code`, `name`, `parent`), the same file the nodes
    /// use, covering every node's divisions. Used for roll-up, CAP areas, dispatch destinations
    /// and neighbouring provinces.
    #[arg(long, env = "YINGJI_HUB_REGIONS", value_name = "FILE", global = true)]
    pub regions: Option<PathBuf>,

    /// The risk rules (TOML; see docs/rules.md). Default: the shipped rules. The file is
    /// reloaded when it changes; a broken file is refused and the old rules stay in force.
    #[arg(long, env = "YINGJI_HUB_RULES", value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// How often the rules file is checked for changes, in milliseconds.
    #[arg(long, env = "YINGJI_HUB_RULES_POLL_MS", value_name = "MS")]
    pub rules_poll_ms: Option<u64>,

    /// The HTTP API, /healthz and /metrics listen here.
    #[arg(long, env = "YINGJI_HUB_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,

    /// The most events committed in one transaction.
    #[arg(long, env = "YINGJI_HUB_BATCH_MAX", value_name = "N")]
    pub batch_max: Option<usize>,

    /// The most QoS 1 messages the broker sends the hub before it acknowledges them.
    #[arg(long, env = "YINGJI_HUB_MQTT_INFLIGHT", value_name = "N")]
    pub mqtt_inflight: Option<u16>,

    /// The longest wait between reconnection attempts, in seconds.
    #[arg(long, env = "YINGJI_HUB_RECONNECT_MAX_S", value_name = "S")]
    pub reconnect_max_s: Option<u64>,

    /// The CAP sender (an address or URI naming this hub). Default: yingji-hub@<ID>.
    #[arg(long, env = "YINGJI_HUB_CAP_SENDER", value_name = "SENDER")]
    pub cap_sender: Option<String>,

    /// The three-digit sector code of CAP identifiers (GB/T 35965.1). Default: 000.
    #[arg(long, env = "YINGJI_HUB_CAP_SECTOR", value_name = "DDD")]
    pub cap_sector: Option<String>,

    /// Seconds a team has to receive and accept an order before it is resent (once) and then
    /// escalated to the next best team.
    #[arg(long, env = "YINGJI_HUB_ACK_WITHIN_S", value_name = "S")]
    pub ack_within_s: Option<i64>,

    /// Mark the console's session cookie `Secure` (send it over HTTPS only): set this when the
    /// hub is behind a TLS-terminating proxy. Default: false.
    #[arg(long, env = "YINGJI_HUB_CONSOLE_SECURE_COOKIE", value_name = "BOOL")]
    pub console_secure_cookie: Option<bool>,

    /// How long a console login lasts, in seconds (then the officer logs in again).
    #[arg(long, env = "YINGJI_HUB_SESSION_TTL_S", value_name = "S")]
    pub session_ttl_s: Option<u64>,

    /// What the console shows until the officer switches: `real` data or `exercise` (drill)
    /// data. Default: real.
    #[arg(long, env = "YINGJI_HUB_CONSOLE_DEFAULT_MODE", value_name = "MODE")]
    pub console_default_mode: Option<String>,

    /// Background map tiles from a tile server on the operator's own network, e.g.
    /// `http://tiles.local/{z}/{x}/{y}.png`. Absent: the map references nothing outside the hub.
    #[arg(long, env = "YINGJI_HUB_CONSOLE_TILES_URL", value_name = "URL")]
    pub console_tiles_url: Option<String>,

    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `yingji_hub=debug`.
    #[arg(long, env = "YINGJI_HUB_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Console users (log in at the hub's address with a browser).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Check and test a rules file before deploying it.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Import and export the resource databases (teams, stockpiles, hazards, targets).
    Resources {
        #[command(subcommand)]
        command: ResourcesCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResourcesCommand {
    /// Imports a CSV or GeoJSON file (by its extension): every row, or nothing and an error per
    /// bad row (line, field, reason). Rows with a known id are updated.
    Import {
        /// teams, stockpiles, hazards or targets.
        kind: String,
        /// The file (.csv, .geojson or .json).
        file: PathBuf,
    },
    /// Writes a resource database to standard output.
    Export {
        /// teams, stockpiles, hazards or targets.
        kind: String,
        /// csv or geojson.
        #[arg(long, default_value = "csv")]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates a console user. The password is read from standard input when that is not a
    /// terminal (its first line), else asked for twice without echo. At least 8 characters.
    Add {
        /// The login name (letters, digits, `_ . @ -`; at most 64).
        name: String,
        /// viewer (reads), officer (approves and issues orders), commander (also changes levels
        /// and rules in force), admin (also users and resources).
        #[arg(long, value_name = "ROLE")]
        role: String,
    },
    /// Lists the console users and their roles.
    List,
    /// Removes a console user and ends their sessions.
    Remove {
        /// The login name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Creates a token and prints it alone on the last line (it is shown once; only its hash is
    /// kept).
    Create {
        /// viewer (reads), officer (approves and issues orders), commander (also levels and
        /// rules), admin (users, resources, tokens).
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// A note saying whose token this is.
        #[arg(long, value_name = "NAME", default_value = "")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Parses and compiles a rules file; prints its rules, or the error with line and column.
    Check {
        /// The rules file.
        file: PathBuf,
    },
    /// Runs a rules file against a file of cases (docs/rules.md); exits 1 if any case fails.
    Test {
        /// The rules file.
        file: PathBuf,
        /// The cases file.
        cases: PathBuf,
    },
}

/// The resolved configuration the hub runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub broker: Broker,
    pub mqtt_ca: Option<PathBuf>,
    pub credentials: Option<Credentials>,
    pub shared_group: Option<String>,
    pub db: String,
    pub regions: Option<PathBuf>,
    pub rules: Option<PathBuf>,
    pub rules_poll: Duration,
    pub http: SocketAddr,
    pub batch_max: usize,
    pub mqtt_inflight: u16,
    pub reconnect_max: Duration,
    pub cap_sender: String,
    pub cap_sector: String,
    pub ack_within_s: i64,
    pub console: ConsoleConfig,
    pub log: String,
}

/// Which data the console shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsoleMode {
    /// Real incidents only.
    #[default]
    Real,
    /// Drill (exercise) data only, under an exercise banner.
    Exercise,
}

impl ConsoleMode {
    pub fn parse(text: &str) -> Option<ConsoleMode> {
        match text {
            "real" => Some(ConsoleMode::Real),
            "exercise" => Some(ConsoleMode::Exercise),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleMode::Real => "real",
            ConsoleMode::Exercise => "exercise",
        }
    }
    pub fn exercise(self) -> bool {
        self == ConsoleMode::Exercise
    }
}

/// The console's settings.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The session cookie is `Secure` (the hub is reached over HTTPS).
    pub secure_cookie: bool,
    /// Seconds a login lasts.
    pub session_ttl_s: u64,
    pub default_mode: ConsoleMode,
    /// A tile URL template with `{z}`, `{x}` and `{y}`, on the operator's own network.
    pub tiles_url: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> ConsoleConfig {
        ConsoleConfig {
            secure_cookie: false,
            session_ttl_s: 8 * 3600,
            default_mode: ConsoleMode::Real,
            tiles_url: None,
        }
    }
}

impl ConsoleConfig {
    /// The origin (`scheme://host[:port]`) of the tile server, for the Content-Security-Policy.
    pub fn tiles_origin(&self) -> Option<String> {
        self.tiles_url.as_deref().and_then(|u| tiles_origin(u).ok())
    }
}

/// The origin of a tile URL template, or why the template is refused.
pub fn tiles_origin(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .map(|r| ("http://", r))
        .or_else(|| url.strip_prefix("https://").map(|r| ("https://", r)));
    let Some((scheme, rest)) = rest else {
        return Err("a tile URL starts with http:// or https://".into());
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | ',' | '\'' | '"' | '<' | '>')) {
        return Err("a tile URL holds no spaces, quotes, ';', ',', '<' or '>'".into());
    }
    for part in ["{z}", "{x}", "{y}"] {
        if !url.contains(part) {
            return Err(format!("a tile URL has {{z}}, {{x}} and {{y}}; {part} is missing"));
        }
    }
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains(['{', '}', '@', '?', '#']) {
        return Err("a tile URL names its server (host[:port]) before the first '/'".into());
    }
    Ok(format!("{scheme}{host}"))
}

/// The embedded broker's default address.
pub const DEFAULT_EMBEDDED_BROKER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1883);
/// The HTTP API's default address.
pub const DEFAULT_HTTP: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// The config file: the same options as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub id: Option<String>,
    pub mqtt: Option<String>,
    pub mqtt_ca: Option<PathBuf>,
    pub mqtt_username: Option<String>,
    pub mqtt_password_file: Option<PathBuf>,
    pub embedded_broker: Option<SocketAddr>,
    pub shared_group: Option<String>,
    pub db: Option<String>,
    pub regions: Option<PathBuf>,
    pub rules: Option<PathBuf>,
    pub rules_poll_ms: Option<u64>,
    pub http: Option<SocketAddr>,
    pub batch_max: Option<usize>,
    pub mqtt_inflight: Option<u16>,
    pub reconnect_max_s: Option<u64>,
    pub cap_sender: Option<String>,
    pub cap_sector: Option<String>,
    pub ack_within_s: Option<i64>,
    pub console_secure_cookie: Option<bool>,
    pub session_ttl_s: Option<u64>,
    pub console_default_mode: Option<String>,
    pub console_tiles_url: Option<String>,
    pub log: Option<String>,
}

impl Config {
    /// Resolves flags and environment (already in `args`) over the file named by `--config`.
    pub fn resolve(args: &Args) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let id = args.id.clone().or(file.id).unwrap_or_else(|| "hub".to_owned());
        yingji_proto::topic::valid_device_id(&id).map_err(|e| anyhow::anyhow!("--id: {}", e.reason))?;
        let broker = match args.mqtt.clone().or(file.mqtt) {
            Some(url) => Broker::External(MqttUrl::parse(&url)?),
            None => Broker::Embedded(args.embedded_broker.or(file.embedded_broker).unwrap_or(DEFAULT_EMBEDDED_BROKER)),
        };
        let username = args.mqtt_username.clone().or(file.mqtt_username);
        let password = match (
            args.mqtt_password_file.clone().or(file.mqtt_password_file),
            std::env::var("YINGJI_HUB_MQTT_PASSWORD").ok(),
        ) {
            (Some(path), _) => Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the MQTT password file {}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            (None, env) => env,
        };
        let credentials = match (username, password) {
            (Some(username), password) => Some(Credentials { username, password: password.unwrap_or_default() }),
            (None, Some(_)) => bail!("an MQTT password was given without --mqtt-username"),
            (None, None) => None,
        };
        let shared_group = args.shared_group.clone().or(file.shared_group);
        if let Some(g) = &shared_group
            && (g.is_empty() || g.contains(['/', '+', '#']))
        {
            bail!("--shared-group {g:?}: a group name must be non-empty and hold no '/', '+' or '#'");
        }
        let cap_sector = args.cap_sector.clone().or(file.cap_sector).unwrap_or_else(|| "000".to_owned());
        if cap_sector.len() != 3 || !cap_sector.bytes().all(|b| b.is_ascii_digit()) {
            bail!("--cap-sector {cap_sector:?}: the sector code is three digits (GB/T 35965.1)");
        }
        let batch_max = args.batch_max.or(file.batch_max).unwrap_or(2000);
        if batch_max == 0 {
            bail!("--batch-max must be at least 1");
        }
        let default_mode = match args.console_default_mode.clone().or(file.console_default_mode) {
            Some(m) => ConsoleMode::parse(&m)
                .ok_or_else(|| anyhow::anyhow!("--console-default-mode {m:?}: real or exercise"))?,
            None => ConsoleMode::Real,
        };
        let tiles_url = args.console_tiles_url.clone().or(file.console_tiles_url).filter(|u| !u.is_empty());
        if let Some(u) = &tiles_url {
            tiles_origin(u).map_err(|e| anyhow::anyhow!("--console-tiles-url {u:?}: {e}"))?;
        }
        let session_ttl_s = args.session_ttl_s.or(file.session_ttl_s).unwrap_or(8 * 3600);
        if !(60..=30 * 86_400).contains(&session_ttl_s) {
            bail!("--session-ttl-s {session_ttl_s}: between 60 s and 30 days");
        }
        let console = ConsoleConfig {
            secure_cookie: args.console_secure_cookie.or(file.console_secure_cookie).unwrap_or(false),
            session_ttl_s,
            default_mode,
            tiles_url,
        };
        Ok(Config {
            console,
            cap_sender: args.cap_sender.clone().or(file.cap_sender).unwrap_or_else(|| format!("yingji-hub@{id}")),
            id,
            broker,
            mqtt_ca: args.mqtt_ca.clone().or(file.mqtt_ca),
            credentials,
            shared_group,
            db: args.db.clone().or(file.db).unwrap_or_else(|| "sqlite://./yingji-hub.db".to_owned()),
            regions: args.regions.clone().or(file.regions),
            rules: args.rules.clone().or(file.rules),
            rules_poll: Duration::from_millis(args.rules_poll_ms.or(file.rules_poll_ms).unwrap_or(1000).max(10)),
            http: args.http.or(file.http).unwrap_or(DEFAULT_HTTP),
            batch_max,
            mqtt_inflight: args.mqtt_inflight.or(file.mqtt_inflight).unwrap_or(1000).max(1),
            reconnect_max: Duration::from_secs(args.reconnect_max_s.or(file.reconnect_max_s).unwrap_or(30).max(1)),
            cap_sector,
            ack_within_s: args.ack_within_s.or(file.ack_within_s).unwrap_or(600).clamp(10, 86_400),
            log: args.log.clone().or(file.log).unwrap_or_else(|| "info".to_owned()),
        })
    }

    /// A configuration for tests and embedding: an external broker, everything explicit.
    pub fn for_tests(mqtt: MqttUrl, db: String) -> Config {
        Config {
            id: "hub".to_owned(),
            broker: Broker::External(mqtt),
            mqtt_ca: None,
            credentials: None,
            shared_group: None,
            db,
            regions: None,
            rules: None,
            rules_poll: Duration::from_millis(100),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            batch_max: 2000,
            mqtt_inflight: 1000,
            reconnect_max: Duration::from_secs(2),
            cap_sender: "yingji-hub@test".to_owned(),
            cap_sector: "000".to_owned(),
            ack_within_s: 600,
            console: ConsoleConfig::default(),
            log: "info".to_owned(),
        }
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("the config file {} is not valid", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_embedded() {
        let config = Config::resolve(&Args::default()).expect("resolve");
        assert_eq!(config.broker, Broker::Embedded(DEFAULT_EMBEDDED_BROKER));
        assert_eq!(config.db, "sqlite://./yingji-hub.db");
        assert_eq!(config.http, DEFAULT_HTTP);
    }

    #[test]
    fn tile_origins() {
        assert_eq!(tiles_origin("http://tiles.local:8081/{z}/{x}/{y}.png"), Ok("http://tiles.local:8081".into()));
        assert_eq!(tiles_origin("https://10.0.0.5/t/{z}/{x}/{y}"), Ok("https://10.0.0.5".into()));
        assert!(tiles_origin("http://{z}.x/{z}/{x}/{y}").is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            Args { shared_group: Some("a/b".into()), ..Args::default() },
            Args { cap_sector: Some("12".into()), ..Args::default() },
            Args { batch_max: Some(0), ..Args::default() },
            Args { id: Some("a b".into()), ..Args::default() },
            Args { console_default_mode: Some("drill".into()), ..Args::default() },
            Args { console_tiles_url: Some("ftp://x/{z}/{x}/{y}".into()), ..Args::default() },
            Args { console_tiles_url: Some("http://x/{z}/{x}.png".into()), ..Args::default() },
            Args { console_tiles_url: Some("http://x;y/{z}/{x}/{y}.png".into()), ..Args::default() },
            Args { session_ttl_s: Some(1), ..Args::default() },
        ] {
            assert!(Config::resolve(&args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn the_documented_example_names_every_option_correctly() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/hub.toml")).expect("docs/hub.toml");
        let uncommented = yingji_node::config::uncomment_options(&text);
        let file: FileConfig = toml::from_str(&uncommented).expect("every documented option is a real one");
        assert!(file.mqtt.is_some() && file.db.is_some() && file.log.is_some() && file.cap_sector.is_some());
        let documented = uncommented.lines().filter(|l| l.contains(" = ") && !l.starts_with('#')).count();
        assert_eq!(documented, 23, "docs/hub.toml documents every option once");
    }
}
