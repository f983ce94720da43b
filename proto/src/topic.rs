//! Topic names of contract v1 and the parsing of incoming field topics.

use crate::error::{Code, Invalid};

/// The root of every contract v1 topic.
pub const ROOT: &str = "yingji/v1";

/// The field-side subscriptions through which a node takes in what devices publish (all QoS 1).
pub const FIELD_SUBSCRIPTIONS: [&str; 4] =
    ["yingji/v1/report/+", "yingji/v1/senml/+", "yingji/v1/status/+", "yingji/v1/media/+/+"];

/// Team acknowledgements the node relays up to the hub (§3.7).
pub const ACK_SUBSCRIPTION: &str = "yingji/v1/ack/+";

/// Where the node tells a device that a message was refused.
pub fn reject(device_id: &str) -> String {
    format!("{ROOT}/reject/{device_id}")
}

/// Where a node relays a dispatch order to a team.
pub fn dispatch(team_id: &str) -> String {
    format!("{ROOT}/dispatch/{team_id}")
}

/// Node → hub summarized events.
pub fn node_event(node_id: &str) -> String {
    format!("{ROOT}/node/{node_id}/event")
}

/// Hub → node receipts of committed events.
pub fn node_receipt(node_id: &str) -> String {
    format!("{ROOT}/node/{node_id}/receipt")
}

/// Node → hub relayed acknowledgements.
pub fn node_ack(node_id: &str) -> String {
    format!("{ROOT}/node/{node_id}/ack")
}

/// Hub → node dispatch orders.
pub fn node_dispatch(node_id: &str) -> String {
    format!("{ROOT}/node/{node_id}/dispatch")
}

/// Node → hub retained status.
pub fn node_status(node_id: &str) -> String {
    format!("{ROOT}/node/{node_id}/status")
}

/// A field topic a node receives on, with the ids it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldTopic {
    Report { device: String },
    Senml { device: String },
    Status { device: String },
    Media { device: String, report: String },
    Ack { team: String },
}

impl FieldTopic {
    /// Parses a topic the node received a message on.
    pub fn parse(topic: &str) -> Result<FieldTopic, Invalid> {
        let rest = topic
            .strip_prefix(ROOT)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| Invalid::new(Code::InvalidTopic, format!("topic {topic:?} is not under {ROOT}/")))?;
        let levels: Vec<&str> = rest.split('/').collect();
        let parsed = match levels.as_slice() {
            ["report", d] => FieldTopic::Report { device: valid_device_id(d)? },
            ["senml", d] => FieldTopic::Senml { device: valid_device_id(d)? },
            ["status", d] => FieldTopic::Status { device: valid_device_id(d)? },
            ["media", d, r] => FieldTopic::Media {
                device: valid_device_id(d)?,
                report: crate::valid_id(r).map_err(|e| Invalid::new(Code::InvalidTopic, e.reason))?,
            },
            ["ack", t] => FieldTopic::Ack { team: valid_device_id(t)? },
            _ => {
                return Err(Invalid::new(
                    Code::InvalidTopic,
                    format!("topic {topic:?} is not a field topic of contract v1"),
                ));
            }
        };
        Ok(parsed)
    }

    /// The device (or team) the topic names.
    pub fn device(&self) -> &str {
        match self {
            FieldTopic::Report { device }
            | FieldTopic::Senml { device }
            | FieldTopic::Status { device }
            | FieldTopic::Media { device, .. } => device,
            FieldTopic::Ack { team } => team,
        }
    }

    /// A short name of the topic kind, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            FieldTopic::Report { .. } => "report",
            FieldTopic::Senml { .. } => "senml",
            FieldTopic::Status { .. } => "status",
            FieldTopic::Media { .. } => "media",
            FieldTopic::Ack { .. } => "ack",
        }
    }
}

/// The longest device, team or node id.
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// A device, team or node id: 1..=64 characters of `[A-Za-z0-9_.-]`. These ids are topic
/// levels, so they may hold neither `/`, `+`, `#` nor anything a shell or a URL would mangle.
pub fn valid_device_id(id: &str) -> Result<String, Invalid> {
    if id.is_empty() || id.len() > MAX_DEVICE_ID_LEN {
        return Err(Invalid::new(
            Code::InvalidDeviceId,
            format!("device id must have 1 to {MAX_DEVICE_ID_LEN} characters, got {}", id.len()),
        ));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(Invalid::new(
            Code::InvalidDeviceId,
            format!("device id {id:?} has the character {c:?}; only A-Z a-z 0-9 _ . - are allowed"),
        ));
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_field_topic() {
        let cases = [
            ("yingji/v1/report/d1", Ok(FieldTopic::Report { device: "d1".into() })),
            ("yingji/v1/senml/gauge-7", Ok(FieldTopic::Senml { device: "gauge-7".into() })),
            ("yingji/v1/status/d1", Ok(FieldTopic::Status { device: "d1".into() })),
            ("yingji/v1/media/d1/r-9", Ok(FieldTopic::Media { device: "d1".into(), report: "r-9".into() })),
            ("yingji/v1/ack/team-1", Ok(FieldTopic::Ack { team: "team-1".into() })),
            ("yingji/v1/report/", Err(Code::InvalidDeviceId)),
            ("yingji/v1/report/a b", Err(Code::InvalidDeviceId)),
            ("yingji/v1/report/d1/extra", Err(Code::InvalidTopic)),
            ("yingji/v2/report/d1", Err(Code::InvalidTopic)),
            ("other/topic", Err(Code::InvalidTopic)),
        ];
        for (topic, want) in cases {
            let got = FieldTopic::parse(topic).map_err(|e| e.code);
            assert_eq!(got, want, "topic {topic}");
        }
    }
}
