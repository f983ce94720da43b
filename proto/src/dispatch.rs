//! Dispatch orders (§3.6, hub → node → team) and acknowledgements (§3.7, team → node → hub).

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::Location;

/// One line of an order's resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceLine {
    pub item: String,
    pub qty: i64,
}

/// A signed dispatch order. `sig` is an Ed25519 signature (standard base64) by the hub over
/// the order without `sig`, serialised by RFC 8785 (JCS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchOrder {
    pub id: String,
    pub incident: String,
    pub team: String,
    pub node: String,
    pub task: String,
    pub destination: Location,
    pub region: String,
    pub resources: Vec<ResourceLine>,
    pub issued_at: DateTime<FixedOffset>,
    pub ack_within_s: u32,
    pub exercise: bool,
    pub sig: String,
}

/// The states a team reports for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    Received,
    Accepted,
    Declined,
    EnRoute,
    OnScene,
    Completed,
}

/// An acknowledgement or progress report of a team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub id: String,
    pub dispatch: String,
    pub team: String,
    pub status: AckStatus,
    pub at: DateTime<FixedOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
