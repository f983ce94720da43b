//! The console over HTTP (no browser): the session cookie and its attributes, logout, expiry,
//! the slowdown after failed logins, CSRF on every form and cookie-authenticated API call,
//! roles through the console and the API, field text escaped in the server's HTML, exercise
//! mode, drill results, and the console's storage on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use yingji_tests::{DbKind, Publisher, TestDb, TestHub, db_kinds, eventually, spawn_embedded_broker};

/// A browser-like client: keeps the cookies it is given, follows no redirect.
struct Console {
    http: reqwest::Client,
    base: String,
    cookies: std::collections::BTreeMap<String, String>,
    csrf: String,
}

fn hidden_csrf(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_owned())
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".to_owned(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

impl Console {
    fn new(hub: &TestHub) -> Console {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Console { http, base: format!("http://{}", hub.http), cookies: Default::default(), csrf: String::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, r: &reqwest::Response) -> Vec<String> {
        let set: Vec<String> =
            r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok().map(str::to_owned)).collect();
        for c in &set {
            let first = c.split(';').next().unwrap_or_default();
            if let Some((k, v)) = first.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        set
    }

    async fn get(&mut self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.keep(&r);
        let (status, headers) = (r.status(), r.headers().clone());
        let body = r.text().await.unwrap_or_default();
        if let Some(t) = hidden_csrf(&body)
            && path != "/login"
            && !path.starts_with("/login?")
        {
            self.csrf = t;
        }
        (status, headers, body)
    }

    async fn post_form(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Vec<String>, String, Option<String>) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form))
            .send()
            .await
            .expect("POST");
        let set = self.keep(&r);
        let location = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let status = r.status();
        (status, set, r.text().await.unwrap_or_default(), location)
    }

    /// Logs in through the form; returns the answer's status and Set-Cookie headers.
    async fn login(&mut self, name: &str, password: &str) -> (StatusCode, Vec<String>) {
        let (_, _, page) = self.get("/login").await;
        let token = hidden_csrf(&page).expect("the login form's token");
        let (status, set, _, _) =
            self.post_form("/login", &[("name", name), ("password", password), ("csrf", &token), ("next", "/")]).await;
        if status == StatusCode::SEE_OTHER {
            let (_, _, home) = self.get("/").await;
            assert!(home.contains("id=\"page-data\""), "the console after login");
        }
        (status, set)
    }

    async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        csrf: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let mut rq = self
            .http
            .request(method.parse().expect("method"), format!("{}{path}", self.base))
            .header("cookie", self.cookie_header());
        if let Some(c) = csrf {
            rq = rq.header("x-csrf-token", c);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or_default())
    }
}

fn regions_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("regions.geojson");
    let sq = |code: &str, name: &str, parent: Option<&str>, lon: f64, lat: f64, size: f64| {
        json!({"type": "Feature", "properties": {"code": code, "name": name, "parent": parent},
               "geometry": {"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size],
                                                                [lon, lat + size], [lon, lat]]]}})
    };
    let features = vec![
        sq("330000", "浙江省", None, 118.0, 27.0, 4.0),
        sq("330300", "<b>温州</b>", Some("330000"), 118.0, 27.0, 2.0),
        sq("330302", "鹿城区", Some("330300"), 118.0, 27.0, 1.0),
        sq("350000", "福建省", None, 114.0, 27.0, 4.0),
    ];
    std::fs::write(&path, json!({"type": "FeatureCollection", "features": features}).to_string()).expect("regions");
    path
}

async fn hub_with(db: &TestDb, dir: &std::path::Path, edit: impl FnOnce(&mut yingji_hub::Config)) -> TestHub {
    let broker = spawn_embedded_broker();
    let mut config = yingji_hub::Config::for_tests(broker, db.url.clone());
    config.regions = Some(regions_file(dir));
    edit(&mut config);
    let hub = TestHub::spawn(config).await;
    hub.user("duty", "officer", "duty-password").await;
    hub.user("watch", "viewer", "watch-password").await;
    hub.user("root", "admin", "root-password").await;
    hub.user("chief", "commander", "chief-password").await;
    hub
}

fn report_event(node: &str, id: &str, incident: &str, deaths: i64, text: &str, exercise: bool) -> Vec<u8> {
    json!({"id": format!("{node}:report:u:{id}"), "node": node, "kind": "report", "at": "2026-09-14T08:00:00+08:00",
           "exercise": exercise, "region": "330302", "incident": incident,
           "body": {"device": "u", "id": id, "incident": incident, "stage": "update", "hazard": "flood",
                    "observed_at": "2026-09-14T08:00:00+08:00", "region": "330302", "figures": {"deaths": deaths},
                    "text": text}})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sets_a_strict_http_only_cookie_and_logout_and_expiry_end_the_session() {
    let db = TestDb::new(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub_with(&db, dir.path(), |_| {}).await;
    let mut c = Console::new(&hub);
    // Not logged in: pages go to the login page, the API says 401.
    let (status, headers, _) = c.get("/dispatch").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/login?next=/dispatch");
    assert_eq!(c.api("GET", "/api/v1/incidents", None, None).await.0, StatusCode::UNAUTHORIZED);

    let (status, set) = c.login("duty", "duty-password").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let session = set.iter().find(|s| s.starts_with("yingji_session=")).expect("the session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    assert!(!session.contains("Secure"), "not Secure without TLS: {session}");
    // The page is the console, with its policy.
    let (status, headers, page) = c.get("/").await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert!(page.contains("<html lang=\"zh-CN\">"), "Chinese by default");
    assert!(!page.contains("<script>") && !page.contains(" onclick="), "no inline script");
    // The API takes the cookie, with the session user's role.
    assert_eq!(c.api("GET", "/api/v1/incidents", None, None).await.0, StatusCode::OK);
    assert_eq!(c.api("GET", "/api/v1/audit", None, None).await.0, StatusCode::OK, "an officer reads the audit log");

    // Logout ends the session on the server, not only in the browser.
    let old = c.cookies.clone();
    let csrf = c.csrf.clone();
    let (status, set, _, location) = c.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/login?bye=1"));
    assert!(set.iter().any(|s| s.starts_with("yingji_session=;") && s.contains("Max-Age=0")), "{set:?}");
    c.cookies = old;
    assert_eq!(
        c.api("GET", "/api/v1/incidents", None, None).await.0,
        StatusCode::UNAUTHORIZED,
        "the old cookie is dead"
    );
    let (status, headers, _) = c.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers["location"].to_str().is_ok_and(|l| l.contains("expired=1")));

    // English on request, and an audit trail of it all.
    let (_, _, _) = c.get("/lang/en?next=/login").await;
    let (_, _, login_page) = c.get("/login").await;
    assert!(login_page.contains("<html lang=\"en\">") && login_page.contains("Duty officer login"));
    let admin = hub.token("admin").await;
    let audit = hub.get(&admin, "/api/v1/audit").await;
    let actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| {
            (a["action"].as_str().unwrap_or_default().to_owned(), a["who"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert!(
        actions.contains(&("login".into(), "duty".into())) && actions.contains(&("logout".into(), "duty".into())),
        "{actions:?}"
    );
    hub.shutdown().await;

    // Sessions expire; behind TLS the cookie is Secure.
    let db = TestDb::new(DbKind::Sqlite).await;
    let hub = hub_with(&db, dir.path(), |c| {
        c.console.session_ttl_s = 1;
        c.console.secure_cookie = true;
        c.console.tiles_url = Some("http://tiles.local:8081/{z}/{x}/{y}.png".into());
    })
    .await;
    let mut c = Console::new(&hub);
    let (_, set) = c.login("duty", "duty-password").await;
    assert!(set.iter().any(|s| s.starts_with("yingji_session=") && s.ends_with("; Secure")), "{set:?}");
    // With a tile server configured, its origin (and only it) may serve images.
    let (_, headers, page) = c.get("/").await;
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("img-src 'self' data: http://tiles.local:8081;") && csp.contains("connect-src 'self';"),
        "{csp}"
    );
    assert!(page.contains("http://tiles.local:8081/{z}/{x}/{y}.png"), "the map gets the tile URL");
    eventually(Duration::from_secs(10), "the session to expire", || async {
        (c.api("GET", "/api/v1/incidents", None, None).await.0 == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_slow_the_next_attempts_down() {
    let db = TestDb::new(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub_with(&db, dir.path(), |_| {}).await;
    let mut c = Console::new(&hub);
    for _ in 0..3 {
        let (status, set) = c.login("duty", "not-the-password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(!set.iter().any(|s| s.starts_with("yingji_session=")), "no session for a wrong password");
    }
    // Three failures: the fourth attempt waits 1 s before it is even checked.
    let started = Instant::now();
    let (status, _) = c.login("duty", "not-the-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(started.elapsed() >= Duration::from_millis(1000), "slowed down: {:?}", started.elapsed());
    // An unknown name from the same address is slowed down too (the address counts).
    let started = Instant::now();
    let (status, _) = c.login("nobody", "whatever-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(started.elapsed() >= Duration::from_millis(2000), "slowed down by address: {:?}", started.elapsed());
    // The right password still works (after its wait), and clears the count.
    let (status, _) = c.login("duty", "duty-password").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cleared = hub.store.login_failures(&["user:duty".to_owned()], 0).await.expect("failures");
    assert_eq!(cleared, 0, "a success clears the name's count");
    let admin = hub.token("admin").await;
    let audit = hub.get(&admin, "/api/v1/audit").await;
    let failed = audit["items"].as_array().expect("items").iter().filter(|a| a["action"] == "login_failed").count();
    assert_eq!(failed, 5, "every failed login is audited");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let db = TestDb::new(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub_with(&db, dir.path(), |_| {}).await;
    // The login form itself: no login cookie, no login.
    let mut c = Console::new(&hub);
    let (status, set, _, _) =
        c.post_form("/login", &[("name", "root"), ("password", "root-password"), ("csrf", "x")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!set.iter().any(|s| s.starts_with("yingji_session=")));

    let (status, _) = c.login("root", "root-password").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, _) = c.get("/users").await;
    let good = c.csrf.clone();
    assert!(!good.is_empty());
    for csrf in [None, Some("forged")] {
        let mut form = vec![("name", "mallory"), ("role", "admin"), ("password", "mallory-password")];
        if let Some(t) = csrf {
            form.push(("csrf", t));
        }
        let (status, _, body, _) = c.post_form("/users", &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("CSRF"));
        let (status, _, _, _) = c.post_form("/logout", &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _, _) = c.post_form("/mode", &[("mode", "exercise")]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let users = hub.store.users().await.expect("users");
    assert!(users.iter().all(|u| u.name != "mallory"), "nothing changed");
    // The same form with the token works.
    let (status, _, _, location) = c
        .post_form(
            "/users",
            &[("name", "newbie"), ("role", "viewer"), ("password", "newbie-password"), ("csrf", &good)],
        )
        .await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/users?added=newbie")));
    // The API with the cookie: reads need no token, changes do.
    let body = json!({"incident": "x", "level": 1, "reason": "test"});
    let (status, answer) = c.api("POST", "/api/v1/assessments", Some(body.clone()), None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::FORBIDDEN, Some("csrf")));
    let (status, _) = c.api("POST", "/api/v1/assessments", Some(body.clone()), Some("forged")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = c.api("POST", "/api/v1/assessments", Some(body), Some(&good)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "past the CSRF check: there is no incident x");
    // A bearer token needs no CSRF token.
    let admin = hub.token("admin").await;
    let r =
        reqwest::Client::new().post(hub.url("/api/v1/rules/reload")).bearer_auth(&admin).send().await.expect("POST");
    assert_eq!(r.status(), StatusCode::CONFLICT, "authenticated, no CSRF needed (no rules file to reload)");
    let assessments = hub.get(&admin, "/api/v1/assessments").await;
    assert_eq!(assessments["items"].as_array().map(Vec::len), Some(0), "no level was set");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_approve_through_the_console_or_the_api_and_script_in_a_report_stays_text() {
    let db = TestDb::new(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = spawn_embedded_broker();
    let mut config = yingji_hub::Config::for_tests(broker.clone(), db.url.clone());
    config.regions = Some(regions_file(dir.path()));
    let hub = TestHub::spawn(config).await;
    hub.user("watch", "viewer", "watch-password").await;
    hub.user("duty", "officer", "duty-password").await;
    let admin = hub.token("admin").await;
    let teams =
        "id,name,node,lat,lon,capabilities,size\nt-1,<i>Team</i> one,zj,27.6,118.6,flood_rescue;evacuation,30\n";
    let r = reqwest::Client::new()
        .post(hub.url("/api/v1/resources/teams"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(teams)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::OK);
    let hostile = "<script>alert('xss')</script><img src=x onerror=alert(2)>";
    let mut node = Publisher::connect(&broker, "console-node").await;
    node.publish("yingji/v1/node/zj/event", report_event("zj", "r1", "flood-x", 25, hostile, false)).await;
    let proposal = eventually(Duration::from_secs(20), "a proposal", || async {
        let p = hub.try_get(&admin, "/api/v1/proposals?status=proposed").await?;
        p["items"].as_array()?.first().cloned()
    })
    .await;
    let id = proposal["id"].as_str().expect("id").to_owned();

    let mut viewer = Console::new(&hub);
    viewer.login("watch", "watch-password").await;
    let (_, _, board) = viewer.get("/dispatch").await;
    assert!(board.contains("Viewers see the board") || board.contains("查看员只能查看调度"));
    let csrf = viewer.csrf.clone();
    let (status, body) = viewer.api("POST", &format!("/api/v1/proposals/{id}/approve"), None, Some(&csrf)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{body}");
    let viewer_token = hub.token("viewer").await;
    let r = reqwest::Client::new()
        .post(hub.url(&format!("/api/v1/proposals/{id}/approve")))
        .bearer_auth(&viewer_token)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(hub.get(&admin, &format!("/api/v1/proposals/{id}")).await["status"], "proposed", "still undecided");
    // A viewer does not set levels either.
    let (_, _, page) = viewer.get("/incidents/flood-x").await;
    assert!(!page.contains("id=\"level-form\""), "no level form for a viewer");
    let (status, _, _, _) =
        viewer.post_form("/incidents/flood-x/level", &[("csrf", &csrf), ("level", "1"), ("reason", "x")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A commander may, with a reason; it is an assessment like any other, and audited.
    hub.user("chief", "commander", "chief-password").await;
    let mut chief = Console::new(&hub);
    chief.login("chief", "chief-password").await;
    let (_, _, chief_page) = chief.get("/incidents/flood-x").await;
    assert!(chief_page.contains("id=\"level-form\""));
    let chief_csrf = chief.csrf.clone();
    let (status, _, _, location) = chief
        .post_form(
            "/incidents/flood-x/level",
            &[("csrf", &chief_csrf), ("level", "2"), ("reason", "dyke breach upstream")],
        )
        .await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/incidents/flood-x")));
    let incident = hub.get(&admin, "/api/v1/incidents/flood-x").await;
    assert_eq!(incident["incident"]["level"], 2);
    assert_eq!(incident["assessments"][0]["rule"], "manual:commander");
    let audit = hub.get(&admin, "/api/v1/audit").await;
    assert!(
        audit["items"].as_array().expect("items").iter().any(|a| a["action"] == "set_level" && a["who"] == "chief")
    );
    let (status, _, _, _) =
        chief.post_form("/incidents/flood-x/level", &[("csrf", &chief_csrf), ("level", "9"), ("reason", "x")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a bad level changes nothing");

    // Field text and names are text in the server's HTML.
    assert!(
        page.contains("&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert") && !page.contains("<img src=x"), "no markup from the field");
    assert!(page.contains("&lt;b&gt;温州&lt;/b&gt;"), "division names escaped");
    let (_, _, resources) = viewer.get("/resources").await;
    assert!(resources.contains("&lt;i&gt;Team&lt;/i&gt; one") && !resources.contains("<i>Team</i>"));

    // The officer approves through the console's API call, with the CSRF token.
    let mut officer = Console::new(&hub);
    officer.login("duty", "duty-password").await;
    let (_, _, _) = officer.get("/dispatch").await;
    let csrf = officer.csrf.clone();
    let (status, body) = officer.api("POST", &format!("/api/v1/proposals/{id}/approve"), None, Some(&csrf)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audit = hub.get(&admin, "/api/v1/audit").await;
    let approve =
        audit["items"].as_array().expect("items").iter().find(|a| a["action"] == "approve").cloned().expect("approve");
    assert_eq!((approve["who"].as_str(), approve["role"].as_str()), (Some("duty"), Some("officer")), "audited by name");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exercise_mode_shows_drill_data_only_under_a_banner_and_every_page_renders() {
    let db = TestDb::new(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = spawn_embedded_broker();
    let mut config = yingji_hub::Config::for_tests(broker.clone(), db.url.clone());
    config.regions = Some(regions_file(dir.path()));
    config.console.default_mode = yingji_hub::config::ConsoleMode::Exercise;
    let hub = TestHub::spawn(config).await;
    hub.user("root", "admin", "root-password").await;
    let mut node = Publisher::connect(&broker, "mode-node").await;
    node.publish("yingji/v1/node/zj/event", report_event("zj", "real-1", "real-flood", 1, "real", false)).await;
    node.publish("yingji/v1/node/zj/event", report_event("zj", "drill-1", "drill-flood", 1, "drill", true)).await;
    let admin = hub.token("admin").await;
    eventually(Duration::from_secs(20), "both incidents", || async {
        let i = hub.try_get(&admin, "/api/v1/incidents").await?;
        (i["items"].as_array()?.len() == 2).then_some(())
    })
    .await;
    let drill = json!({"id": "drill-2026-1", "scenario": "typhoon", "seed": 18446744073709551615u64,
        "started_at": "2026-09-14T08:00:00+08:00", "finished_at": "2026-09-14T10:00:00+08:00", "passed": false,
        "summary": {"orders_overdue": 1}, "html": "<h1>After action</h1><script>alert(1)</script>"});
    let officer = hub.token("officer").await;
    let post = |body: serde_json::Value, token: String| {
        let url = hub.url("/api/v1/drills");
        async move { reqwest::Client::new().post(url).bearer_auth(token).json(&body).send().await.expect("POST") }
    };
    assert_eq!(post(drill.clone(), officer.clone()).await.status(), StatusCode::CREATED);
    let again = post(drill.clone(), officer.clone()).await;
    assert_eq!(again.status(), StatusCode::OK, "idempotent on id");
    assert_eq!(again.json::<serde_json::Value>().await.expect("json")["created"], false);
    assert_eq!(post(drill.clone(), hub.token("viewer").await).await.status(), StatusCode::FORBIDDEN);
    let mut bad = drill.clone();
    bad["started_at"] = json!("last tuesday");
    assert_eq!(post(bad, officer.clone()).await.status(), StatusCode::BAD_REQUEST);
    let report = reqwest::Client::new()
        .get(hub.url("/api/v1/drills/drill-2026-1/report"))
        .bearer_auth(&officer)
        .send()
        .await
        .expect("GET");
    assert!(report.headers()["content-security-policy"].to_str().is_ok_and(|c| c.starts_with("sandbox")));
    assert_eq!(hub.get(&officer, "/api/v1/drills").await["items"][0]["seed"], "18446744073709551615");

    // The demo's default: exercise mode, the banner, drill data only.
    let mut c = Console::new(&hub);
    c.login("root", "root-password").await;
    let (_, _, list) = c.get("/incidents").await;
    assert!(list.contains("id=\"exercise-banner\"") && list.contains("演习 EXERCISE"));
    assert!(list.contains("drill-flood") && !list.contains("real-flood"), "drill data only");
    let (_, _, drills) = c.get("/drills").await;
    assert!(drills.contains("drill-2026-1") && drills.contains("/api/v1/drills/drill-2026-1/report"));
    let (status, _, _) = c.get("/incidents/real-flood").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a real incident is not shown in exercise mode");
    let (status, _, map) = c.get("/console/map.json").await;
    assert_eq!(status, StatusCode::OK);
    let map: serde_json::Value = serde_json::from_str(&map).expect("json");
    let incidents: Vec<_> = map["markers"]
        .as_array()
        .expect("markers")
        .iter()
        .filter(|m| m["kind"] == "incident")
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(incidents, [json!("drill-flood")]);
    // Switch to real: real data only, no banner.
    let csrf = c.csrf.clone();
    let (status, _, _, _) = c.post_form("/mode", &[("csrf", &csrf), ("mode", "real"), ("next", "/incidents")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, list) = c.get("/incidents").await;
    assert!(!list.contains("id=\"exercise-banner\""));
    assert!(list.contains("real-flood") && !list.contains("drill-flood"), "real data only");
    let (_, _, drills) = c.get("/drills").await;
    assert!(drills.contains("id=\"drills-real\"") && !drills.contains("drill-2026-1"));
    // An admin imports through the console: all rows or none, each bad row named.
    let csv = "id,name,node,lat,lon,capabilities,size\nt-9,Team nine,zj,27.6,118.6,medical,12\n";
    let (status, _, _, location) =
        c.post_form("/resources/import", &[("csrf", &csrf), ("kind", "teams"), ("text", csv)]).await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/resources?imported=1")));
    let bad = "id,name,node,lat,lon,capabilities,size\nt-10,Ten,zj,99,118.6,medical,12\n";
    let (status, _, body, _) =
        c.post_form("/resources/import", &[("csrf", &csrf), ("kind", "teams"), ("text", bad)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"import-errors\"") && body.contains("lat"), "{body}");
    let teams = hub.get(&admin, "/api/v1/resources/teams").await;
    let ids: Vec<_> = teams["items"].as_array().expect("items").iter().map(|t| t["id"].clone()).collect();
    assert_eq!(ids, [json!("t-9")]);
    // Every page answers for an admin.
    for path in [
        "/",
        "/feed",
        "/incidents",
        "/incidents/real-flood",
        "/dispatch",
        "/resources",
        "/nodes",
        "/audit",
        "/drills",
        "/users",
        "/console/regions.geojson",
    ] {
        let (status, headers, _) = c.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(headers.contains_key("content-security-policy"), "{path}");
    }
    let (_, _, regions) = c.get("/console/regions.geojson").await;
    let regions: serde_json::Value = serde_json::from_str(&regions).expect("geojson");
    assert_eq!(regions["features"].as_array().map(Vec::len), Some(4));
    assert_eq!(regions["features"][0]["properties"]["depth"], 0, "provinces first");
    // Assets: hashed names, cached for a year; an unknown name is 404.
    let (_, _, home) = c.get("/").await;
    let js = home.split("src=\"").nth(1).and_then(|s| s.split('"').next()).expect("a script").to_owned();
    let (status, headers, _) = c.get(&js).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["cache-control"].to_str().is_ok_and(|v| v.contains("immutable")));
    assert_eq!(c.get("/assets/console.js").await.0, StatusCode::NOT_FOUND);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_store_keeps_users_sessions_failures_and_drills_on_every_database() {
    use yingji_hub::store::{NewAudit, NewDrill};
    for kind in db_kinds() {
        let db = TestDb::new(kind).await;
        let store = yingji_hub::store::Store::connect(&db.url).await.expect("store");
        yingji_hub::add_user(&store, "li", yingji_hub::auth::Role::Officer, "li-password").await.expect("add");
        let again = yingji_hub::add_user(&store, "li", yingji_hub::auth::Role::Admin, "other-password").await;
        assert!(again.is_err(), "{kind:?}: a name is taken once");
        assert!(yingji_hub::add_user(&store, "x y", yingji_hub::auth::Role::Viewer, "password-1").await.is_err());
        assert!(yingji_hub::add_user(&store, "shorty", yingji_hub::auth::Role::Viewer, "short").await.is_err());
        let users = store.users().await.expect("users");
        assert_eq!(users.len(), 1);
        assert_eq!((users[0].name.as_str(), users[0].role.as_str()), ("li", "officer"));
        let (_, hash) = store.user_credentials("li").await.expect("creds").expect("li");
        assert!(hash.starts_with("$argon2id$"), "{kind:?}: {hash}");

        store.create_session("h1", "li", "c1", 1000, 5000).await.expect("session");
        let s = store.session("h1", 2000).await.expect("q").expect("live");
        assert_eq!((s.username.as_str(), s.role.as_str(), s.csrf.as_str()), ("li", "officer", "c1"));
        assert!(store.session("h1", 5000).await.expect("q").is_none(), "{kind:?}: expired");
        assert!(store.session("h2", 2000).await.expect("q").is_none());
        assert_eq!(store.purge_sessions(6000).await.expect("purge"), 1);
        store.create_session("h3", "li", "c3", 1000, 9_000_000_000_000).await.expect("session");
        assert!(store.remove_user("li").await.expect("remove"));
        assert!(store.session("h3", 2000).await.expect("q").is_none(), "{kind:?}: removing a user ends the sessions");
        assert!(!store.remove_user("li").await.expect("remove"));

        let subjects = vec!["user:li".to_owned(), "addr:127.0.0.1".to_owned()];
        assert_eq!(store.login_failures(&subjects, 0).await.expect("f"), 0);
        store.record_login_failure(&subjects, 1000, 0).await.expect("f");
        store.record_login_failure(&subjects[..1], 2000, 0).await.expect("f");
        assert_eq!(store.login_failures(&subjects, 0).await.expect("f"), 2);
        assert_eq!(store.login_failures(&subjects[1..], 0).await.expect("f"), 1);
        assert_eq!(store.login_failures(&subjects, 5000).await.expect("f"), 0, "{kind:?}: old failures do not count");
        store.record_login_failure(&subjects[..1], 9000, 5000).await.expect("f");
        assert_eq!(store.login_failures(&subjects[..1], 5000).await.expect("f"), 1, "{kind:?}: the count starts again");
        store.clear_login_failures(&subjects).await.expect("clear");
        assert_eq!(store.login_failures(&subjects, 0).await.expect("f"), 0);

        let drill = NewDrill {
            id: "d1".into(),
            scenario: "flood".into(),
            seed: u64::MAX,
            started_ms: 1,
            finished_ms: 2,
            passed: true,
            summary: json!({"a": 1}),
            html: "<p>x</p>".into(),
        };
        let audit = NewAudit {
            who: "sim",
            role: "officer",
            action: "drill_result",
            target: "d1",
            remote: "-",
            detail: json!({}),
        };
        assert!(store.insert_drill(&drill, &audit, 10).await.expect("insert"));
        assert!(!store.insert_drill(&NewDrill { passed: false, ..drill.clone() }, &audit, 11).await.expect("again"));
        let row = store.drill("d1").await.expect("q").expect("d1");
        assert!(row.passed, "{kind:?}: the first one stays");
        assert_eq!(row.seed, u64::MAX.to_string());
        assert_eq!(store.drills(10).await.expect("list").len(), 1);
        assert_eq!(store.drill_html("d1").await.expect("q").as_deref(), Some("<p>x</p>"));
        assert_eq!(store.audit(10).await.expect("audit").len(), 1, "{kind:?}: audited once");
        store.close().await;
    }
}
