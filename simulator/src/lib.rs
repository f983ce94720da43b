//! The Yingji scenario simulator.
//!
//! Pure core (no IO): [`scenario`] (the TOML format), [`geography`] (the sample geography
//! generator), [`hazard`] (hazard fields over time), [`model`] (the deterministic message stream
//! and the ground truth). IO at the edges: the fleet and teams over MQTT, the embedded platform,
//! the evaluation against the hub's API, and the demo.

pub mod geography;
pub mod hazard;
pub mod model;
pub mod scenario;
