//! The `yingji-node` binary as an operator meets it: `--help`, and clear errors for a bad
//! start. (Also: because this test needs the binary, `cargo test --workspace` builds it fresh,
//! and the end-to-end tests that run it as a process get the current one.)

use std::process::Command;

fn node() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yingji-node"));
    for (key, _) in std::env::vars() {
        if key.starts_with("YINGJI_NODE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn help_names_every_option_an_operator_needs() {
    let out = node().arg("--help").output().expect("run yingji-node --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--id",
        "--mqtt",
        "--mqtt-ca",
        "--mqtt-username",
        "--mqtt-password-file",
        "--embedded-broker",
        "--db",
        "--regions",
        "--devices",
        "--http",
        "--hub-mqtt",
        "--thresholds",
        "--monitor",
        "--raw-retention-h",
        "--config",
    ] {
        assert!(text.contains(flag), "--help does not mention {flag}:\n{text}");
    }
    assert!(text.contains("acknowledged to the broker only after"), "--help explains the delivery guarantee");
}

#[test]
fn start_up_errors_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_config = dir.path().join("node.toml");
    std::fs::write(&bad_config, "id = \"n1\"\nbatchmax = 3\n").expect("write");
    let bad_regions = dir.path().join("regions.geojson");
    std::fs::write(&bad_regions, "{\"type\": \"Point\", \"coordinates\": [1, 2]}").expect("write");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    let db = format!("sqlite://{}", dir.path().join("n.db").display());
    let cases: [(Vec<&str>, &str); 4] = [
        (vec![], "--id"),
        (vec!["--config", bad_config.to_str().unwrap_or_default()], "batchmax"),
        (vec!["--id", "n1", "--db", &db, "--regions", bad_regions.to_str().unwrap_or_default()], "FeatureCollection"),
        (vec!["--id", "n1", "--db", &db, "--embedded-broker", &taken, "--http", "127.0.0.1:0"], "--mqtt mqtt://"),
    ];
    for (args, want) in cases {
        let out = node().args(&args).output().expect("run yingji-node");
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: stderr does not mention {want:?}:\n{err}");
    }
}
