//! Summarized events (§3.5, node → hub), receipts (§3.2, hub → node) and reject notices
//! (§3.1, node → device).

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// The kinds of summarized event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Report,
    Warning,
    Stats,
    Device,
    Media,
}

/// A summarized event. `id` is unique and stable across resends; the hub ignores an id it has
/// seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub node: String,
    pub kind: EventKind,
    pub at: DateTime<FixedOffset>,
    pub exercise: bool,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    pub body: serde_json::Value,
}

/// `yingji/v1/node/{node_id}/receipt`: the events the hub has committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub ids: Vec<String>,
}

/// `yingji/v1/reject/{device_id}`: why a message was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectNotice {
    /// The topic the refused message came on.
    pub topic: String,
    /// The message's id, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The stable code (see [`crate::Code`]).
    pub code: String,
    /// A reason a person can act on.
    pub reason: String,
}
