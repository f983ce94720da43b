//! The Yingji scenario simulator.
//!
//! Pure core (no IO but [`scenario::Scenario::load`]): [`scenario`] (the TOML format and the
//! files it references), [`geography`] (the sample geography generator and regions files),
//! [`hazard`] (hazard fields over space and time), [`model`] (the deterministic message stream
//! of stations and reporting units, and simulated teams), [`truth`] (the ground truth). IO at the edges: the fleet and teams over MQTT, the embedded platform,
//! the evaluation against the hub's API, and the demo.

pub mod geography;
pub mod hazard;
pub mod model;
pub mod scenario;
pub mod truth;

pub mod cli;
pub mod demo;
pub mod drill;
pub mod eval;
pub mod fleet;
pub mod platform;
pub mod report;
pub mod teams;
