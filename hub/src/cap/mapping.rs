//! From the hub's own grading and hazard names to CAP's enumerations.

use super::{Category, Severity};

/// The CAP severity of a response level: Ⅰ (1) `Extreme`, Ⅱ (2) `Severe`, Ⅲ (3) `Moderate`,
/// Ⅳ (4) `Minor`; any other number `Unknown`.
pub fn severity_of_response_level(level: u8) -> Severity {
    match level {
        1 => Severity::Extreme,
        2 => Severity::Severe,
        3 => Severity::Moderate,
        4 => Severity::Minor,
        _ => Severity::Unknown,
    }
}

/// The CAP severity of a warning colour: red `Extreme`, orange `Severe`, yellow `Moderate`, blue
/// `Minor`; anything else `Unknown`. English names in any case, or the Chinese ones (`红色`, `红`…).
pub fn severity_of_colour(colour: &str) -> Severity {
    match colour.trim().to_ascii_lowercase().as_str() {
        "red" | "红色" | "红" => Severity::Extreme,
        "orange" | "橙色" | "橙" => Severity::Severe,
        "yellow" | "黄色" | "黄" => Severity::Moderate,
        "blue" | "蓝色" | "蓝" => Severity::Minor,
        _ => Severity::Unknown,
    }
}

/// The CAP categories of a hazard named in the hub's vocabulary (case, `-` and spaces are
/// ignored: `Storm-Surge` is `storm_surge`).
///
/// - weather and water, `Met` (CAP 1.2 puts floods under `Met`, "Meteorological (inc. flood)"):
///   flood, rainstorm, typhoon, storm_surge, drought, snow, hail, wind, low_temperature, frost,
///   cold_wave, heat_wave, sand_storm, lightning, fog;
/// - the ground, `Geo` ("Geophysical (inc. landslide)"): earthquake, landslide, debris_flow,
///   collapse, subsidence, tsunami, volcano;
/// - `Fire`: wildfire, forest_fire, grassland_fire, fire;
/// - `CBRNE`: hazmat, chemical_leak, chemical, radiological, nuclear, explosion;
/// - `Env`: biological (major biological disasters: pests, invasive species);
/// - anything else `Other`.
pub fn category_of_hazard(hazard: &str) -> Vec<Category> {
    let key: String = hazard
        .trim()
        .chars()
        .map(|c| if c == '-' || c.is_whitespace() { '_' } else { c.to_ascii_lowercase() })
        .collect();
    let category = match key.as_str() {
        "flood" | "rainstorm" | "typhoon" | "storm_surge" | "drought" | "snow" | "hail" | "wind"
        | "low_temperature" | "frost" | "cold_wave" | "heat_wave" | "sand_storm" | "sandstorm" | "lightning"
        | "fog" => Category::Met,
        "earthquake" | "landslide" | "debris_flow" | "collapse" | "subsidence" | "tsunami" | "volcano" => Category::Geo,
        "wildfire" | "forest_fire" | "grassland_fire" | "fire" => Category::Fire,
        "hazmat" | "chemical_leak" | "chemical" | "radiological" | "nuclear" | "explosion" => Category::Cbrne,
        "biological" => Category::Env,
        _ => Category::Other,
    };
    vec![category]
}
