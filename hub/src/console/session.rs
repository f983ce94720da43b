//! Console sessions: the cookie, the CSRF token, and the slowdown after failed logins.
//!
//! A session id is 32 random bytes (base64url) in the `yingji_session` cookie (HttpOnly,
//! SameSite=Strict, Path=/, Secure behind TLS); the hub keeps only its SHA-256. Each session has
//! a CSRF token of its own that every form (hidden field `csrf`) and every state-changing API
//! call made with the cookie (header `X-CSRF-Token`) must carry; it is compared in constant time.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "yingji_session";
/// The cookie that carries the login form's CSRF token (double submit: cookie and field must
/// match) before there is a session.
pub const LOGIN_COOKIE: &str = "yingji_login";
/// The language cookie (`zh` or `en`).
pub const LANG_COOKIE: &str = "yingji_lang";
/// The mode cookie (`real` or `exercise`).
pub const MODE_COOKIE: &str = "yingji_mode";
/// The header a cookie-authenticated API call carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Failed logins are remembered this long (then the count starts again).
pub const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;

/// A new random secret (session id or CSRF token).
pub fn new_secret() -> String {
    crate::auth::new_token().trim_start_matches("yj_").to_owned()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure when asked; `max_age_s`
/// 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_s: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Max-Age={max_age_s}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// Whether a CSRF token sent with a request is the session's, compared in constant time.
pub fn csrf_matches(expected: &str, sent: Option<&str>) -> bool {
    match sent {
        Some(sent) if !expected.is_empty() => bool::from(expected.as_bytes().ct_eq(sent.as_bytes())),
        _ => false,
    }
}

/// How long a login attempt waits after `failures` failed attempts (of its user name or its
/// address, whichever has more): none for the first, then 250 ms doubling up to 8 s. Only the
/// one request waits; the server does not.
pub fn login_delay(failures: i64) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let exp = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(5);
    Duration::from_millis(250u64 << exp).min(Duration::from_secs(8))
}

/// Subjects whose failures count for a login: the user name and the remote address.
pub fn failure_subjects(name: &str, remote: std::net::IpAddr) -> Vec<String> {
    vec![format!("user:{}", name.to_lowercase()), format!("addr:{remote}")]
}

/// A local path to go back to after login or a switch, never another site (`//host`, `\\`).
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains(['\\', '\r', '\n']) && p.len() < 2000 => {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_read_and_written_with_their_attributes() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; yingji_session=abc ; b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("yingji_lang=en"));
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, LANG_COOKIE), Some("en"));
        assert_eq!(cookie(&h, "missing"), None);
        let c = set_cookie(COOKIE, "x", 60, false);
        assert_eq!(c, "yingji_session=x; Max-Age=60; Path=/; HttpOnly; SameSite=Strict");
        assert!(set_cookie(COOKIE, "x", 60, true).ends_with("; Secure"));
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let t = new_secret();
        assert!(t.len() >= 43 && !t.starts_with("yj_"));
        assert_ne!(t, new_secret());
        assert!(csrf_matches(&t, Some(&t)));
        assert!(!csrf_matches(&t, Some(&t[1..])));
        assert!(!csrf_matches(&t, None));
        assert!(!csrf_matches("", Some("")));
    }

    #[test]
    fn the_login_delay_grows_and_is_capped() {
        assert_eq!(login_delay(0), Duration::ZERO);
        assert_eq!(login_delay(1), Duration::from_millis(250));
        assert_eq!(login_delay(3), Duration::from_millis(1000));
        assert_eq!(login_delay(6), Duration::from_secs(8));
        assert_eq!(login_delay(1000), Duration::from_secs(8));
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/dispatch?x=1")), "/dispatch?x=1");
        for bad in ["//evil.example/", "http://evil.example/", "/\\evil", "", "dispatch"] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }
}
