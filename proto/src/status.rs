//! Device status (§3.1) and node status (§3.2).

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Code, Invalid, parse_json_object};
use crate::{Limits, check_device, check_time};

/// `yingji/v1/status/{device_id}`: also the device's will message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub online: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<f64>,
    pub at: DateTime<FixedOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

#[derive(Deserialize)]
struct RawDeviceStatus {
    online: bool,
    #[serde(default)]
    battery: Option<f64>,
    at: String,
    #[serde(default)]
    device: Option<String>,
}

impl DeviceStatus {
    /// Parses and validates a status received on the topic of `topic_device`, at `now`.
    pub fn parse(
        payload: &[u8],
        topic_device: &str,
        now: DateTime<Utc>,
        limits: &Limits,
    ) -> Result<DeviceStatus, Invalid> {
        if payload.len() > limits.max_json_bytes {
            return Err(Invalid::new(Code::PayloadTooLarge, format!("status is {} bytes", payload.len())));
        }
        let raw: RawDeviceStatus = parse_json_object(payload)?;
        check_device(raw.device.as_deref(), topic_device)?;
        let at = check_time("at", &raw.at, now, limits)?;
        if let Some(b) = raw.battery
            && !(b.is_finite() && (0.0..=100.0).contains(&b))
        {
            return Err(Invalid::new(Code::BatteryOutOfRange, format!("battery {b} is outside 0..=100")));
        }
        Ok(DeviceStatus { online: raw.online, battery: raw.battery, at, device: raw.device })
    }
}

/// `yingji/v1/node/{node_id}/status`, retained; the will message says `online: false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub online: bool,
    pub at: DateTime<FixedOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Events waiting in the node's outbox for a hub receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<u64>,
    /// The age in seconds of the oldest of them: the node's lag behind the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_oldest_s: Option<f64>,
}
