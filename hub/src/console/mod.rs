//! The duty officer's console, served by the hub at `/`: server-rendered HTML pages, a little
//! hand-written JavaScript, every asset embedded in the binary, live updates from the hub's
//! server-sent event stream (`/api/v1/stream`, which accepts the console's session cookie).
//!
//! - [`session`]: the session cookie, CSRF tokens, the slowdown after failed logins.
//! - [`users`]: login names, roles and argon2id password hashes; [`add_user`].
//! - [`html`]: escaping. Every value from outside is written through it; the pages' scripts
//!   set field text with `textContent` only.
//! - [`i18n`]: the words in Chinese (default) and English.
//! - `pages`: the pages and their forms (every form carries the session's CSRF token; every
//!   action is in the audit log under the user's name).
//! - `map`: the division polygons, simplified for the screen, and the markers as JSON.
//! - [`drills`]: drill results (`/api/v1/drills`).
//! - `assets`: the embedded script, style sheet and icon, under content-hashed names.
//!
//! Exercise mode: a switch (cookie `yingji_mode`) shows drill data only, under a striped
//! "演习 EXERCISE" banner on every page; real mode shows real data only.

pub mod drills;
pub mod html;
pub mod i18n;
pub mod session;
pub mod users;

mod assets;
mod map;
mod pages;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use users::add_user;

use crate::auth::Role;
use crate::config::{ConsoleConfig, ConsoleMode};
use crate::http::AppState;
use i18n::Lang;

/// What the console keeps besides the hub's state.
#[derive(Debug, Default)]
pub struct Console {
    pub config: ConsoleConfig,
    /// The division polygons simplified for the screen (GeoJSON), made once.
    regions_geojson: OnceLock<Arc<str>>,
}

impl Console {
    pub fn new(config: ConsoleConfig) -> Console {
        Console { config, regions_geojson: OnceLock::new() }
    }
}

/// The console's routes (pages, forms, map data, assets).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::map_page))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/lang/{lang}", get(pages::set_lang))
        .route("/mode", post(pages::set_mode))
        .route("/feed", get(pages::feed))
        .route("/incidents", get(pages::incidents))
        .route("/incidents/{id}", get(pages::incident))
        .route("/incidents/{id}/level", post(pages::set_level))
        .route("/dispatch", get(pages::dispatch))
        .route("/resources", get(pages::resources))
        .route("/resources/import", post(pages::import))
        .route("/nodes", get(pages::nodes))
        .route("/rules/reload", post(pages::reload_rules))
        .route("/audit", get(pages::audit_page))
        .route("/drills", get(pages::drills))
        .route("/users", get(pages::users).post(pages::add_user))
        .route("/users/{name}/remove", post(pages::remove_user))
        .route("/console/regions.geojson", get(map::regions))
        .route("/console/map.json", get(map::data))
        .route("/assets/{file}", get(assets::serve))
}

/// The logged-in user of a console request.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub name: String,
    pub role: Role,
    pub csrf: String,
    /// The SHA-256 of the session cookie (the session's key).
    pub id_hash: String,
}

/// Everything a page needs: who, in which language, showing which data.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub user: SessionUser,
    pub lang: Lang,
    pub mode: ConsoleMode,
    pub console: Arc<Console>,
}

impl Ctx {
    pub fn t(&self, key: &'static str) -> &'static str {
        i18n::t(self.lang, key)
    }
    pub fn exercise(&self) -> bool {
        self.mode.exercise()
    }
}

/// The language a request asks for (cookie), Chinese by default.
pub fn lang_of(parts: &axum::http::HeaderMap) -> Lang {
    session::cookie(parts, session::LANG_COOKIE).and_then(Lang::parse).unwrap_or_default()
}

/// The session of a request, if its cookie names a live one.
pub async fn session_of(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Option<SessionUser>, Response> {
    let Some(id) = session::cookie(headers, session::COOKIE) else { return Ok(None) };
    let id_hash = crate::auth::hash(id);
    let now = chrono::Utc::now().timestamp_millis();
    let row = state.store.session(&id_hash, now).await.map_err(|e| crate::http::ApiError::from(e).into_response())?;
    Ok(row.and_then(|s| {
        let role = s.role.parse::<Role>().ok()?;
        Some(SessionUser { name: s.username, role, csrf: s.csrf, id_hash })
    }))
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ctx, Response> {
        let lang = lang_of(&parts.headers);
        let mode = session::cookie(&parts.headers, session::MODE_COOKIE)
            .and_then(ConsoleMode::parse)
            .unwrap_or(state.console.config.default_mode);
        match session_of(state, &parts.headers).await? {
            Some(user) => Ok(Ctx { user, lang, mode, console: state.console.clone() }),
            None => {
                let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let expired = session::cookie(&parts.headers, session::COOKIE).is_some();
                let target = format!("/login?next={}{}", url_encode(here), if expired { "&expired=1" } else { "" });
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters and `/`).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Content-Security-Policy of every console page: nothing but the hub itself (and the
/// operator's tile server for images, when one is configured); no inline script.
pub fn content_security_policy(tiles_origin: Option<&str>) -> String {
    let tiles = tiles_origin.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:{tiles}; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// Adds the security headers every console response carries.
pub fn secure(mut response: Response, console: &Console) -> Response {
    let h = response.headers_mut();
    let csp = content_security_policy(console.config.tiles_origin().as_deref());
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// An HTML page response (never cached: it carries the session's CSRF token).
pub fn html_response(status: StatusCode, body: String, console: &Console) -> Response {
    let response =
        (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body)
            .into_response();
    secure(response, console)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_hub_and_the_tile_server() {
        let csp = content_security_policy(None);
        assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("http"));
        let csp = content_security_policy(Some("http://tiles.local"));
        assert!(csp.contains("img-src 'self' data: http://tiles.local;"));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(url_encode("/incidents/a b?x=1&y"), "/incidents/a%20b%3Fx%3D1%26y");
        assert_eq!(url_encode("/洪"), "/%E6%B4%AA");
    }
}
