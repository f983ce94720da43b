//! The node's configuration: flags, environment (`YINGJI_NODE_*`) and an optional TOML file,
//! in that order of precedence. Every field is documented here and in `docs/node.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;

/// yingji-node: a province's or a department's node of the Yingji emergency platform.
///
/// It takes in field reports, SenML sensor readings, device status and images from devices
/// over MQTT (topics under yingji/v1/), validates every message, refuses bad ones with a reject
/// notice on yingji/v1/reject/{device}, and stores the good ones in SQLite or PostgreSQL.
/// A QoS 1 message is acknowledged to the broker only after the transaction that stores it has
/// committed, so a crash never loses an acknowledged message.
///
/// It also relays the hub's signed dispatch orders down to the teams (only those whose
/// signature verifies against --hub-key) and the teams' acknowledgements up to the hub.
///
/// With no --mqtt it starts an embedded MQTT broker on 127.0.0.1:1883; with no --db it keeps
/// its data in ./yingji-node-<ID>.db (SQLite, created if missing).
///
/// Every option can also be set in the file named by --config (TOML; see docs/node.toml for a
/// commented example) or in the environment variable shown with it. Flags win over the
/// environment, which wins over the file.
#[derive(Debug, Parser, Default)]
#[command(name = "yingji-node", version, about, long_about, max_term_width = 100)]
pub struct Args {
    /// A TOML file with any of the options below (names with `_`, e.g. `mqtt_username`).
    #[arg(long, env = "YINGJI_NODE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// This node's id, e.g. a province's division code `330000` or `water-resources`.
    /// It names the MQTT client (`yingji-node-<ID>`), the default database file and the hub
    /// topics. Allowed characters: A-Z a-z 0-9 _ . -
    #[arg(long, env = "YINGJI_NODE_ID", value_name = "ID")]
    pub id: Option<String>,

    /// The field broker: mqtt://HOST:PORT or mqtts://HOST:PORT. Absent: start an embedded
    /// broker (see --embedded-broker).
    #[arg(long, env = "YINGJI_NODE_MQTT", value_name = "URL")]
    pub mqtt: Option<String>,

    /// A PEM file of CA certificates to trust for mqtts:// (default: the system's roots).
    #[arg(long, env = "YINGJI_NODE_MQTT_CA", value_name = "FILE")]
    pub mqtt_ca: Option<PathBuf>,

    /// The MQTT user name of this node.
    #[arg(long, env = "YINGJI_NODE_MQTT_USERNAME", value_name = "NAME")]
    pub mqtt_username: Option<String>,

    /// A file whose first line is the MQTT password. The password itself can instead come from
    /// the environment variable YINGJI_NODE_MQTT_PASSWORD; it is never accepted as a flag (it
    /// would show in `ps`) and never logged.
    #[arg(long, env = "YINGJI_NODE_MQTT_PASSWORD_FILE", value_name = "FILE")]
    pub mqtt_password_file: Option<PathBuf>,

    /// Where the embedded broker listens when no --mqtt is given.
    #[arg(long, env = "YINGJI_NODE_EMBEDDED_BROKER", value_name = "ADDR")]
    pub embedded_broker: Option<SocketAddr>,

    /// The database: sqlite://PATH or postgres://USER@HOST/DB.
    /// Default: sqlite://./yingji-node-<ID>.db
    #[arg(long, env = "YINGJI_NODE_DB", value_name = "URL")]
    pub db: Option<String>,

    /// Division polygons (GeoJSON FeatureCollection; properties `code`, `name`, `parent`).
    /// Reports without a `region` are placed by point in polygon.
    #[arg(long, env = "YINGJI_NODE_REGIONS", value_name = "FILE")]
    pub regions: Option<PathBuf>,

    /// The device registry, CSV (id,kind,name,lat,lon,region,warning_level,guarantee_level)
    /// or GeoJSON (Point features with those properties).
    #[arg(long, env = "YINGJI_NODE_DEVICES", value_name = "FILE")]
    pub devices: Option<PathBuf>,

    /// The HTTP API, /healthz and /metrics listen here.
    #[arg(long, env = "YINGJI_NODE_HTTP", value_name = "ADDR")]
    pub http: Option<SocketAddr>,

    /// The most messages stored in one transaction.
    #[arg(long, env = "YINGJI_NODE_BATCH_MAX", value_name = "N")]
    pub batch_max: Option<usize>,

    /// How long a batch waits for more messages once the first has come, in milliseconds.
    /// Longer batches are cheaper per message; the wait adds to each message's latency.
    #[arg(long, env = "YINGJI_NODE_BATCH_LINGER_MS", value_name = "MS")]
    pub batch_linger_ms: Option<u64>,

    /// The most QoS 1 messages this node publishes without a PUBACK (rejects, relays).
    #[arg(long, env = "YINGJI_NODE_MQTT_INFLIGHT", value_name = "N")]
    pub mqtt_inflight: Option<u16>,

    /// The MQTT keep-alive, in seconds.
    #[arg(long, env = "YINGJI_NODE_MQTT_KEEP_ALIVE_S", value_name = "S")]
    pub mqtt_keep_alive_s: Option<u64>,

    /// The longest wait between reconnection attempts, in seconds (the wait doubles from
    /// 100 ms up to this).
    #[arg(long, env = "YINGJI_NODE_RECONNECT_MAX_S", value_name = "S")]
    pub reconnect_max_s: Option<u64>,

    /// The hub's broker, where summarized events and team acknowledgements go up and receipts
    /// and dispatch orders come back:
    /// mqtt://HOST:PORT or mqtts://HOST:PORT (same CA and credentials as --mqtt).
    /// Default: the field broker.
    #[arg(long, env = "YINGJI_NODE_HUB_MQTT", value_name = "URL")]
    pub hub_mqtt: Option<String>,

    /// The hub's public keys, to verify dispatch orders with: a file of standard base64 Ed25519
    /// public keys (32 bytes each), one per line, `#` starting a comment. The node relays an
    /// order from yingji/v1/node/<ID>/dispatch to yingji/v1/dispatch/<TEAM> only if its
    /// signature verifies against one of them; list two while the hub rotates its key.
    /// Without it every order is refused (and reported to the hub).
    #[arg(long, env = "YINGJI_NODE_HUB_KEY", value_name = "FILE")]
    pub hub_key: Option<PathBuf>,

    /// A topic prefix under which this node's devices publish on the field broker, such as
    /// `n/guangdong/`, for when several nodes share one broker: the node subscribes to
    /// <PREFIX>yingji/v1/..., sends rejects and relays orders under it, and reads everything
    /// else as if the prefix were not there. It does what a broker's mount point does
    /// (Mosquitto's `mount_point`) for a broker that cannot. Default: none.
    #[arg(long, env = "YINGJI_NODE_FIELD_MOUNT", value_name = "PREFIX")]
    pub field_mount: Option<String>,

    /// The most events sent to the hub and not yet receipted.
    #[arg(long, env = "YINGJI_NODE_FORWARD_INFLIGHT", value_name = "N")]
    pub forward_inflight: Option<usize>,

    /// How long an event sent to the hub waits for its receipt before it is sent again, in
    /// milliseconds; doubled per attempt up to 32 times this.
    #[arg(long, env = "YINGJI_NODE_FORWARD_RESEND_MS", value_name = "MS")]
    pub forward_resend_ms: Option<u64>,

    /// The most events the outbox holds before it drops the oldest device-status and media
    /// events (reports, warnings and statistics are never dropped).
    #[arg(long, env = "YINGJI_NODE_OUTBOX_MAX", value_name = "N")]
    pub outbox_max: Option<i64>,

    /// Warning thresholds (TOML; see docs/thresholds.toml). Default: the national rainstorm and
    /// flood signals.
    #[arg(long, env = "YINGJI_NODE_THRESHOLDS", value_name = "FILE")]
    pub thresholds: Option<PathBuf>,

    /// Watch the stations (rain windows, water levels, silence) and the reporting units
    /// (overdue reports): `true` or `false`.
    #[arg(long, env = "YINGJI_NODE_MONITOR", value_name = "BOOL")]
    pub monitor: Option<bool>,

    /// How long raw readings are kept, in hours; older numeric readings live on as per-minute
    /// and per-hour aggregates, and readings older than this are refused at ingest.
    #[arg(long, env = "YINGJI_NODE_RAW_RETENTION_H", value_name = "HOURS")]
    pub raw_retention_h: Option<u64>,

    /// How long per-minute aggregates are kept, in days.
    #[arg(long, env = "YINGJI_NODE_MINUTE_RETENTION_D", value_name = "DAYS")]
    pub minute_retention_d: Option<u64>,

    /// How long per-hour aggregates are kept, in days.
    #[arg(long, env = "YINGJI_NODE_HOUR_RETENTION_D", value_name = "DAYS")]
    pub hour_retention_d: Option<u64>,

    /// How often retention runs, in seconds.
    #[arg(long, env = "YINGJI_NODE_RETENTION_INTERVAL_S", value_name = "S")]
    pub retention_interval_s: Option<u64>,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `yingji_node=debug,info`.
    /// RUST_LOG, when set, wins.
    #[arg(long, env = "YINGJI_NODE_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

/// The same options as read from the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<String>,
    mqtt: Option<String>,
    mqtt_ca: Option<PathBuf>,
    mqtt_username: Option<String>,
    mqtt_password_file: Option<PathBuf>,
    embedded_broker: Option<SocketAddr>,
    db: Option<String>,
    regions: Option<PathBuf>,
    devices: Option<PathBuf>,
    http: Option<SocketAddr>,
    batch_max: Option<usize>,
    batch_linger_ms: Option<u64>,
    mqtt_inflight: Option<u16>,
    mqtt_keep_alive_s: Option<u64>,
    reconnect_max_s: Option<u64>,
    hub_mqtt: Option<String>,
    hub_key: Option<PathBuf>,
    field_mount: Option<String>,
    forward_inflight: Option<usize>,
    forward_resend_ms: Option<u64>,
    outbox_max: Option<i64>,
    thresholds: Option<PathBuf>,
    monitor: Option<bool>,
    raw_retention_h: Option<u64>,
    minute_retention_d: Option<u64>,
    hour_retention_d: Option<u64>,
    retention_interval_s: Option<u64>,
    log: Option<String>,
}

/// Where the node's broker is.
#[derive(Debug, Clone, PartialEq)]
pub enum Broker {
    /// Start an in-process broker listening on this address.
    Embedded(SocketAddr),
    /// Connect to an external broker.
    External(MqttUrl),
}

/// A parsed `mqtt://` or `mqtts://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl MqttUrl {
    pub fn parse(text: &str) -> anyhow::Result<MqttUrl> {
        let url = url::Url::parse(text)
            .with_context(|| format!("--mqtt {text:?} is not a URL like mqtt://127.0.0.1:1883"))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => bail!("--mqtt {text:?}: scheme {other:?} is not mqtt:// or mqtts://"),
        };
        let host = url
            .host_str()
            .with_context(|| format!("--mqtt {text:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
        Ok(MqttUrl { host, port, tls })
    }
}

/// MQTT credentials. `Debug` never shows the password.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<hidden>").finish()
    }
}

/// The resolved configuration the node runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub broker: Broker,
    pub mqtt_ca: Option<PathBuf>,
    pub credentials: Option<Credentials>,
    pub db: String,
    pub regions: Option<PathBuf>,
    pub devices: Option<PathBuf>,
    pub http: SocketAddr,
    pub batch_max: usize,
    pub batch_linger: Duration,
    pub mqtt_inflight: u16,
    pub mqtt_keep_alive: Duration,
    pub reconnect_max: Duration,
    /// The hub's broker; `None` means the field broker.
    pub hub: Option<MqttUrl>,
    /// The file of the hub's public keys (see [`load_hub_keys`]); `None`: orders are refused.
    pub hub_key: Option<PathBuf>,
    /// The field topic prefix (see `--field-mount`); empty: none.
    pub field_mount: String,
    pub forward_inflight: usize,
    pub forward_resend: Duration,
    pub outbox_max: i64,
    pub thresholds: Option<PathBuf>,
    pub monitor: bool,
    pub raw_retention: Duration,
    pub minute_retention: Duration,
    pub hour_retention: Duration,
    pub retention_interval: Duration,
    pub log: String,
}

/// The embedded broker's default address.
pub const DEFAULT_EMBEDDED_BROKER: &str = "127.0.0.1:1883";
/// The HTTP API's default address.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8081";

impl Config {
    /// Resolves flags and environment (already in `args`) over the file named by `--config`.
    pub fn resolve(args: Args) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let id = args
            .id
            .or(file.id)
            .context("the node needs an id: pass --id ID (or YINGJI_NODE_ID, or `id` in the config file)")?;
        yingji_proto::topic::valid_device_id(&id).map_err(|e| anyhow::anyhow!("--id: {}", e.reason))?;
        let broker = match args.mqtt.or(file.mqtt) {
            Some(url) => Broker::External(MqttUrl::parse(&url)?),
            None => Broker::Embedded(args.embedded_broker.or(file.embedded_broker).unwrap_or_else(|| {
                DEFAULT_EMBEDDED_BROKER.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 1883)))
            })),
        };
        let username = args.mqtt_username.or(file.mqtt_username);
        let password_file = args.mqtt_password_file.or(file.mqtt_password_file);
        let password = match (password_file, std::env::var("YINGJI_NODE_MQTT_PASSWORD").ok()) {
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
        let db = args.db.or(file.db).unwrap_or_else(|| format!("sqlite://./yingji-node-{id}.db"));
        let batch_max = args.batch_max.or(file.batch_max).unwrap_or(10_000);
        if batch_max == 0 {
            bail!("--batch-max must be at least 1");
        }
        Ok(Config {
            broker,
            mqtt_ca: args.mqtt_ca.or(file.mqtt_ca),
            credentials,
            db,
            regions: args.regions.or(file.regions),
            devices: args.devices.or(file.devices),
            http: args
                .http
                .or(file.http)
                .unwrap_or_else(|| DEFAULT_HTTP.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8081)))),
            batch_max,
            batch_linger: Duration::from_millis(args.batch_linger_ms.or(file.batch_linger_ms).unwrap_or(2)),
            mqtt_inflight: args.mqtt_inflight.or(file.mqtt_inflight).unwrap_or(100).max(1),
            mqtt_keep_alive: Duration::from_secs(
                args.mqtt_keep_alive_s.or(file.mqtt_keep_alive_s).unwrap_or(30).max(5),
            ),
            reconnect_max: Duration::from_secs(args.reconnect_max_s.or(file.reconnect_max_s).unwrap_or(30).max(1)),
            hub: args.hub_mqtt.or(file.hub_mqtt).map(|u| MqttUrl::parse(&u)).transpose()?,
            hub_key: args.hub_key.or(file.hub_key),
            field_mount: valid_mount(args.field_mount.or(file.field_mount).unwrap_or_default())?,
            forward_inflight: args.forward_inflight.or(file.forward_inflight).unwrap_or(500).max(1),
            forward_resend: Duration::from_millis(
                args.forward_resend_ms.or(file.forward_resend_ms).unwrap_or(2000).clamp(50, 3_600_000),
            ),
            outbox_max: args.outbox_max.or(file.outbox_max).unwrap_or(1_000_000).max(1),
            thresholds: args.thresholds.or(file.thresholds),
            monitor: args.monitor.or(file.monitor).unwrap_or(true),
            raw_retention: Duration::from_secs(
                3600 * args.raw_retention_h.or(file.raw_retention_h).unwrap_or(168).max(1),
            ),
            minute_retention: Duration::from_secs(
                86_400 * args.minute_retention_d.or(file.minute_retention_d).unwrap_or(90).max(1),
            ),
            hour_retention: Duration::from_secs(
                86_400 * args.hour_retention_d.or(file.hour_retention_d).unwrap_or(3650).max(1),
            ),
            retention_interval: Duration::from_secs(
                args.retention_interval_s.or(file.retention_interval_s).unwrap_or(60).max(1),
            ),
            log: args.log.or(file.log).unwrap_or_else(|| "info".to_owned()),
            id,
        })
    }

    /// A configuration for tests and embedding: embedded nothing, everything explicit.
    pub fn for_tests(id: &str, mqtt: MqttUrl, db: String) -> Config {
        Config {
            id: id.to_owned(),
            broker: Broker::External(mqtt),
            mqtt_ca: None,
            credentials: None,
            db,
            regions: None,
            devices: None,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            batch_max: 2000,
            batch_linger: Duration::from_millis(2),
            mqtt_inflight: 100,
            mqtt_keep_alive: Duration::from_secs(30),
            reconnect_max: Duration::from_secs(2),
            hub: None,
            hub_key: None,
            field_mount: String::new(),
            forward_inflight: 500,
            forward_resend: Duration::from_millis(200),
            outbox_max: 1_000_000,
            thresholds: None,
            monitor: true,
            raw_retention: Duration::from_secs(168 * 3600),
            minute_retention: Duration::from_secs(90 * 86_400),
            hour_retention: Duration::from_secs(3650 * 86_400),
            retention_interval: Duration::from_secs(60),
            log: "info".to_owned(),
        }
    }
}

/// Checks a `--field-mount` prefix: empty, or topic levels without wildcards ending in `/`.
pub fn valid_mount(prefix: String) -> anyhow::Result<String> {
    if prefix.is_empty() {
        return Ok(prefix);
    }
    if !prefix.ends_with('/') || prefix.starts_with('/') || prefix.contains(['+', '#', '\0']) || prefix.contains("//") {
        bail!("--field-mount {prefix:?}: topic levels without + or #, ending in '/', such as \"n/guangdong/\"");
    }
    Ok(prefix)
}

/// Reads the hub's public keys: standard base64 of 32 raw bytes, one per line; `#` starts a
/// comment, blank lines are skipped. A file without a key, or with a line that is not one, is
/// an error that names the line.
pub fn load_hub_keys(path: &Path) -> anyhow::Result<Vec<ed25519_dalek::VerifyingKey>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the hub key file {}", path.display()))?;
    parse_hub_keys(&text).with_context(|| format!("the hub key file {} is not valid", path.display()))
}

/// The keys of a hub key file's text (see [`load_hub_keys`]).
pub fn parse_hub_keys(text: &str) -> anyhow::Result<Vec<ed25519_dalek::VerifyingKey>> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let key =
            yingji_proto::sign::parse_public_key(line).map_err(|e| anyhow::anyhow!("line {}: {}", n + 1, e.reason))?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        bail!("it holds no key: put the hub's public key (standard base64, from the hub's /api/v1/keys) on a line");
    }
    Ok(keys)
}

/// A documented example config (every option commented out as `# name = value`) with its
/// options uncommented, so that a test can parse it and count them (node and hub do).
pub fn uncomment_options(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_')) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("the config file {} is not valid", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mqtt_urls() {
        let cases = [
            ("mqtt://127.0.0.1:1883", Some(("127.0.0.1", 1883, false))),
            ("mqtt://broker.example", Some(("broker.example", 1883, false))),
            ("mqtts://broker.example", Some(("broker.example", 8883, true))),
            ("mqtts://[::1]:9000", Some(("::1", 9000, true))),
            ("http://x", None),
            ("not a url", None),
        ];
        for (text, want) in cases {
            let got = MqttUrl::parse(text).ok().map(|u| (u.host, u.port, u.tls));
            assert_eq!(got, want.map(|(h, p, t)| (h.to_owned(), p, t)), "{text}");
        }
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "id = \"from-file\"\nbatch_max = 7\ndb = \"sqlite://file.db\"\n").expect("write");
        let args = Args { config: Some(path), id: Some("from-flag".into()), ..Args::default() };
        let config = Config::resolve(args).expect("resolve");
        assert_eq!(config.id, "from-flag");
        assert_eq!(config.batch_max, 7);
        assert_eq!(config.db, "sqlite://file.db");
        assert_eq!(config.broker, Broker::Embedded("127.0.0.1:1883".parse().expect("addr")));
    }

    #[test]
    fn unknown_file_fields_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "id = \"x\"\nbatchmax = 7\n").expect("write");
        let err = Config::resolve(Args { config: Some(path), ..Args::default() }).expect_err("must refuse");
        assert!(format!("{err:#}").contains("batchmax"), "{err:#}");
    }

    #[test]
    fn an_id_is_required_and_checked() {
        assert!(Config::resolve(Args::default()).is_err());
        assert!(Config::resolve(Args { id: Some("a/b".into()), ..Args::default() }).is_err());
    }

    #[test]
    fn the_documented_example_names_every_option_correctly() {
        // docs/node.toml shows every option commented out: uncomment them all and parse.
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/node.toml")).expect("docs/node.toml");
        let uncommented = uncomment_options(&text);
        let file: FileConfig = toml::from_str(&uncommented).expect("every documented option is a real one");
        assert!(file.mqtt.is_some() && file.db.is_some() && file.log.is_some() && file.reconnect_max_s.is_some());
        let documented = uncommented.lines().filter(|l| l.contains(" = ") && !l.starts_with('#')).count();
        assert_eq!(documented, 28, "docs/node.toml documents every option once");
    }

    #[test]
    fn field_mounts_are_topic_levels_ending_in_a_slash() {
        for good in ["", "n/gd/", "a/", "n/node-1/x/"] {
            assert_eq!(valid_mount(good.to_owned()).expect(good), good);
        }
        for bad in ["n/gd", "/n/", "n/+/", "n/#/", "n//", "n/\0/"] {
            let err = valid_mount(bad.to_owned()).expect_err(bad).to_string();
            assert!(err.contains("--field-mount"), "{bad:?}: {err}");
        }
        let args = Args { id: Some("n".into()), field_mount: Some("n/x".into()), ..Args::default() };
        assert!(Config::resolve(args).is_err());
    }

    #[test]
    fn hub_key_files_hold_keys_comments_and_blank_lines() {
        let a = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        let b = ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key();
        let (ta, tb) = (yingji_proto::sign::public_key_base64(&a), yingji_proto::sign::public_key_base64(&b));
        let text = format!("# the hub's keys\n\n{ta}  # current\n  {tb}\n{ta}\n");
        assert_eq!(parse_hub_keys(&text).expect("keys"), vec![a, b]);
        let err = parse_hub_keys(&format!("{ta}\nnot a key\n")).expect_err("refused");
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
        assert!(parse_hub_keys("# nothing here\n").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hub.keys");
        std::fs::write(&path, format!("{ta}\n")).expect("write");
        let args = Args { id: Some("n".into()), hub_key: Some(path.clone()), ..Args::default() };
        assert_eq!(Config::resolve(args).expect("resolve").hub_key, Some(path.clone()));
        assert_eq!(load_hub_keys(&path).expect("load"), vec![a]);
        assert!(load_hub_keys(&dir.path().join("missing")).is_err());
    }
}
