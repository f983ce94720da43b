//! Dispatch orders (§3.6, hub → node → team) and acknowledgements (§3.7, team → node → hub).

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Code, Invalid, from_json_error, object_only, parse_json_object};
use crate::report::valid_region;
use crate::topic::valid_device_id;
use crate::{Limits, Location, check_time, valid_id};

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

/// The longest free text of an order's `task` or an acknowledgement's `note`, in bytes.
pub const MAX_TASK_BYTES: usize = 4096;
/// The longest `item` of a resource line, in bytes.
pub const MAX_ITEM_BYTES: usize = 256;
/// The largest integer JSON carries exactly through an IEEE double, 2^53 − 1: JCS (RFC 8785)
/// writes every number as a double, so a larger integer could change without changing the
/// canonical form, and is refused.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A resource line as read from the wire: an object, never an array of its fields.
struct RawLine(ResourceLine);

impl<'de> Deserialize<'de> for RawLine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object_only(deserializer).map(RawLine)
    }
}

/// The wire shape of an order before validation: times as strings so that a bad one gets its
/// own code, `sig` optional so that a missing one gets its own code.
#[derive(Deserialize)]
struct RawOrder {
    id: String,
    incident: String,
    team: String,
    node: String,
    task: String,
    destination: Location,
    region: String,
    resources: Vec<RawLine>,
    issued_at: String,
    ack_within_s: u32,
    exercise: bool,
    #[serde(default)]
    sig: Option<String>,
}

fn prefixed(field: &'static str) -> impl Fn(Invalid) -> Invalid {
    move |e| Invalid::new(e.code, format!("{field}: {}", e.reason))
}

/// Checks the shape and the values of a dispatch order read as a JSON object (no signature
/// check: see [`crate::sign::verify_order`]). A missing or null `sig` comes back empty.
pub(crate) fn check_order(
    value: &serde_json::Value,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<DispatchOrder, Invalid> {
    let raw: RawOrder = serde_path_to_error::deserialize(value).map_err(from_json_error)?;
    let id = valid_id(&raw.id)?;
    let incident = valid_id(&raw.incident).map_err(prefixed("incident"))?;
    let team = valid_device_id(&raw.team).map_err(prefixed("team"))?;
    let node = valid_device_id(&raw.node).map_err(prefixed("node"))?;
    if raw.task.len() > MAX_TASK_BYTES {
        return Err(Invalid::new(
            Code::TextTooLong,
            format!("task is {} bytes; the limit is {MAX_TASK_BYTES}", raw.task.len()),
        ));
    }
    raw.destination.validate().map_err(prefixed("destination"))?;
    valid_region(&raw.region)?;
    let mut resources = Vec::with_capacity(raw.resources.len());
    for (i, RawLine(line)) in raw.resources.into_iter().enumerate() {
        if line.item.is_empty() || line.item.len() > MAX_ITEM_BYTES || line.item.chars().any(char::is_control) {
            return Err(Invalid::new(
                Code::InvalidField,
                format!("resources[{i}].item must have 1 to {MAX_ITEM_BYTES} bytes and no control characters"),
            ));
        }
        if line.qty < 0 || line.qty.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(Invalid::new(
                Code::InvalidField,
                format!("resources[{i}].qty is {}; a quantity is 0 to 2^53 - 1", line.qty),
            ));
        }
        resources.push(line);
    }
    let issued_at = check_time("issued_at", &raw.issued_at, now, limits)?;
    Ok(DispatchOrder {
        id,
        incident,
        team,
        node,
        task: raw.task,
        destination: raw.destination,
        region: raw.region,
        resources,
        issued_at,
        ack_within_s: raw.ack_within_s,
        exercise: raw.exercise,
        sig: raw.sig.unwrap_or_default(),
    })
}

/// The wire shape of an acknowledgement before validation. `relay_id` is only read to tell
/// whether it is there: the node adds it when it relays the ack to the hub.
#[derive(Deserialize)]
struct RawAck {
    id: String,
    dispatch: String,
    team: String,
    status: AckStatus,
    at: String,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    relay_id: Option<String>,
}

impl AckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AckStatus::Received => "received",
            AckStatus::Accepted => "accepted",
            AckStatus::Declined => "declined",
            AckStatus::EnRoute => "en_route",
            AckStatus::OnScene => "on_scene",
            AckStatus::Completed => "completed",
        }
    }
}

/// The member the node adds to an acknowledgement it relays to the hub (§2.7 of
/// docs/protocol.md): the id of its outbox row, which the hub's receipt names.
pub const RELAY_ID: &str = "relay_id";

impl Ack {
    /// Parses and validates an acknowledgement received on `yingji/v1/ack/{topic_team}` at `now`:
    /// the payload's `team` must be the topic's, and `relay_id` is the node's to add.
    pub fn parse(payload: &[u8], topic_team: &str, now: DateTime<Utc>, limits: &Limits) -> Result<Ack, Invalid> {
        let (ack, relay_id) = parse_ack(payload, now, limits)?;
        if ack.team != topic_team {
            return Err(Invalid::new(
                Code::DeviceMismatch,
                format!("payload names team {:?} but the topic names {topic_team:?}", ack.team),
            ));
        }
        if relay_id.is_some() {
            return Err(Invalid::new(
                Code::InvalidField,
                format!("{RELAY_ID} is added by the node that relays the acknowledgement; a team does not send it"),
            ));
        }
        Ok(ack)
    }
}

fn parse_ack(payload: &[u8], now: DateTime<Utc>, limits: &Limits) -> Result<(Ack, Option<String>), Invalid> {
    if payload.len() > limits.max_json_bytes {
        return Err(Invalid::new(
            Code::PayloadTooLarge,
            format!("acknowledgement is {} bytes; the limit is {}", payload.len(), limits.max_json_bytes),
        ));
    }
    let raw: RawAck = parse_json_object(payload)?;
    let id = valid_id(&raw.id)?;
    let dispatch = valid_id(&raw.dispatch).map_err(prefixed("dispatch"))?;
    let team = valid_device_id(&raw.team).map_err(prefixed("team"))?;
    let at = check_time("at", &raw.at, now, limits)?;
    if let Some(location) = &raw.location {
        location.validate()?;
    }
    if let Some(note) = &raw.note
        && note.len() > MAX_TASK_BYTES
    {
        return Err(Invalid::new(
            Code::TextTooLong,
            format!("note is {} bytes; the limit is {MAX_TASK_BYTES}", note.len()),
        ));
    }
    let ack = Ack { id, dispatch, team, status: raw.status, at, location: raw.location, note: raw.note };
    Ok((ack, raw.relay_id))
}

/// An acknowledgement as a node relays it to the hub on `yingji/v1/node/{node_id}/ack`: the
/// team's JSON exactly as received, with one member added in front, `relay_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayedAck {
    /// The id of the node's outbox row: stable across resends; the hub receipts it on
    /// `yingji/v1/node/{node_id}/receipt` (`{"ids": [relay_id, ...]}`) and is idempotent on it.
    pub relay_id: String,
    pub ack: Ack,
}

impl RelayedAck {
    /// The relay id a node gives the acknowledgement `ack_id` of `team`: `{node}:ack:{team}:{ack_id}`.
    pub fn relay_id(node: &str, team: &str, ack_id: &str) -> String {
        format!("{node}:ack:{team}:{ack_id}")
    }

    /// The payload relayed up: `{"relay_id":"…",` followed by the received object's members,
    /// byte for byte. `received` must be an acknowledgement [`Ack::parse`] accepted.
    pub fn payload(received: &[u8], relay_id: &str) -> Result<Vec<u8>, Invalid> {
        let start = received.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')).unwrap_or(received.len());
        let Some(rest) = received.get(start..).and_then(|r| r.strip_prefix(b"{")) else {
            return Err(Invalid::new(Code::InvalidField, "an acknowledgement is a JSON object"));
        };
        let id = serde_json::to_vec(relay_id).map_err(|e| Invalid::new(Code::Internal, e.to_string()))?;
        let empty = rest.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) == Some(&b'}');
        let mut out = Vec::with_capacity(received.len() + id.len() + 16);
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(RELAY_ID.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(&id);
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        Ok(out)
    }

    /// Parses and validates what arrives on `yingji/v1/node/{node_id}/ack` (the hub's side).
    pub fn parse(payload: &[u8], now: DateTime<Utc>, limits: &Limits) -> Result<RelayedAck, Invalid> {
        let (ack, relay_id) = parse_ack(payload, now, limits)?;
        let relay_id = relay_id
            .ok_or_else(|| Invalid::new(Code::InvalidField, format!("a relayed acknowledgement has a {RELAY_ID}")))
            .and_then(|r| valid_id(&r).map_err(prefixed("relay_id")))?;
        Ok(RelayedAck { relay_id, ack })
    }
}
