//! The names rule files may use (contract vocabulary, `domain.md`).

/// Team capabilities.
pub const CAPABILITIES: &[&str] = &[
    "flood_rescue",
    "search_rescue",
    "mountain_rescue",
    "medical",
    "fire",
    "hazmat",
    "evacuation",
    "engineering",
    "comms",
    "logistics",
    "aviation",
];

/// Relief items (GB/T 38565: basic living support, equipment, engineering materials).
pub const ITEMS: &[&str] = &[
    "tent",
    "quilt",
    "folding_bed",
    "food_ration",
    "drinking_water",
    "clothing",
    "life_jacket",
    "rubber_boat",
    "water_pump",
    "generator",
    "satellite_phone",
    "lighting",
    "sandbag",
    "steel_pipe",
    "excavator",
];

/// Hazards of contract v1 (the `hazard` of a field report, and so of an incident).
pub const HAZARDS: &[&str] = &[
    "flood",
    "rainstorm",
    "typhoon",
    "earthquake",
    "landslide",
    "debris_flow",
    "drought",
    "wildfire",
    "snow",
    "hail",
    "storm_surge",
    "hazmat",
    "other",
];

/// Kinds of summarized event (contract §3.5).
pub const KINDS: &[&str] = &["report", "warning", "stats", "device", "media"];

/// The bit of a name in one of the lists above (at most 16 names), or none.
pub(crate) fn bit(list: &[&str], name: &str) -> Option<u16> {
    list.iter().position(|n| *n == name).map(|i| 1u16 << i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hazards_are_the_contract_s() {
        use yingji_proto::report::Hazard::*;
        let contract = [
            Flood, Rainstorm, Typhoon, Earthquake, Landslide, DebrisFlow, Drought, Wildfire, Snow, Hail, StormSurge,
            Hazmat, Other,
        ];
        let names: Vec<&str> = contract.iter().map(|h| h.as_str()).collect();
        assert_eq!(names, HAZARDS);
        assert!(HAZARDS.len() <= 16 && KINDS.len() <= 16);
    }
}
