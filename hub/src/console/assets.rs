//! The console's assets, embedded in the binary and served under names that carry a hash of
//! their content (`console.1a2b3c4d.js`), so that they can be cached for a year and a new hub
//! version is never shown with an old script.

use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::http::AppState;

/// (name, content type, content).
const FILES: &[(&str, &str, &[u8])] = &[
    ("console.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/console.js")),
    ("map.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/map.js")),
    ("console.css", "text/css; charset=utf-8", include_bytes!("../../assets/console.css")),
    ("icon.svg", "image/svg+xml", include_bytes!("../../assets/icon.svg")),
];

/// The hashed file name of each asset, e.g. `console.js` → `console.1a2b3c4d.js`.
fn hashed() -> &'static Vec<(String, usize)> {
    static NAMES: OnceLock<Vec<(String, usize)>> = OnceLock::new();
    NAMES.get_or_init(|| {
        FILES
            .iter()
            .enumerate()
            .map(|(i, (name, _, content))| {
                let digest = Sha256::digest(content);
                let short: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
                let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
                (format!("{stem}.{short}.{ext}"), i)
            })
            .collect()
    })
}

/// The URL of an asset by its plain name (`console.js`).
pub fn url(name: &str) -> String {
    let found = hashed().iter().find(|(_, i)| FILES.get(*i).is_some_and(|f| f.0 == name));
    match found {
        Some((hashed, _)) => format!("/assets/{hashed}"),
        None => format!("/assets/{name}"),
    }
}

pub(super) async fn serve(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(&(_, i)) = hashed().iter().find(|(h, _)| *h == file).map(|x| x as &(String, usize)) else {
        return super::secure((StatusCode::NOT_FOUND, "no such asset").into_response(), &state.console);
    };
    let Some((_, content_type, content)) = FILES.get(i) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let response = (
        [(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")],
        *content,
    )
        .into_response();
    super::secure(response, &state.console)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_have_hashed_names() {
        let js = url("console.js");
        assert!(js.starts_with("/assets/console.") && js.ends_with(".js") && js.len() > "/assets/console.js".len());
        assert_ne!(url("console.js"), url("map.js"));
        // No script in the assets builds markup from data.
        for (name, _, content) in FILES {
            let text = String::from_utf8_lossy(content);
            assert!(!text.contains("innerHTML") && !text.contains("insertAdjacentHTML"), "{name}");
            assert!(!text.contains("eval(") && !text.contains("document.write"), "{name}");
            assert!(!text.contains("http://") && !text.contains("https://") || name.ends_with(".svg"), "{name}");
        }
    }
}
