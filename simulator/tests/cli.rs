//! `yingji-sim` as an operator runs it: a drill's exit status, and clear errors.

use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_yingji-sim"))
}

fn scenario(name: &str) -> String {
    format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_short_drill_on_an_embedded_platform_exits_zero_and_writes_its_evaluation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let output = sim()
        .args(["drill", &scenario("short.toml"), "--platform", "embedded", "--quiet", "--speed", "60", "--out"])
        .arg(&out)
        .output()
        .expect("run yingji-sim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("statistics MATCH"), "{stdout}");
    let evaluation: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("evaluation.json")).expect("evaluation.json")).expect("JSON");
    assert_eq!(evaluation["passed"], true);
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(html.contains("<svg") && html.contains("PASSED") && !html.contains("<script"));
}

#[test]
fn bad_invocations_say_what_is_wrong_and_exit_two() {
    let cases: [(&[&str], &str); 4] = [
        (&["drill", "/nonexistent/scenario.toml"], "/nonexistent/scenario.toml"),
        (&["drill", &scenario("short.toml")], "--hub"),
        (&["drill", &scenario("short.toml"), "--platform", "embedded", "--speed", "0"], "--speed"),
        (
            &[
                "drill",
                &scenario("short.toml"),
                "--hub",
                "http://127.0.0.1:9",
                "--hub-token",
                "x",
                "--node-broker",
                "n91",
            ],
            "NODE=URL",
        ),
    ];
    for (args, needle) in cases {
        let output = sim().args(args).output().expect("run yingji-sim");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn check_describes_a_scenario() {
    let output = sim().args(["check", &scenario("flood.toml")]).output().expect("run yingji-sim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("flood") && stdout.contains("stations"), "{stdout}");
}
