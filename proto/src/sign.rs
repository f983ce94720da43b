//! Signed dispatch orders (§3.6): the hub signs an order with Ed25519 over its JCS (RFC 8785)
//! canonical form without the `sig` member; nodes and teams verify it against the hub's public
//! keys before they relay or act on it.
//!
//! Verification works on the JSON **as received**, not on a re-serialisation of the parsed
//! order, so that members this version does not know are covered by the signature too. To
//! make "as received" unambiguous, an order is refused when it gives a member twice (receivers
//! that keep the first and receivers that keep the last would otherwise see different orders)
//! or holds an integer beyond ±(2^53 − 1) (JCS writes numbers as IEEE doubles, so such an
//! integer could change without changing the canonical form).
//!
//! Keys travel as standard base64 of their 32 raw bytes; [`key_id`] names one in logs.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Deserialize;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Limits;
use crate::dispatch::{DispatchOrder, MAX_SAFE_INTEGER, check_order};
use crate::error::{Code, Invalid, parse_json};

/// The member of an order that carries the signature, and the one member the signature does
/// not cover.
pub const SIG: &str = "sig";

/// The bytes an order's signature covers: the order object without its `sig` member,
/// serialised by the JSON Canonicalization Scheme (RFC 8785). Anything but an object, and
/// anything JCS cannot write (a non-finite number), is refused.
pub fn canonical_bytes(order: &Value) -> Result<Vec<u8>, Invalid> {
    let Value::Object(members) = order else {
        return Err(Invalid::new(Code::InvalidField, "a dispatch order is a JSON object"));
    };
    // JCS sorts the members itself; the map only leaves `sig` out without copying the values.
    let unsigned: BTreeMap<&String, &Value> = members.iter().filter(|(k, _)| k.as_str() != SIG).collect();
    serde_jcs::to_vec(&unsigned)
        .map_err(|e| Invalid::new(Code::InvalidField, format!("the order has no JCS canonical form: {e}")))
}

/// Signs `order` with the hub's `key`: a copy of it whose `sig` is the standard base64 of the
/// Ed25519 signature over [`canonical_bytes`] of the order as serde_json writes it. Publish
/// the result as serde_json writes it (any JSON writer will do: the signature covers values,
/// not spelling). An order serde_json cannot write comes back with an empty `sig`, which no
/// verifier accepts.
pub fn sign_order(order: &DispatchOrder, key: &SigningKey) -> DispatchOrder {
    let mut signed = order.clone();
    signed.sig = String::new();
    signed.sig = serde_json::to_value(&signed)
        .ok()
        .and_then(|value| canonical_bytes(&value).ok())
        .map(|message| BASE64.encode(key.sign(&message).to_bytes()))
        .unwrap_or_default();
    signed
}

/// Parses, validates and verifies a dispatch order received as `payload` at `now`.
///
/// In order: size (`payload_too_large`); JSON (`invalid_json`), an object with every member
/// once and integers within ±(2^53 − 1) (`invalid_field`); the shape and values of §2.6 (the
/// codes of the other parsers: `invalid_field`, `invalid_id`, `invalid_device_id`,
/// `text_too_long`, `coordinates_out_of_range`, `invalid_region`, `invalid_time`,
/// `time_in_future`, `time_too_old`); a `sig` (`missing_signature`); a key to check it with
/// (`no_trusted_key`); and finally the signature: 64 bytes of standard base64 that verify, by
/// Ed25519 in its strict form, over [`canonical_bytes`] of the received JSON against any one
/// of `keys` (`bad_signature`). More than one key lets a hub rotate its key: nodes trust the
/// old and the new one until every order signed with the old one has been handled.
pub fn verify_order(
    payload: &[u8],
    keys: &[VerifyingKey],
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<DispatchOrder, Invalid> {
    if payload.len() > limits.max_json_bytes {
        return Err(Invalid::new(
            Code::PayloadTooLarge,
            format!("order is {} bytes; the limit is {}", payload.len(), limits.max_json_bytes),
        ));
    }
    let Strict(value) = parse_json::<Strict>(payload)?;
    if !value.is_object() {
        return Err(Invalid::new(Code::InvalidField, "a dispatch order is a JSON object"));
    }
    let order = check_order(&value, now, limits)?;
    if order.sig.is_empty() {
        return Err(Invalid::new(Code::MissingSignature, "the order has no sig: it is not signed by the hub"));
    }
    if keys.is_empty() {
        return Err(Invalid::new(
            Code::NoTrustedKey,
            "no hub key is configured to verify dispatch orders with (node: --hub-key FILE)",
        ));
    }
    let signature = BASE64
        .decode(order.sig.as_bytes())
        .map_err(|e| Invalid::new(Code::BadSignature, format!("sig is not standard base64: {e}")))
        .and_then(|bytes| {
            Signature::from_slice(&bytes).map_err(|_| {
                Invalid::new(Code::BadSignature, format!("sig is {} bytes; an Ed25519 signature has 64", bytes.len()))
            })
        })?;
    let message = canonical_bytes(&value)?;
    if keys.iter().any(|key| key.verify_strict(&message, &signature).is_ok()) {
        return Ok(order);
    }
    let ids: Vec<String> = keys.iter().map(key_id).collect();
    Err(Invalid::new(
        Code::BadSignature,
        format!(
            "the signature does not verify against the trusted hub key{} {}: the order was changed or signed \
             with another key",
            if ids.len() == 1 { "" } else { "s" },
            ids.join(", ")
        ),
    ))
}

/// A public key as it travels: standard base64 of its 32 raw bytes.
pub fn public_key_base64(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

/// Reads a public key written by [`public_key_base64`] (surrounding whitespace ignored). A
/// weak key (of small order, which would verify forged signatures) is refused.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, Invalid> {
    let text = text.trim();
    let bytes = BASE64
        .decode(text.as_bytes())
        .map_err(|e| Invalid::new(Code::InvalidField, format!("the public key is not standard base64: {e}")))?;
    let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        Invalid::new(Code::InvalidField, format!("the public key is {} bytes; an Ed25519 key has 32", bytes.len()))
    })?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| Invalid::new(Code::InvalidField, "the public key is not a point of Ed25519"))?;
    if key.is_weak() {
        return Err(Invalid::new(Code::InvalidField, "the public key is a weak (small-order) key"));
    }
    Ok(key)
}

/// A short name of a public key for logs and messages: the first 16 hex digits of the SHA-256
/// of its 32 raw bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    use std::fmt::Write;
    Sha256::digest(key.as_bytes()).iter().take(8).fold(String::with_capacity(16), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A JSON value read strictly: a member given twice anywhere is refused, and so is an integer
/// that an IEEE double does not hold exactly.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        if v.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(E::custom(format_args!("the integer {v} is beyond ±(2^53 - 1); JCS cannot write it exactly")));
        }
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        if v > MAX_SAFE_INTEGER {
            return Err(E::custom(format_args!("the integer {v} is beyond ±(2^53 - 1); JCS cannot write it exactly")));
        }
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("a number is not finite"))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("the member {key:?} is given twice")));
            }
            let Strict(value) = map.next_value()?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}
