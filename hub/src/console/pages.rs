//! The console's pages and forms. Every value from outside goes through [`esc`] (or
//! [`Html::text`]); every form carries the session's CSRF token, checked before anything
//! changes; every action goes to the audit log under the user's name.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{FixedOffset, TimeZone};
use serde::Deserialize;
use serde_json::json;

use super::html::{Html, esc, json_data};
use super::i18n::{self, Lang};
use super::session::{self, csrf_matches};
use super::{Ctx, assets, html_response};
use crate::auth::Role;
use crate::config::ConsoleMode;
use crate::http::{AppState, Caller};
use crate::store::NewAudit;

/// `ms` as Beijing time (UTC+8), the platform's time: `2026-09-14 08:00:00`.
pub fn time(ms: i64) -> String {
    let Some(offset) = FixedOffset::east_opt(8 * 3600) else { return ms.to_string() };
    match offset.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => ms.to_string(),
    }
}

fn level_class(level: Option<u8>) -> &'static str {
    match level {
        Some(1) => "lv1",
        Some(2) => "lv2",
        Some(3) => "lv3",
        Some(4) => "lv4",
        _ => "lv0",
    }
}

fn level_label(ctx: &Ctx, level: Option<u8>) -> &'static str {
    match level {
        Some(1) => ctx.t("level.1"),
        Some(2) => ctx.t("level.2"),
        Some(3) => ctx.t("level.3"),
        Some(4) => ctx.t("level.4"),
        _ => ctx.t("level.none"),
    }
}

/// A status or kind in the user's language, else as it is.
fn word(ctx: &Ctx, prefix: &str, value: &str) -> String {
    i18n::lookup(ctx.lang, &format!("{prefix}.{value}")).map(str::to_owned).unwrap_or_else(|| value.to_owned())
}

/// Which nav entry a page is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Map,
    Feed,
    Incidents,
    Dispatch,
    Resources,
    Nodes,
    Audit,
    Drills,
    Users,
}

/// The page around `main`: header with navigation, mode and language switches, the exercise
/// banner in exercise mode, and the page's data for its script.
fn layout(ctx: &Ctx, nav: Nav, title: &str, main: &str, scripts: &[&str], data: serde_json::Value) -> String {
    let mut h = Html::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>",
        ctx.lang.tag()
    );
    h.text(title).raw(" — ").text(ctx.t("app")).raw("</title>");
    let _ = write!(
        h,
        "<link rel=\"icon\" href=\"{}\"><link rel=\"stylesheet\" href=\"{}\">",
        assets::url("icon.svg"),
        assets::url("console.css")
    );
    for s in std::iter::once(&"console.js").chain(scripts) {
        let _ = write!(h, "<script src=\"{}\" defer></script>", assets::url(s));
    }
    let page = match nav {
        Nav::Map => "map",
        Nav::Feed => "feed",
        Nav::Incidents => "incidents",
        Nav::Dispatch => "dispatch",
        Nav::Resources => "resources",
        Nav::Nodes => "nodes",
        Nav::Audit => "audit",
        Nav::Drills => "drills",
        Nav::Users => "users",
    };
    let _ = write!(
        h,
        "</head><body data-page=\"{page}\" data-mode=\"{}\" data-role=\"{}\" data-lang=\"{}\">",
        ctx.mode.as_str(),
        ctx.user.role.as_str(),
        ctx.lang.code()
    );
    if ctx.exercise() {
        h.raw("<div class=\"exercise-banner\" id=\"exercise-banner\" role=\"status\">")
            .text(ctx.t("mode.banner"))
            .raw("</div>");
    }
    h.raw("<header class=\"top\"><a class=\"brand\" href=\"/\">").text(ctx.t("app")).raw("</a><nav>");
    let mut items = vec![
        (Nav::Map, "/", "nav.map"),
        (Nav::Feed, "/feed", "nav.feed"),
        (Nav::Incidents, "/incidents", "nav.incidents"),
        (Nav::Dispatch, "/dispatch", "nav.dispatch"),
        (Nav::Resources, "/resources", "nav.resources"),
        (Nav::Nodes, "/nodes", "nav.nodes"),
    ];
    if ctx.user.role >= Role::Officer {
        items.push((Nav::Audit, "/audit", "nav.audit"));
    }
    items.push((Nav::Drills, "/drills", "nav.drills"));
    if ctx.user.role >= Role::Admin {
        items.push((Nav::Users, "/users", "nav.users"));
    }
    for (n, href, key) in items {
        let current = if n == nav { " aria-current=\"page\" class=\"current\"" } else { "" };
        let _ = write!(h, "<a href=\"{href}\"{current}>");
        h.text(ctx.t(key)).raw("</a>");
    }
    h.raw("</nav><div class=\"who\">");
    // Mode switch: a form, so that no link from elsewhere can switch it.
    h.raw("<form method=\"post\" action=\"/mode\" class=\"inline mode-switch\">").csrf(&ctx.user.csrf);
    h.raw("<input type=\"hidden\" name=\"next\" value=\"").text(&format!("/{page}").replace("/map", "/")).raw("\">");
    for m in [ConsoleMode::Real, ConsoleMode::Exercise] {
        let on = if m == ctx.mode { " class=\"on\" aria-pressed=\"true\"" } else { " aria-pressed=\"false\"" };
        let key = if m == ConsoleMode::Real { "mode.real" } else { "mode.exercise" };
        let _ =
            write!(h, "<button type=\"submit\" name=\"mode\" value=\"{}\" id=\"mode-{}\"{on}>", m.as_str(), m.as_str());
        h.text(ctx.t(key)).raw("</button>");
    }
    h.raw("</form>");
    let other = if ctx.lang == Lang::Zh { "en" } else { "zh" };
    let _ = write!(
        h,
        "<a class=\"lang\" id=\"lang-switch\" href=\"/lang/{other}?next=/{}\">",
        if page == "map" { "" } else { page }
    );
    h.text(ctx.t("lang.other")).raw("</a>");
    h.raw("<span class=\"user\" title=\"").text(ctx.t("signed_in_as")).raw("\">");
    h.text(&ctx.user.name).raw(" · ").text(ctx.t(role_key(ctx.user.role))).raw("</span>");
    h.raw("<form method=\"post\" action=\"/logout\" class=\"inline\">").csrf(&ctx.user.csrf);
    h.raw("<button type=\"submit\" id=\"logout\">").text(ctx.t("logout")).raw("</button></form></div></header>");
    h.raw("<main>").raw(main).raw("</main>");
    let mut data = data;
    if let Some(o) = data.as_object_mut() {
        o.insert("csrf".into(), json!(ctx.user.csrf));
        o.insert("role".into(), json!(ctx.user.role.as_str()));
        o.insert("user".into(), json!(ctx.user.name));
        o.insert("mode".into(), json!(ctx.mode.as_str()));
        o.insert("exercise".into(), json!(ctx.exercise()));
        o.insert("lang".into(), json!(ctx.lang.code()));
        o.insert("words".into(), i18n::all(ctx.lang));
    }
    h.raw("<script type=\"application/json\" id=\"page-data\">").raw(&json_data(&data)).raw("</script>");
    h.raw("</body></html>");
    h.finish()
}

fn role_key(role: Role) -> &'static str {
    match role {
        Role::Viewer => "role.viewer",
        Role::Officer => "role.officer",
        Role::Commander => "role.commander",
        Role::Admin => "role.admin",
    }
}

fn page(ctx: &Ctx, nav: Nav, title: &str, main: &str, scripts: &[&str], data: serde_json::Value) -> Response {
    html_response(StatusCode::OK, layout(ctx, nav, title, main, scripts, data), &ctx.console)
}

/// An error page in the console's frame.
fn error_page(ctx: &Ctx, status: StatusCode, message: &str) -> Response {
    let main = format!("<section class=\"error\"><h1>{}</h1><p>{}</p></section>", status.as_u16(), esc(message));
    html_response(status, layout(ctx, Nav::Map, message, &main, &[], json!({})), &ctx.console)
}

fn forbidden(ctx: &Ctx) -> Response {
    error_page(ctx, StatusCode::FORBIDDEN, ctx.t("err.forbidden"))
}

/// The refusal of a form whose CSRF token is not the session's (nothing has changed yet).
fn check_csrf(ctx: &Ctx, sent: &str) -> Option<Response> {
    (!csrf_matches(&ctx.user.csrf, Some(sent))).then(|| error_page(ctx, StatusCode::FORBIDDEN, ctx.t("err.csrf")))
}

/// The refusal for a user whose role is below `role`.
fn need(ctx: &Ctx, role: Role) -> Option<Response> {
    (ctx.user.role < role).then(|| forbidden(ctx))
}

fn caller(ctx: &Ctx) -> Caller {
    Caller { role: ctx.user.role, name: ctx.user.name.clone() }
}

fn audit<'a>(
    ctx: &'a Ctx,
    action: &'a str,
    target: &'a str,
    remote: &'a str,
    detail: serde_json::Value,
) -> NewAudit<'a> {
    NewAudit { who: &ctx.user.name, role: ctx.user.role.as_str(), action, target, remote, detail }
}

fn storage_error(ctx: &Ctx, e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "a console page failed in the database");
    error_page(ctx, StatusCode::SERVICE_UNAVAILABLE, "the database did not answer; try again")
}

macro_rules! db {
    ($ctx:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return storage_error(&$ctx, e),
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Login, logout, switches

#[derive(Debug, Deserialize, Default)]
pub(super) struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
    bye: Option<String>,
}

fn login_html(lang: Lang, csrf: &str, next: &str, message: Option<&str>) -> String {
    let t = |k| i18n::t(lang, k);
    let mut h = Html::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>",
        lang.tag()
    );
    h.text(t("login.title")).raw(" — ").text(t("app")).raw("</title>");
    let _ = write!(
        h,
        "<link rel=\"icon\" href=\"{}\"><link rel=\"stylesheet\" href=\"{}\"></head><body class=\"login-page\" data-page=\"login\">",
        assets::url("icon.svg"),
        assets::url("console.css")
    );
    h.raw("<main class=\"login\"><h1>").text(t("app")).raw("</h1><h2>").text(t("login.title")).raw("</h2>");
    if let Some(m) = message {
        h.raw("<p class=\"notice\" id=\"login-message\" role=\"alert\">").text(m).raw("</p>");
    }
    h.raw("<form method=\"post\" action=\"/login\" id=\"login-form\">").csrf(csrf);
    h.raw("<input type=\"hidden\" name=\"next\" value=\"").text(next).raw("\">");
    h.raw("<label>")
        .text(t("login.name"))
        .raw("<input name=\"name\" id=\"name\" autocomplete=\"username\" required autofocus></label>");
    h.raw("<label>").text(t("login.password"));
    h.raw("<input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>");
    h.raw("<button type=\"submit\" id=\"login-submit\">").text(t("login")).raw("</button></form>");
    let other = if lang == Lang::Zh { "en" } else { "zh" };
    let _ = write!(
        h,
        "<p><a id=\"lang-switch\" href=\"/lang/{other}?next=/login%3Fnext%3D{}\">",
        super::url_encode(&super::url_encode(next))
    );
    h.text(t("lang.other")).raw("</a></p></main></body></html>");
    h.finish()
}

/// The login form; it sets the login CSRF cookie (double submit) if there is none.
pub(super) async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let lang = super::lang_of(&headers);
    let next = session::local_path(q.next.as_deref());
    if let Ok(Some(_)) = super::session_of(&state, &headers).await {
        return Redirect::to(&next).into_response();
    }
    let message = if q.expired.is_some() {
        Some(i18n::t(lang, "login.expired"))
    } else if q.bye.is_some() {
        Some(i18n::t(lang, "login.bye"))
    } else {
        None
    };
    login_response(&state, &headers, lang, &next, message, StatusCode::OK)
}

fn login_response(
    state: &AppState,
    headers: &HeaderMap,
    lang: Lang,
    next: &str,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let existing = session::cookie(headers, session::LOGIN_COOKIE).filter(|v| v.len() >= 32).map(str::to_owned);
    let token = existing.clone().unwrap_or_else(session::new_secret);
    let mut response = html_response(status, login_html(lang, &token, next, message), &state.console);
    if existing.is_none() {
        let cookie = session::set_cookie(session::LOGIN_COOKIE, &token, 3600, state.console.config.secure_cookie);
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// Checks a login: the double-submit CSRF token, then the slowdown for earlier failures (this
/// request only waits), then the password (argon2id, off the async threads; an unknown user is
/// checked against a dummy hash so that the answer takes as long).
pub(super) async fn login(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = super::lang_of(&headers);
    let Ok(Form(f)) = form else {
        return login_response(&state, &headers, lang, "/", Some(i18n::t(lang, "err.bad")), StatusCode::BAD_REQUEST);
    };
    let next = session::local_path(f.next.as_deref());
    if !csrf_matches(session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or_default(), Some(&f.csrf)) {
        let mut response = login_response(
            &state,
            &HeaderMap::new(),
            lang,
            &next,
            Some(i18n::t(lang, "login.stale")),
            StatusCode::FORBIDDEN,
        );
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return response;
    }
    let name: String = f.name.trim().chars().take(64).collect();
    let subjects = session::failure_subjects(&name, remote.ip());
    let now = chrono::Utc::now().timestamp_millis();
    let failures = match state.store.login_failures(&subjects, now - session::FAILURE_WINDOW_MS).await {
        Ok(n) => n,
        Err(e) => return crate::http::ApiError::from(e).into_response(),
    };
    tokio::time::sleep(session::login_delay(failures)).await;
    let credentials = match state.store.user_credentials(&name).await {
        Ok(c) => c,
        Err(e) => return crate::http::ApiError::from(e).into_response(),
    };
    let (role, hash) = match &credentials {
        Some((role, hash)) => (role.parse::<Role>().ok(), hash.clone()),
        None => (None, super::users::dummy_hash().to_owned()),
    };
    let password = f.password;
    let verified =
        tokio::task::spawn_blocking(move || super::users::verify_password(&password, &hash)).await.unwrap_or(false);
    let now = chrono::Utc::now().timestamp_millis();
    let remote_text = remote.to_string();
    let (Some(role), true) = (role, verified) else {
        if let Err(e) = state.store.record_login_failure(&subjects, now, now - session::FAILURE_WINDOW_MS).await {
            return crate::http::ApiError::from(e).into_response();
        }
        let _ = state
            .store
            .audit_one(
                &NewAudit {
                    who: &name,
                    role: "-",
                    action: "login_failed",
                    target: "console",
                    remote: &remote_text,
                    detail: json!({"failures_before": failures, "known_user": credentials.is_some()}),
                },
                now,
            )
            .await;
        return login_response(
            &state,
            &headers,
            lang,
            &next,
            Some(i18n::t(lang, "login.failed")),
            StatusCode::UNAUTHORIZED,
        );
    };
    let _ = state.store.clear_login_failures(&subjects).await;
    let id = session::new_secret();
    let csrf = session::new_secret();
    let ttl = state.console.config.session_ttl_s;
    let expires = now + i64::try_from(ttl).unwrap_or(i64::MAX / 2_000) * 1000;
    if let Err(e) = state.store.create_session(&crate::auth::hash(&id), &name, &csrf, now, expires).await {
        return crate::http::ApiError::from(e).into_response();
    }
    let _ = state.store.purge_sessions(now).await;
    let _ = state
        .store
        .audit_one(
            &NewAudit {
                who: &name,
                role: role.as_str(),
                action: "login",
                target: "console",
                remote: &remote_text,
                detail: json!({"expires_ms": expires}),
            },
            now,
        )
        .await;
    let secure = state.console.config.secure_cookie;
    let mut response = Redirect::to(&next).into_response();
    for cookie in [
        session::set_cookie(session::COOKIE, &id, ttl, secure),
        session::set_cookie(session::LOGIN_COOKIE, "", 0, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    super::secure(response, &state.console)
}

#[derive(Debug, Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ctx: Ctx,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Some(r) = check_csrf(&ctx, &sent) {
        return r;
    }
    let now = chrono::Utc::now().timestamp_millis();
    db!(ctx, state.store.delete_session(&ctx.user.id_hash).await);
    let _ = state.store.audit_one(&audit(&ctx, "logout", "console", &remote.to_string(), json!({})), now).await;
    let mut response = Redirect::to("/login?bye=1").into_response();
    let cookie = session::set_cookie(session::COOKIE, "", 0, state.console.config.secure_cookie);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    super::secure(response, &state.console)
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// Switches the language (a preference, not an action: a plain link).
pub(super) async fn set_lang(
    State(state): State<AppState>,
    Path(lang): Path<String>,
    q: Result<Query<NextQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let lang = Lang::parse(&lang).unwrap_or_default();
    let next = session::local_path(q.ok().and_then(|Query(q)| q.next).as_deref());
    let mut response = Redirect::to(&next).into_response();
    let cookie = format!("{}={}; Max-Age=31536000; Path=/; SameSite=Strict", session::LANG_COOKIE, lang.code());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    super::secure(response, &state.console)
}

#[derive(Debug, Deserialize)]
pub(super) struct ModeForm {
    #[serde(default)]
    csrf: String,
    mode: String,
    next: Option<String>,
}

/// Switches between real and exercise data.
pub(super) async fn set_mode(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ctx: Ctx,
    form: Result<Form<ModeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else { return error_page(&ctx, StatusCode::BAD_REQUEST, ctx.t("err.bad")) };
    if let Some(r) = check_csrf(&ctx, &f.csrf) {
        return r;
    }
    let Some(mode) = ConsoleMode::parse(&f.mode) else {
        return error_page(&ctx, StatusCode::BAD_REQUEST, "mode is real or exercise");
    };
    let now = chrono::Utc::now().timestamp_millis();
    let _ = state.store.audit_one(&audit(&ctx, "mode", mode.as_str(), &remote.to_string(), json!({})), now).await;
    let mut response = Redirect::to(&session::local_path(f.next.as_deref())).into_response();
    let cookie =
        format!("{}={}; Max-Age=31536000; Path=/; HttpOnly; SameSite=Strict", session::MODE_COOKIE, mode.as_str());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    super::secure(response, &state.console)
}

// ---------------------------------------------------------------------------------------------
// Map and feed (drawn by their scripts from the API and the stream)

pub(super) async fn map_page(State(state): State<AppState>, ctx: Ctx) -> Response {
    let mut h = Html::new();
    h.raw("<section class=\"map-page\"><div class=\"map-wrap\" id=\"map-wrap\">");
    h.raw("<canvas id=\"map\" role=\"img\" aria-label=\"").text(ctx.t("nav.map")).raw("\"></canvas>");
    h.raw("<div class=\"map-tools\">");
    for (id, label, key) in
        [("zoom-in", "+", "map.zoom_in"), ("zoom-out", "−", "map.zoom_out"), ("zoom-reset", "⤢", "map.reset")]
    {
        let _ = write!(h, "<button type=\"button\" id=\"{id}\" title=\"");
        h.text(ctx.t(key)).raw("\">").text(label).raw("</button>");
    }
    h.raw("</div><div id=\"tooltip\" class=\"tooltip\" hidden></div></div>");
    h.raw("<aside class=\"legend\"><h2>").text(ctx.t("level")).raw("</h2><ul>");
    for l in [Some(1), Some(2), Some(3), Some(4), None] {
        let _ = write!(h, "<li><span class=\"swatch {}\"></span>", level_class(l));
        h.text(level_label(&ctx, l)).raw("</li>");
    }
    h.raw("</ul><ul class=\"markers\">");
    for (class, key) in [
        ("m-incident", "map.incident"),
        ("m-warning", "map.warning"),
        ("m-station-on", "map.station.on"),
        ("m-station-off", "map.station.off"),
        ("m-team", "map.team"),
    ] {
        let _ = write!(h, "<li><span class=\"marker {class}\"></span>");
        h.text(ctx.t(key)).raw("</li>");
    }
    h.raw("</ul><p id=\"map-status\" class=\"status\"></p>");
    if state.regions.is_empty() {
        h.raw("<p class=\"notice\">").text(ctx.t("map.no_regions")).raw("</p>");
    }
    h.raw("</aside></section>");
    let tiles = ctx.console.config.tiles_url.clone();
    page(&ctx, Nav::Map, ctx.t("nav.map"), &h.finish(), &["map.js"], json!({"tiles": tiles}))
}

pub(super) async fn feed(State(state): State<AppState>, ctx: Ctx) -> Response {
    let nodes = db!(ctx, state.store.nodes().await);
    let mut h = Html::new();
    h.raw("<section><h1>").text(ctx.t("nav.feed")).raw(" <span id=\"live\" class=\"live\"></span></h1>");
    h.raw("<form class=\"filters\" id=\"feed-filters\"><label>").text(ctx.t("feed.node"));
    h.raw("<select id=\"f-node\"><option value=\"\">").text(ctx.t("feed.all")).raw("</option>");
    for n in &nodes {
        h.raw("<option value=\"").text(&n.id).raw("\">").text(&n.id).raw("</option>");
    }
    h.raw("</select></label><label>").text(ctx.t("feed.kind"));
    h.raw("<select id=\"f-kind\"><option value=\"\">").text(ctx.t("feed.all")).raw("</option>");
    for k in ["report", "warning", "stats", "device", "media", "assessment", "order"] {
        let _ = write!(h, "<option value=\"{k}\">");
        h.text(&word(&ctx, "kind", k)).raw("</option>");
    }
    h.raw("</select></label><label>").text(ctx.t("feed.level"));
    h.raw("<select id=\"f-level\"><option value=\"\">").text(ctx.t("feed.all")).raw("</option>");
    for l in 1..=4u8 {
        let _ = write!(h, "<option value=\"{l}\">");
        h.text(crate::http::level_name(l)).raw(" ").text(ctx.t("feed.level_at_least")).raw("</option>");
    }
    h.raw("</select></label></form>");
    h.raw("<table class=\"grid feed\"><thead><tr>");
    for k in ["feed.time", "feed.node", "feed.kind", "feed.level", "feed.region", "feed.incident", "feed.detail"] {
        h.el("th", "", ctx.t(k));
    }
    h.raw("</tr></thead><tbody id=\"feed-body\"></tbody></table></section>");
    page(&ctx, Nav::Feed, ctx.t("nav.feed"), &h.finish(), &[], json!({}))
}

// ---------------------------------------------------------------------------------------------
// Incidents

pub(super) async fn incidents(State(state): State<AppState>, ctx: Ctx) -> Response {
    let rows = db!(ctx, state.store.incidents(Some(ctx.exercise())).await);
    let progress = db!(ctx, state.store.incident_progress().await);
    let closed = |id: &str| {
        progress
            .iter()
            .find(|p| p.incident == id && p.exercise == ctx.exercise())
            .is_some_and(|p| p.regions > 0 && p.final_regions == p.regions)
    };
    let mut h = Html::new();
    h.raw("<section><h1>").text(ctx.t("nav.incidents")).raw("</h1>");
    for (key, want_closed, id) in [("inc.open", false, "open-incidents"), ("inc.closed", true, "closed-incidents")] {
        h.raw("<h2>").text(ctx.t(key)).raw("</h2>");
        let list: Vec<_> = rows.iter().filter(|r| closed(&r.id) == want_closed).collect();
        if list.is_empty() {
            h.raw("<p class=\"empty\">").text(ctx.t("inc.none")).raw("</p>");
            continue;
        }
        let _ = write!(h, "<table class=\"grid\" id=\"{id}\"><thead><tr>");
        for k in ["inc.id", "inc.hazard", "level", "inc.reports", "inc.first", "inc.last"] {
            h.el("th", "", ctx.t(k));
        }
        h.raw("</tr></thead><tbody>");
        for r in list {
            h.raw("<tr><td><a href=\"/incidents/")
                .text(&super::url_encode(&r.id))
                .raw("\">")
                .text(&r.id)
                .raw("</a></td>");
            h.el("td", "", &r.hazard);
            let _ = write!(h, "<td><span class=\"badge {}\">", level_class(r.level));
            h.text(level_label(&ctx, r.level)).raw("</span></td>");
            h.el("td", "class=\"num\"", &r.reports.to_string()).el("td", "", &time(r.first_ms)).el(
                "td",
                "",
                &time(r.last_ms),
            );
            h.raw("</tr>");
        }
        h.raw("</tbody></table>");
    }
    h.raw("</section>");
    page(&ctx, Nav::Incidents, ctx.t("nav.incidents"), &h.finish(), &[], json!({}))
}

const CHART_PEOPLE: &[&str] = &["deaths", "missing", "injured"];
const CHART_AFFECTED: &[&str] = &["affected", "relocated", "needing_aid"];

/// Totals over time from the incident's report events: after each report, the sum over regions
/// of each region's latest report (by observed time, as the statistics count).
fn series(events: &[crate::store::EventRow]) -> Vec<(i64, BTreeMap<String, f64>)> {
    let mut latest: BTreeMap<String, (String, serde_json::Value)> = BTreeMap::new();
    let mut reports: Vec<_> = events.iter().filter(|e| e.kind == "report").collect();
    reports.sort_by_key(|e| e.at_ms);
    let mut out = Vec::new();
    for e in reports {
        let observed = e.body.get("observed_at").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let figures = e.body.get("figures").cloned().unwrap_or_default();
        let region = if e.region.is_empty() { "?".to_owned() } else { e.region.clone() };
        match latest.get(&region) {
            Some((seen, _)) if *seen > observed => {}
            _ => {
                latest.insert(region, (observed, figures));
            }
        }
        let mut totals = BTreeMap::new();
        for (_, f) in latest.values() {
            for k in CHART_PEOPLE.iter().chain(CHART_AFFECTED) {
                *totals.entry((*k).to_owned()).or_insert(0.0) += f.get(*k).and_then(|v| v.as_f64()).unwrap_or(0.0);
            }
        }
        out.push((e.at_ms, totals));
    }
    out
}

/// A line chart as SVG (no script, no inline style): one polyline per indicator.
fn chart(ctx: &Ctx, id: &str, points: &[(i64, BTreeMap<String, f64>)], keys: &[&str]) -> String {
    let (w, hgt, pad) = (640.0, 200.0, 36.0);
    let mut h = Html::new();
    if points.is_empty() {
        h.raw("<p class=\"empty\">").text(ctx.t("inc.none")).raw("</p>");
        return h.finish();
    }
    let t0 = points.first().map(|p| p.0).unwrap_or(0) as f64;
    let t1 = points.last().map(|p| p.0).unwrap_or(0) as f64;
    let max = points
        .iter()
        .flat_map(|(_, v)| keys.iter().map(move |k| v.get(*k).copied().unwrap_or(0.0)))
        .fold(1.0, f64::max);
    let x = |t: i64| if t1 > t0 { pad + (t as f64 - t0) / (t1 - t0) * (w - 2.0 * pad) } else { w / 2.0 };
    let y = |v: f64| hgt - pad + 10.0 - v / max * (hgt - 2.0 * pad);
    let _ = write!(
        h,
        "<figure class=\"chart\" id=\"{id}\"><svg viewBox=\"0 0 {w} {hgt}\" width=\"{w}\" height=\"{hgt}\" role=\"img\">\
         <line class=\"axis\" x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/><line class=\"axis\" x1=\"{pad}\" y1=\"{top}\" x2=\"{pad}\" y2=\"{b}\"/>\
         <text class=\"tick\" x=\"2\" y=\"{top}\">{max}</text><text class=\"tick\" x=\"2\" y=\"{b}\">0</text>",
        b = hgt - pad + 10.0,
        r = w - pad,
        top = y(max),
        max = max
    );
    for (i, k) in keys.iter().enumerate() {
        let pts: Vec<String> =
            points.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(v.get(*k).copied().unwrap_or(0.0)))).collect();
        let _ = write!(h, "<polyline class=\"s{i}\" points=\"{}\"/>", pts.join(" "));
        for p in &pts {
            if let Some((px, py)) = p.split_once(',') {
                let _ = write!(h, "<circle class=\"s{i}\" cx=\"{px}\" cy=\"{py}\" r=\"2.5\"/>");
            }
        }
    }
    let _ = write!(
        h,
        "<text class=\"tick\" x=\"{pad}\" y=\"{hgt}\">{}</text><text class=\"tick end\" x=\"{}\" y=\"{hgt}\">{}</text></svg><figcaption>",
        esc(&time(t0 as i64)),
        w - pad,
        esc(&time(t1 as i64))
    );
    for (i, k) in keys.iter().enumerate() {
        let last = points.last().and_then(|(_, v)| v.get(*k).copied()).unwrap_or(0.0);
        let _ = write!(h, "<span class=\"key s{i}\"></span>");
        h.text(&word(ctx, "fig", k)).raw(" ").text(&last.to_string()).raw(" ");
    }
    h.raw("</figcaption></figure>");
    h.finish()
}

pub(super) async fn incident(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let exercise = ctx.exercise();
    let Some(row) = db!(ctx, state.store.incident(&id, exercise).await) else {
        return error_page(&ctx, StatusCode::NOT_FOUND, ctx.t("err.not_found"));
    };
    let reports = db!(ctx, state.store.report_rows(&id, exercise).await);
    let rolled = crate::picture::rollup(&reports, &state.regions);
    let events = db!(ctx, state.store.incident_events(&id, exercise, 2000).await);
    let assessments = db!(
        ctx,
        state
            .store
            .assessments(&crate::store::AssessmentQuery {
                subject: Some(id.clone()),
                exercise: Some(exercise),
                limit: 1000
            })
            .await
    );
    let warnings: Vec<_> = db!(ctx, state.store.warnings(false, Some(exercise)).await)
        .into_iter()
        .filter(|w| w.incident.as_deref() == Some(id.as_str()))
        .collect();
    let orders: Vec<_> =
        db!(ctx, state.store.orders(Some(&id), 1000).await).into_iter().filter(|o| o.exercise == exercise).collect();
    let caps: Vec<_> = db!(ctx, state.store.cap_index(Some(exercise), 10_000).await)
        .into_iter()
        .filter(|c| {
            assessments.iter().any(|a| a.cap_id.as_deref() == Some(c.identifier.as_str()))
                || warnings.iter().any(|w| w.cap_id.as_deref() == Some(c.identifier.as_str()))
                || c.summary.get("incident").and_then(|v| v.as_str()) == Some(id.as_str())
        })
        .collect();

    let mut h = Html::new();
    h.raw("<section class=\"incident\"><h1>").text(&id).raw(" ");
    let _ = write!(h, "<span class=\"badge {}\" id=\"incident-level\">", level_class(row.level));
    h.text(level_label(&ctx, row.level)).raw("</span></h1><p class=\"facts\">");
    h.text(ctx.t("inc.hazard")).raw(": ").text(&row.hazard).raw(" · ").text(ctx.t("inc.reports")).raw(": ");
    h.text(&row.reports.to_string()).raw(" · ").text(ctx.t("inc.first")).raw(": ").text(&time(row.first_ms));
    h.raw(" · ").text(ctx.t("inc.last")).raw(": ").text(&time(row.last_ms)).raw("</p>");

    if ctx.user.role >= Role::Commander {
        h.raw("<details class=\"set-level\"><summary>").text(ctx.t("inc.set_level")).raw("</summary>");
        h.raw("<form method=\"post\" action=\"/incidents/")
            .text(&super::url_encode(&id))
            .raw("/level\" id=\"level-form\">");
        h.csrf(&ctx.user.csrf).raw("<select name=\"level\">");
        for l in 1..=4u8 {
            let _ = write!(h, "<option value=\"{l}\">");
            h.text(level_label(&ctx, Some(l))).raw("</option>");
        }
        h.raw("<option value=\"\">")
            .text(ctx.t("inc.clear"))
            .raw("</option></select><label>")
            .text(ctx.t("inc.reason"));
        h.raw("<input name=\"reason\" required maxlength=\"2000\"></label><button type=\"submit\">")
            .text(ctx.t("inc.apply"));
        h.raw("</button></form></details>");
    }

    // Statistics by division, nation first.
    h.raw("<h2>").text(ctx.t("inc.stats")).raw("</h2><table class=\"grid\" id=\"stats\"><thead><tr>");
    h.el("th", "", ctx.t("feed.region"));
    let figs = ["deaths", "missing", "injured", "affected", "relocated", "houses_collapsed", "direct_loss_cny"];
    for f in figs {
        h.el("th", "", &word(&ctx, "fig", f));
    }
    h.raw("</tr></thead><tbody>");
    let mut divisions: Vec<_> = rolled.values().collect();
    divisions.sort_by_key(|d| (state.regions.path(&d.division).len(), d.division.clone()));
    for d in divisions {
        let totals = serde_json::to_value(d.totals).unwrap_or_default();
        h.raw("<tr><td>").text(&d.division).raw(" ").text(&d.name).raw("</td>");
        for f in figs {
            let v = totals.get(f).map(|v| v.to_string()).unwrap_or_else(|| "—".into());
            h.el("td", "class=\"num\"", &v);
        }
        h.raw("</tr>");
    }
    h.raw("</tbody></table>");

    let s = series(&events);
    h.raw("<h2>").text(ctx.t("inc.chart")).raw("</h2><div class=\"charts\">");
    h.raw(&chart(&ctx, "chart-people", &s, CHART_PEOPLE)).raw(&chart(&ctx, "chart-affected", &s, CHART_AFFECTED));
    h.raw("</div>");

    // The timeline: reports, warnings, assessments (with their explanation), orders.
    let mut entries: Vec<(i64, String)> = Vec::new();
    for e in &events {
        let mut t = Html::new();
        let kind = word(&ctx, "kind", &e.kind);
        let _ = write!(t, "<li class=\"tl-{}\"><time>", esc(&e.kind));
        t.text(&time(e.at_ms)).raw("</time> <b>").text(&kind).raw("</b> ").text(&e.node).raw(" · ").text(&e.region);
        if e.kind == "report" {
            let stage = e.body.get("stage").and_then(|v| v.as_str()).unwrap_or_default();
            t.raw(" · ").text(stage);
            if let Some(f) = e.body.get("figures").filter(|f| f.as_object().is_some_and(|o| !o.is_empty())) {
                t.raw(" <code>").text(&f.to_string()).raw("</code>");
            }
            if let Some(text) = e.body.get("text").and_then(|v| v.as_str()).filter(|s| !s.is_empty()) {
                t.raw("<blockquote class=\"field-text\">").text(text).raw("</blockquote>");
            }
        } else if e.kind == "warning" {
            let colour = e.body.get("colour").and_then(|v| v.as_str()).unwrap_or("cleared");
            t.raw(" · ")
                .text(colour)
                .raw(" · ")
                .text(e.body.get("station").and_then(|v| v.as_str()).unwrap_or_default());
        }
        t.raw("</li>");
        entries.push((e.at_ms, t.finish()));
    }
    for a in &assessments {
        let mut t = Html::new();
        let _ = write!(t, "<li class=\"tl-assessment\"><time>");
        t.text(&time(a.at_ms)).raw("</time> <b>").text(&word(&ctx, "kind", "assessment")).raw("</b> ");
        let _ = write!(t, "<span class=\"badge {}\">", level_class(a.level));
        t.text(level_label(&ctx, a.level)).raw("</span> ").text(&a.change).raw(" · ").text(ctx.t("inc.rule")).raw(": ");
        t.text(a.rule.as_deref().unwrap_or("—")).raw("<div class=\"explain\">").text(&a.reason).raw("</div>");
        if a.inputs.as_object().is_some_and(|o| !o.is_empty()) {
            t.raw("<div class=\"explain\">")
                .text(ctx.t("inc.inputs"))
                .raw(": <code>")
                .text(&a.inputs.to_string())
                .raw("</code></div>");
        }
        t.raw("</li>");
        entries.push((a.at_ms, t.finish()));
    }
    for o in &orders {
        let mut t = Html::new();
        t.raw("<li class=\"tl-order\"><time>")
            .text(&time(o.issued_ms))
            .raw("</time> <b>")
            .text(&word(&ctx, "kind", "order"));
        t.raw("</b> ")
            .text(&o.team)
            .raw(" · ")
            .text(&o.capability)
            .raw(" · ")
            .text(&word(&ctx, "st", &o.status))
            .raw("</li>");
        entries.push((o.issued_ms, t.finish()));
    }
    entries.sort_by_key(|e| e.0);
    h.raw("<h2>").text(ctx.t("inc.timeline")).raw("</h2><ol class=\"timeline\" id=\"timeline\">");
    for (_, e) in &entries {
        h.raw(e);
    }
    h.raw("</ol>");

    h.raw("<h2>").text(ctx.t("inc.cap")).raw("</h2>");
    if caps.is_empty() {
        h.raw("<p class=\"empty\">").text(ctx.t("inc.none")).raw("</p>");
    } else {
        h.raw("<ul class=\"cap\" id=\"cap\">");
        for c in &caps {
            h.raw("<li><a href=\"/api/v1/cap/")
                .text(&super::url_encode(&c.identifier))
                .raw(".xml\">")
                .text(&c.identifier);
            h.raw("</a> ").text(&c.msg_type).raw(" · ").text(&time(c.sent_ms));
            if let Some(hl) = c.summary.get("headline").and_then(|v| v.as_str()) {
                h.raw(" · ").text(hl);
            }
            h.raw("</li>");
        }
        h.raw("</ul>");
    }
    h.raw("</section>");
    page(&ctx, Nav::Incidents, &id, &h.finish(), &[], json!({"incident": id}))
}

#[derive(Debug, Deserialize)]
pub(super) struct LevelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    reason: String,
}

pub(super) async fn set_level(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ctx: Ctx,
    Path(id): Path<String>,
    form: Result<Form<LevelForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else { return error_page(&ctx, StatusCode::BAD_REQUEST, ctx.t("err.bad")) };
    if let Some(r) = check_csrf(&ctx, &f.csrf) {
        return r;
    }
    if let Some(r) = need(&ctx, Role::Commander) {
        return r;
    }
    let level = match f.level.as_str() {
        "" => None,
        l => match l.parse::<u8>() {
            Ok(l) => Some(l),
            Err(_) => return error_page(&ctx, StatusCode::BAD_REQUEST, "level is 1..=4 or empty"),
        },
    };
    match crate::http::apply_level(&state, &caller(&ctx), &remote.to_string(), &id, ctx.exercise(), level, &f.reason)
        .await
    {
        Ok(_) => Redirect::to(&format!("/incidents/{}", super::url_encode(&id))).into_response(),
        Err(e) => error_page(&ctx, e.status(), e.message()),
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch board (drawn by its script from the API and the stream)

pub(super) async fn dispatch(ctx: Ctx) -> Response {
    let mut h = Html::new();
    h.raw("<section class=\"board\"><h1>")
        .text(ctx.t("nav.dispatch"))
        .raw(" <span id=\"live\" class=\"live\"></span></h1>");
    if ctx.user.role < Role::Officer {
        h.raw("<p class=\"notice\">").text(ctx.t("disp.readonly")).raw("</p>");
    }
    h.raw("<p id=\"board-message\" class=\"notice\" hidden role=\"alert\"></p>");
    h.raw("<h2>").text(ctx.t("disp.orders")).raw("</h2><table class=\"grid\" id=\"orders\"><thead><tr>");
    for k in ["feed.incident", "disp.team", "disp.capability", "disp.status", "disp.elapsed", "disp.ack_within"] {
        h.el("th", "", ctx.t(k));
    }
    h.raw("</tr></thead><tbody id=\"orders-body\"></tbody></table>");
    h.raw("<h2>").text(ctx.t("disp.proposals")).raw("</h2><div id=\"proposals\"></div>");
    h.raw("<noscript>JavaScript is needed for the live board; the API has the same data at /api/v1/proposals.</noscript></section>");
    page(&ctx, Nav::Dispatch, ctx.t("nav.dispatch"), &h.finish(), &[], json!({}))
}

// ---------------------------------------------------------------------------------------------
// Resources and import

const SHOWN: usize = 500;

#[derive(Debug, Deserialize, Default)]
pub(super) struct ResourcesQuery {
    imported: Option<String>,
}

pub(super) async fn resources(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Result<Query<ResourcesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let teams = db!(ctx, state.store.teams().await);
    let stockpiles = db!(ctx, state.store.stockpiles().await);
    let hazards = db!(ctx, state.store.places(crate::resources::Kind::Hazards).await);
    let targets = db!(ctx, state.store.places(crate::resources::Kind::Targets).await);
    let mut h = Html::new();
    h.raw("<section><h1>").text(ctx.t("nav.resources")).raw("</h1>");
    if let Some(n) = &q.imported {
        h.raw("<p class=\"notice\" id=\"import-result\">").text(ctx.t("res.imported")).raw(": ").text(n).raw("</p>");
    }
    let more = |h: &mut Html, n: usize| {
        if n > SHOWN {
            h.raw("<p class=\"more\">").text(&(n - SHOWN).to_string()).raw(" ").text(ctx.t("res.more")).raw("</p>");
        }
    };
    h.raw("<h2>").text(ctx.t("res.teams")).raw("</h2><table class=\"grid\" id=\"teams\"><thead><tr>");
    for k in ["res.id", "res.name", "res.node", "res.province", "disp.capability", "res.size", "disp.status"] {
        h.el("th", "", ctx.t(k));
    }
    h.raw("</tr></thead><tbody>");
    for t in teams.iter().take(SHOWN) {
        h.raw("<tr>").el("td", "", &t.id).el("td", "", &t.name).el("td", "", &t.node).el("td", "", &t.province);
        h.el("td", "", &t.capabilities.join(", ")).el("td", "class=\"num\"", &t.size.to_string());
        let _ = write!(h, "<td class=\"st-{}\">", esc(&t.status));
        h.text(&word(&ctx, "st", &t.status)).raw("</td></tr>");
    }
    h.raw("</tbody></table>");
    more(&mut h, teams.len());
    h.raw("<h2>").text(ctx.t("res.stockpiles")).raw("</h2><table class=\"grid\" id=\"stockpiles\"><thead><tr>");
    for k in ["res.id", "res.name", "res.province", "disp.items"] {
        h.el("th", "", ctx.t(k));
    }
    h.raw("</tr></thead><tbody>");
    for s in stockpiles.iter().take(SHOWN) {
        let items: Vec<String> = s.items.iter().map(|(k, v)| format!("{k} {v}")).collect();
        h.raw("<tr>").el("td", "", &s.id).el("td", "", &s.name).el("td", "", &s.province).el(
            "td",
            "",
            &items.join(", "),
        );
        h.raw("</tr>");
    }
    h.raw("</tbody></table>");
    more(&mut h, stockpiles.len());
    for (key, id, list, extra) in
        [("res.hazards", "hazards", &hazards, "level"), ("res.targets", "targets", &targets, "people")]
    {
        let _ = write!(h, "<h2>{}</h2><table class=\"grid\" id=\"{id}\"><thead><tr>", esc(ctx.t(key)));
        for k in ["res.id", "res.name", "res.kind"] {
            h.el("th", "", ctx.t(k));
        }
        h.el("th", "", if extra == "level" { ctx.t("res.grade") } else { ctx.t("res.people") });
        h.raw("</tr></thead><tbody>");
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        };
        for p in list.iter().take(SHOWN) {
            h.raw("<tr>").el("td", "", &text(&p["id"])).el("td", "", &text(&p["name"])).el("td", "", &text(&p["kind"]));
            h.el("td", "", &text(&p[extra])).raw("</tr>");
        }
        h.raw("</tbody></table>");
        more(&mut h, list.len());
    }
    if ctx.user.role >= Role::Admin {
        h.raw("<h2>")
            .text(ctx.t("res.import"))
            .raw("</h2><form method=\"post\" action=\"/resources/import\" id=\"import-form\" class=\"stack\">");
        h.csrf(&ctx.user.csrf).raw("<label>").text(ctx.t("res.kind")).raw("<select name=\"kind\">");
        for k in ["teams", "stockpiles", "hazards", "targets"] {
            let _ = write!(h, "<option value=\"{k}\">");
            h.text(&word(&ctx, "res", k)).raw("</option>");
        }
        h.raw("</select></label><label>").text(ctx.t("res.import_help"));
        h.raw("<input type=\"file\" id=\"import-file\" accept=\".csv,.geojson,.json,text/csv,application/geo+json\">");
        h.raw("<textarea name=\"text\" id=\"import-text\" rows=\"8\" required></textarea></label><button type=\"submit\">");
        h.text(ctx.t("res.import")).raw("</button></form>");
    }
    h.raw("</section>");
    page(&ctx, Nav::Resources, ctx.t("nav.resources"), &h.finish(), &[], json!({}))
}

#[derive(Debug, Deserialize)]
pub(super) struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    text: String,
}

pub(super) async fn import(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ctx: Ctx,
    form: Result<Form<ImportForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else { return error_page(&ctx, StatusCode::BAD_REQUEST, ctx.t("err.bad")) };
    if let Some(r) = check_csrf(&ctx, &f.csrf) {
        return r;
    }
    if let Some(r) = need(&ctx, Role::Admin) {
        return r;
    }
    let Some(kind) = crate::resources::Kind::parse(&f.kind) else {
        return error_page(&ctx, StatusCode::BAD_REQUEST, "kind is teams, stockpiles, hazards or targets");
    };
    let content_type = if f.text.trim_start().starts_with('{') { "application/geo+json" } else { "text/csv" };
    let regions = state.regions.clone();
    let locate =
        move |lat: f64, lon: f64| regions.locate(lat, lon).map(|d| crate::picture::province_of(&regions, &d.code));
    match crate::resources::parse(kind, content_type, &f.text, &locate) {
        Ok(records) => {
            let actor = crate::dispatch::Actor {
                who: ctx.user.name.clone(),
                role: ctx.user.role.as_str().into(),
                remote: remote.to_string(),
            };
            let n = db!(ctx, crate::http::import(&state.store, &records, &actor, kind).await);
            let _ = state.stream.send(std::sync::Arc::from(
                json!({"type": "resources", "kind": kind.as_str(), "count": n}).to_string(),
            ));
            Redirect::to(&format!("/resources?imported={n}")).into_response()
        }
        Err(errors) => {
            let mut h = Html::new();
            h.raw("<section><h1>").text(ctx.t("res.refused")).raw("</h1><ul class=\"errors\" id=\"import-errors\">");
            for e in errors.iter().take(200) {
                h.el("li", "", &e.to_string());
            }
            h.raw("</ul><p><a href=\"/resources\">").text(ctx.t("nav.resources")).raw("</a></p></section>");
            html_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                layout(&ctx, Nav::Resources, ctx.t("res.refused"), &h.finish(), &[], json!({})),
                &ctx.console,
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes, rules, audit

pub(super) async fn nodes(State(state): State<AppState>, ctx: Ctx) -> Response {
    let rows = db!(ctx, state.store.nodes().await);
    let now = chrono::Utc::now().timestamp_millis();
    let mut h = Html::new();
    h.raw("<section><h1>").text(ctx.t("nav.nodes")).raw("</h1><table class=\"grid\" id=\"nodes\"><thead><tr>");
    for k in [
        "node.id",
        "node.state",
        "node.last_seen",
        "node.outbox",
        "node.lag",
        "node.events",
        "node.stations",
        "node.version",
    ] {
        h.el("th", "", ctx.t(k));
    }
    h.raw("</tr></thead><tbody>");
    for n in &rows {
        let ago = (now - n.last_seen_ms).max(0) / 1000;
        let lag = n.outbox_oldest_s.unwrap_or(0.0);
        let lag_class = if lag > 300.0 {
            "bad"
        } else if lag > 60.0 {
            "warn"
        } else {
            "ok"
        };
        h.raw("<tr>").el("td", "", &n.id);
        let (cls, key) = if n.online { ("ok", "node.online") } else { ("bad", "node.offline") };
        let _ = write!(h, "<td class=\"{cls}\">");
        h.text(ctx.t(key)).raw("</td>").el("td", "", &format!("{} ({ago} s)", time(n.last_seen_ms)));
        h.el("td", "class=\"num\"", &n.outbox.map(|o| o.to_string()).unwrap_or_else(|| "—".into()));
        let _ = write!(h, "<td class=\"num {lag_class}\">");
        h.text(&format!("{lag:.0} s")).raw("</td>").el("td", "class=\"num\"", &n.events.to_string());
        h.el("td", "class=\"num\"", &format!("{}/{}", n.stations_online, n.stations));
        h.el("td", "", n.version.as_deref().unwrap_or("—")).raw("</tr>");
    }
    h.raw("</tbody></table>");
    let rules = state.rules.current();
    h.raw("<h2>").text(ctx.t("node.rules")).raw("</h2><p>");
    h.text(&format!(
        "{} · {}",
        rules.len(),
        state.rules_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "default".into())
    ));
    h.raw("</p>");
    if ctx.user.role >= Role::Commander && state.rules_file.is_some() {
        h.raw("<form method=\"post\" action=\"/rules/reload\" class=\"inline\">").csrf(&ctx.user.csrf);
        h.raw("<button type=\"submit\" id=\"reload-rules\">").text(ctx.t("node.reload")).raw("</button></form>");
    }
    h.raw("</section>");
    page(&ctx, Nav::Nodes, ctx.t("nav.nodes"), &h.finish(), &[], json!({}))
}

pub(super) async fn reload_rules(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ctx: Ctx,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Some(r) = check_csrf(&ctx, &sent) {
        return r;
    }
    if let Some(r) = need(&ctx, Role::Commander) {
        return r;
    }
    match crate::http::reload_rules_now(&state, &caller(&ctx), &remote.to_string()).await {
        Ok(_) => Redirect::to("/nodes").into_response(),
        Err(e) => error_page(&ctx, e.status(), e.message()),
    }
}

pub(super) async fn audit_page(State(state): State<AppState>, ctx: Ctx) -> Response {
    if let Some(r) = need(&ctx, Role::Officer) {
        return r;
    }
    let rows = db!(ctx, state.store.audit(500).await);
    let mut h = Html::new();
    h.raw("<section><h1>").text(ctx.t("nav.audit")).raw("</h1><table class=\"grid\" id=\"audit\"><thead><tr>");
    for k in ["audit.time", "audit.who", "audit.role", "audit.action", "audit.target", "audit.remote", "audit.detail"] {
        h.el("th", "", ctx.t(k));
    }
    h.raw("</tr></thead><tbody>");
    for a in &rows {
        h.raw("<tr>").el("td", "", &time(a.at_ms)).el("td", "", &a.who).el("td", "", &a.role).el("td", "", &a.action);
        h.el("td", "", &a.target)
            .el("td", "", &a.remote)
            .raw("<td><code>")
            .text(&a.detail.to_string())
            .raw("</code></td></tr>");
    }
    h.raw("</tbody></table></section>");
    page(&ctx, Nav::Audit, ctx.t("nav.audit"), &h.finish(), &[], json!({}))
}

// ---------------------------------------------------------------------------------------------
// Drills

pub(super) async fn drills(State(state): State<AppState>, ctx: Ctx) -> Response {
    let mut h = Html::new();
    h.raw("<section><h1>").text(ctx.t("nav.drills")).raw("</h1>");
    if !ctx.exercise() {
        h.raw("<p class=\"notice\" id=\"drills-real\">").text(ctx.t("drill.real_mode")).raw("</p>");
        h.raw("<form method=\"post\" action=\"/mode\" class=\"inline\">").csrf(&ctx.user.csrf);
        h.raw("<input type=\"hidden\" name=\"next\" value=\"/drills\"><button type=\"submit\" name=\"mode\" value=\"exercise\">");
        h.text(ctx.t("mode.exercise")).raw("</button></form></section>");
        return page(&ctx, Nav::Drills, ctx.t("nav.drills"), &h.finish(), &[], json!({}));
    }
    let rows = db!(ctx, state.store.drills(500).await);
    if rows.is_empty() {
        h.raw("<p class=\"empty\">").text(ctx.t("drill.none")).raw("</p>");
    } else {
        h.raw("<table class=\"grid\" id=\"drills\"><thead><tr>");
        for k in [
            "drill.id",
            "drill.scenario",
            "drill.seed",
            "drill.started",
            "drill.finished",
            "drill.result",
            "drill.report",
        ] {
            h.el("th", "", ctx.t(k));
        }
        h.raw("</tr></thead><tbody>");
        for d in &rows {
            h.raw("<tr>").el("td", "", &d.id).el("td", "", &d.scenario).el("td", "", &d.seed);
            h.el("td", "", &time(d.started_ms)).el("td", "", &time(d.finished_ms));
            let (cls, key) = if d.passed { ("ok", "drill.passed") } else { ("bad", "drill.failed") };
            let _ = write!(h, "<td class=\"{cls}\">");
            h.text(ctx.t(key)).raw("</td><td><a href=\"/api/v1/drills/").text(&super::url_encode(&d.id));
            h.raw("/report\" target=\"_blank\" rel=\"noopener\">").text(ctx.t("drill.report")).raw("</a></td></tr>");
        }
        h.raw("</tbody></table>");
    }
    h.raw("</section>");
    page(&ctx, Nav::Drills, ctx.t("nav.drills"), &h.finish(), &[], json!({}))
}

// ---------------------------------------------------------------------------------------------
// Users (admin)

#[derive(Debug, Deserialize, Default)]
pub(super) struct UsersQuery {
    added: Option<String>,
    removed: Option<String>,
}

pub(super) async fn users(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Result<Query<UsersQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(r) = need(&ctx, Role::Admin) {
        return r;
    }
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let rows = db!(ctx, state.store.users().await);
    let mut h = Html::new();
    h.raw("<section><h1>").text(ctx.t("nav.users")).raw("</h1>");
    if let Some(n) = &q.added {
        h.raw("<p class=\"notice\">").text(ctx.t("user.added")).raw(": ").text(n).raw("</p>");
    }
    if let Some(n) = &q.removed {
        h.raw("<p class=\"notice\">").text(ctx.t("user.removed")).raw(": ").text(n).raw("</p>");
    }
    h.raw("<table class=\"grid\" id=\"users\"><thead><tr>");
    for k in ["user.name", "user.role", "user.created"] {
        h.el("th", "", ctx.t(k));
    }
    h.raw("<th></th></tr></thead><tbody>");
    for u in &rows {
        h.raw("<tr>")
            .el("td", "", &u.name)
            .el("td", "", &word(&ctx, "role", &u.role))
            .el("td", "", &time(u.created_ms))
            .raw("<td>");
        if u.name != ctx.user.name {
            h.raw("<form method=\"post\" class=\"inline\" action=\"/users/")
                .text(&super::url_encode(&u.name))
                .raw("/remove\">");
            h.csrf(&ctx.user.csrf).raw("<button type=\"submit\">").text(ctx.t("user.remove")).raw("</button></form>");
        }
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table><h2>")
        .text(ctx.t("user.add"))
        .raw("</h2><form method=\"post\" action=\"/users\" class=\"stack\" id=\"add-user\">");
    h.csrf(&ctx.user.csrf)
        .raw("<label>")
        .text(ctx.t("user.name"))
        .raw("<input name=\"name\" required maxlength=\"64\"></label>");
    h.raw("<label>").text(ctx.t("user.role")).raw("<select name=\"role\">");
    for r in ["viewer", "officer", "commander", "admin"] {
        let _ = write!(h, "<option value=\"{r}\">");
        h.text(&word(&ctx, "role", r)).raw("</option>");
    }
    h.raw("</select></label><label>").text(ctx.t("login.password"));
    h.raw("<input name=\"password\" type=\"password\" minlength=\"8\" autocomplete=\"new-password\" required></label>");
    h.raw("<button type=\"submit\">").text(ctx.t("user.add")).raw("</button></form></section>");
    page(&ctx, Nav::Users, ctx.t("nav.users"), &h.finish(), &[], json!({}))
}

#[derive(Debug, Deserialize)]
pub(super) struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn add_user(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ctx: Ctx,
    form: Result<Form<UserForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else { return error_page(&ctx, StatusCode::BAD_REQUEST, ctx.t("err.bad")) };
    if let Some(r) = check_csrf(&ctx, &f.csrf) {
        return r;
    }
    if let Some(r) = need(&ctx, Role::Admin) {
        return r;
    }
    let Ok(role) = f.role.parse::<Role>() else {
        return error_page(&ctx, StatusCode::BAD_REQUEST, "role is viewer, officer, commander or admin");
    };
    match super::users::add_user(&state.store, &f.name, role, &f.password).await {
        Ok(()) => {
            let now = chrono::Utc::now().timestamp_millis();
            let detail = json!({"role": role.as_str()});
            let _ = state.store.audit_one(&audit(&ctx, "user_add", &f.name, &remote.to_string(), detail), now).await;
            Redirect::to(&format!("/users?added={}", super::url_encode(&f.name))).into_response()
        }
        Err(e) => error_page(&ctx, StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

pub(super) async fn remove_user(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ctx: Ctx,
    Path(name): Path<String>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Some(r) = check_csrf(&ctx, &sent) {
        return r;
    }
    if let Some(r) = need(&ctx, Role::Admin) {
        return r;
    }
    if name == ctx.user.name {
        return error_page(&ctx, StatusCode::BAD_REQUEST, "you cannot remove yourself");
    }
    if !db!(ctx, state.store.remove_user(&name).await) {
        return error_page(&ctx, StatusCode::NOT_FOUND, ctx.t("err.not_found"));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let _ = state.store.audit_one(&audit(&ctx, "user_remove", &name, &remote.to_string(), json!({})), now).await;
    Redirect::to(&format!("/users?removed={}", super::url_encode(&name))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_beijing_time() {
        assert_eq!(time(0), "1970-01-01 08:00:00");
    }

    #[test]
    fn the_series_follows_each_regions_latest_report() {
        let ev = |at_ms: i64, region: &str, observed: &str, deaths: i64| crate::store::EventRow {
            id: format!("{at_ms}"),
            node: "n".into(),
            kind: "report".into(),
            at_ms,
            exercise: false,
            region: region.into(),
            incident: Some("i".into()),
            body: json!({"observed_at": observed, "figures": {"deaths": deaths}}),
            received_ms: at_ms,
        };
        let s = series(&[
            ev(1, "a", "2026-01-01T01:00:00Z", 2),
            ev(2, "b", "2026-01-01T01:00:00Z", 3),
            ev(3, "a", "2026-01-01T00:00:00Z", 100), // older than what a has: does not count
            ev(4, "a", "2026-01-01T02:00:00Z", 4),
        ]);
        let deaths: Vec<f64> = s.iter().map(|(_, v)| v["deaths"]).collect();
        assert_eq!(deaths, [2.0, 5.0, 5.0, 7.0]);
    }
}
