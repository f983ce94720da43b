//! CAP 1.2 (OASIS Common Alerting Protocol, `urn:oasis:names:tc:emergency:cap:1.2`): the types of
//! an alert, its XML document, GB/T 35965.1 identifiers, areas from division polygons, and the
//! mapping from the hub's own grading to CAP's enumerations.
//!
//! A pure module: no IO, no clock (every time is passed in) and no panic on any input. What the
//! hub publishes, and how, is described in `docs/cap.md`.

mod area;
mod identifier;
mod mapping;
mod validate;
mod xml;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

pub use area::{GEOCODE_GB2260, area_from_geometry};
pub use identifier::identifier;
pub use mapping::{category_of_hazard, severity_of_colour, severity_of_response_level};
pub use validate::validate;
pub use xml::{CAP_NAMESPACE, format_time, to_xml};

/// What can be wrong with an identifier's parts or with an alert (see [`validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    /// A part of a GB/T 35965.1 identifier is not the required number of ASCII digits.
    #[error("identifier: the {part} must be {len} ASCII digits, got {value:?}")]
    IdentifierPart { part: &'static str, len: usize, value: String },
    /// The identifier's sequence number is not 0–9.
    #[error("identifier: the sequence number must be 0-9, got {0}")]
    Sequence(u8),
    /// A time whose year cannot be written with four digits.
    #[error("{field}: the year {year} cannot be written as YYYY")]
    Year { field: &'static str, year: i32 },
    /// A value that is not one of a CAP enumeration's names.
    #[error("{kind}: {value:?} is not a CAP 1.2 value")]
    UnknownValue { kind: &'static str, value: String },
    /// A field of an alert that breaks a rule of the CAP 1.2 specification.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// Declares a CAP enumeration: serialised (serde, XML, `Display`) and parsed (`FromStr`) by its
/// CAP name.
macro_rules! cap_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $cap:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $cap)] $variant),+
        }

        impl $name {
            /// Every value, in the order of the CAP 1.2 specification.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The CAP 1.2 name of the value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $cap),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = CapError;

            fn from_str(s: &str) -> Result<Self, CapError> {
                match s {
                    $($cap => Ok($name::$variant),)+
                    _ => Err(CapError::UnknownValue { kind: $kind, value: s.to_owned() }),
                }
            }
        }
    };
}

cap_enum!(
    /// `alert/status`: `Exercise` for drills.
    Status, "status" {
        Actual => "Actual",
        Exercise => "Exercise",
        System => "System",
        Test => "Test",
        Draft => "Draft",
    }
);

cap_enum!(
    /// `alert/msgType`: `Update` and `Cancel` reference the earlier alert.
    MsgType, "msgType" {
        Alert => "Alert",
        Update => "Update",
        Cancel => "Cancel",
        Ack => "Ack",
        Error => "Error",
    }
);

cap_enum!(
    /// `alert/scope`.
    Scope, "scope" {
        Public => "Public",
        Restricted => "Restricted",
        Private => "Private",
    }
);

cap_enum!(
    /// `info/category`.
    Category, "category" {
        Geo => "Geo",
        Met => "Met",
        Safety => "Safety",
        Security => "Security",
        Rescue => "Rescue",
        Fire => "Fire",
        Health => "Health",
        Env => "Env",
        Transport => "Transport",
        Infra => "Infra",
        /// Chemical, biological, radiological, nuclear or high-yield explosive threat or attack.
        Cbrne => "CBRNE",
        Other => "Other",
    }
);

cap_enum!(
    /// `info/urgency`.
    Urgency, "urgency" {
        Immediate => "Immediate",
        Expected => "Expected",
        Future => "Future",
        Past => "Past",
        Unknown => "Unknown",
    }
);

cap_enum!(
    /// `info/severity`, from the most to the least severe, then `Unknown`.
    Severity, "severity" {
        Extreme => "Extreme",
        Severe => "Severe",
        Moderate => "Moderate",
        Minor => "Minor",
        Unknown => "Unknown",
    }
);

cap_enum!(
    /// `info/certainty`.
    Certainty, "certainty" {
        Observed => "Observed",
        Likely => "Likely",
        Possible => "Possible",
        Unlikely => "Unlikely",
        Unknown => "Unknown",
    }
);

cap_enum!(
    /// `info/responseType`.
    ResponseType, "responseType" {
        Shelter => "Shelter",
        Evacuate => "Evacuate",
        Prepare => "Prepare",
        Execute => "Execute",
        Avoid => "Avoid",
        Monitor => "Monitor",
        Assess => "Assess",
        AllClear => "AllClear",
        None => "None",
    }
);

impl Severity {
    /// 4 for `Extreme` down to 1 for `Minor`, 0 for `Unknown`: to find the gravest of several.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Extreme => 4,
            Severity::Severe => 3,
            Severity::Moderate => 2,
            Severity::Minor => 1,
            Severity::Unknown => 0,
        }
    }
}

/// One earlier message that an alert refers to, written `sender,identifier,sent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub sender: String,
    pub identifier: String,
    pub sent: DateTime<FixedOffset>,
}

impl Reference {
    /// The reference to `alert`, for its `Update` or `Cancel`.
    pub fn to(alert: &Alert) -> Reference {
        Reference { sender: alert.sender.clone(), identifier: alert.identifier.clone(), sent: alert.sent }
    }
}

impl From<&Alert> for Reference {
    fn from(alert: &Alert) -> Reference {
        Reference::to(alert)
    }
}

/// A CAP 1.2 alert message (`alert`), less the parts the hub never sends (`restriction`,
/// `addresses`, `code`, signatures).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique for the sender; no spaces, commas, `<` or `&` (see [`identifier`]).
    pub identifier: String,
    /// The sender's identity, e.g. `yingji@330302`; same character rules as the identifier.
    pub sender: String,
    pub sent: DateTime<FixedOffset>,
    pub status: Status,
    pub msg_type: MsgType,
    pub scope: Scope,
    pub source: Option<String>,
    pub note: Option<String>,
    /// The earlier messages this one updates or cancels.
    pub references: Vec<Reference>,
    /// Incident names; one with white space in it is written in double quotes.
    pub incidents: Vec<String>,
    pub infos: Vec<Info>,
}

impl Alert {
    /// A public alert with no references, incidents or infos yet.
    pub fn new(
        identifier: impl Into<String>,
        sender: impl Into<String>,
        sent: DateTime<FixedOffset>,
        status: Status,
        msg_type: MsgType,
    ) -> Alert {
        Alert {
            identifier: identifier.into(),
            sender: sender.into(),
            sent,
            status,
            msg_type,
            scope: Scope::Public,
            source: None,
            note: None,
            references: Vec::new(),
            incidents: Vec::new(),
            infos: Vec::new(),
        }
    }

    /// The line of the hub's CAP index for this alert.
    pub fn summary(&self) -> AlertSummary {
        AlertSummary::from(self)
    }
}

/// One `info` block of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// An RFC 3066 language tag; `zh-CN` by default.
    pub language: String,
    /// At least one: the XML carries `Other` when this is empty.
    pub categories: Vec<Category>,
    pub event: String,
    pub response_types: Vec<ResponseType>,
    pub urgency: Urgency,
    pub severity: Severity,
    pub certainty: Certainty,
    pub sender_name: Option<String>,
    pub headline: String,
    pub description: String,
    pub instruction: Option<String>,
    /// A full absolute URI.
    pub web: Option<String>,
    pub effective: Option<DateTime<FixedOffset>>,
    pub onset: Option<DateTime<FixedOffset>>,
    pub expires: Option<DateTime<FixedOffset>>,
    /// `(valueName, value)` pairs.
    pub parameters: Vec<(String, String)>,
    pub areas: Vec<Area>,
}

impl Default for Info {
    /// Language `zh-CN`, urgency, severity and certainty `Unknown`, everything else empty.
    fn default() -> Info {
        Info {
            language: "zh-CN".to_owned(),
            categories: Vec::new(),
            event: String::new(),
            response_types: Vec::new(),
            urgency: Urgency::Unknown,
            severity: Severity::Unknown,
            certainty: Certainty::Unknown,
            sender_name: None,
            headline: String::new(),
            description: String::new(),
            instruction: None,
            web: None,
            effective: None,
            onset: None,
            expires: None,
            parameters: Vec::new(),
            areas: Vec::new(),
        }
    }
}

/// One `area` of an info block.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Area {
    pub area_desc: String,
    /// Rings of `(latitude, longitude)` in WGS 84 degrees; the XML closes each ring.
    pub polygons: Vec<Vec<(f64, f64)>>,
    /// `(latitude, longitude, radius in km)`.
    pub circles: Vec<(f64, f64, f64)>,
    /// `(valueName, value)` pairs, e.g. `("GB/T 2260", "330302")`.
    pub geocodes: Vec<(String, String)>,
}

/// One line of the hub's CAP index (`GET /api/v1/cap`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertSummary {
    pub identifier: String,
    pub sent: DateTime<FixedOffset>,
    pub status: Status,
    pub msg_type: MsgType,
    /// The first info block's event; `None` for an alert without info blocks.
    pub event: Option<String>,
    /// The gravest severity over the info blocks; `None` for an alert without info blocks.
    pub severity: Option<Severity>,
    /// Every area description of every info block, each once, in order.
    pub area_descs: Vec<String>,
}

impl From<&Alert> for AlertSummary {
    fn from(alert: &Alert) -> AlertSummary {
        let mut area_descs: Vec<String> = Vec::new();
        for area in alert.infos.iter().flat_map(|info| &info.areas) {
            if !area_descs.contains(&area.area_desc) {
                area_descs.push(area.area_desc.clone());
            }
        }
        AlertSummary {
            identifier: alert.identifier.clone(),
            sent: alert.sent,
            status: alert.status,
            msg_type: alert.msg_type,
            event: alert.infos.first().map(|info| info.event.clone()),
            severity: alert.infos.iter().map(|info| info.severity).max_by_key(|s| s.rank()),
            area_descs,
        }
    }
}
