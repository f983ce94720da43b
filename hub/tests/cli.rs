//! The `yingji-hub` binary as an operator meets it: `--help`, `token create`, `user add`,
//! `rules check` and `rules test`, with their exit codes.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn hub() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yingji-hub"));
    for (key, _) in std::env::vars() {
        if key.starts_with("YINGJI_HUB_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

const DEFAULT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.toml");
const DEFAULT_CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/cases.toml");

#[test]
fn help_names_the_options_and_commands() {
    let out = hub().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["--mqtt", "--db", "--http", "--regions", "--rules", "--shared-group", "--config", "token", "rules"] {
        assert!(text.contains(word), "--help does not mention {word}:\n{text}");
    }
}

#[tokio::test]
async fn token_create_prints_the_token_alone_on_its_last_line_and_keeps_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hub.db").display());
    let out = hub().args(["token", "create", "--role", "officer", "--db", &db]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("yj_") && !token.contains(' '), "{stdout}");
    let store = yingji_hub::store::Store::connect(&db).await.unwrap();
    assert_eq!(
        store.token_role(&yingji_hub::auth::hash(&token)).await.unwrap().map(|r| r.0).as_deref(),
        Some("officer")
    );
    assert_eq!(store.token_role(&token).await.unwrap(), None, "the token itself is not stored");
    store.close().await;
    let bad = hub().args(["token", "create", "--role", "root", "--db", &db]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown role"));
}

#[tokio::test]
async fn user_add_reads_the_password_from_standard_input_and_keeps_an_argon2id_hash() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hub.db").display());
    let add = |name: &str, role: &str, password: &str| {
        let mut child = hub()
            .args(["user", "add", name, "--role", role, "--db", &db])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = add("duty", "officer", "a long enough password");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("added duty (officer)"));
    let short = add("other", "viewer", "short");
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8"));
    assert_eq!(add("x", "root", "a long enough password").status.code(), Some(2));
    assert_eq!(add("duty", "viewer", "a long enough password").status.code(), Some(1), "a name is taken once");
    let list = hub().args(["user", "list", "--db", &db]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout), "duty\tofficer\n");
    let store = yingji_hub::store::Store::connect(&db).await.unwrap();
    let (role, hash) = store.user_credentials("duty").await.unwrap().unwrap();
    assert_eq!(role, "officer");
    assert!(hash.starts_with("$argon2id$") && !hash.contains("a long enough password"));
    assert!(yingji_hub::console::users::verify_password("a long enough password", &hash));
    store.close().await;
    let removed = hub().args(["user", "remove", "duty", "--db", &db]).output().unwrap();
    assert!(removed.status.success());
    let again = hub().args(["user", "remove", "duty", "--db", &db]).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn rules_check_accepts_the_shipped_rules_and_points_at_an_error() {
    let out = hub().args(["rules", "check", DEFAULT_RULES]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rules, all compile"));
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[[rule]]\nname = \"x\"\nwhen = 'stats.deaths >'\nlevel = 4\nreason = \"r\"\n").unwrap();
    let out = hub().args(["rules", "check"]).arg(&broken).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.toml:3:"), "file:line:col of the broken `when`: {err}");
}

#[test]
fn rules_test_runs_cases_and_fails_on_a_wrong_expectation() {
    let out = hub().args(["rules", "test", DEFAULT_RULES, DEFAULT_CASES]).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        "[[case]]\nname = \"one death is not level I\"\nevent = { kind = \"stats\", region = \"330000\" }\n\
         incident = { id = \"i\", hazard = \"flood\" }\nexpect_level = 1\n[case.stats.province]\ncode = \"330000\"\ndeaths = 1\n",
    )
    .unwrap();
    let out = hub().args(["rules", "test", DEFAULT_RULES]).arg(&cases).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
}
