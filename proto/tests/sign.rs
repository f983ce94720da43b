//! Signed dispatch orders: what verifies and what does not.
//!
//! The reference values (canonical form, signature, key id) of `the_test_vector_matches_an_
//! independent_implementation` were computed outside this crate, with Python's `rfc8785` (JCS)
//! and `cryptography` (Ed25519) packages; docs/protocol.md shows the same procedure.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde_json::{Value, json};
use yingji_proto::dispatch::{Ack, AckStatus, DispatchOrder, RelayedAck, ResourceLine};
use yingji_proto::sign::{canonical_bytes, key_id, parse_public_key, public_key_base64, sign_order, verify_order};
use yingji_proto::{Code, Limits, Location};

/// 2026-09-14T02:00:00Z: the verifier's clock.
fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_789_351_200, 0).single().expect("a valid time")
}

/// A key from a fixed seed: the seed `0, 1, 2, …, 31` is the test vector's.
fn key(first: u8) -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = first.wrapping_add(i as u8);
    }
    SigningKey::from_bytes(&seed)
}

fn public(key: &SigningKey) -> VerifyingKey {
    key.verifying_key()
}

/// The small order of the test vector.
fn small_order() -> DispatchOrder {
    DispatchOrder {
        id: "o-1".into(),
        incident: "inc-1".into(),
        team: "team-1".into(),
        node: "330000".into(),
        task: "evacuate".into(),
        destination: Location { lat: 28.02, lon: 120.65 },
        region: "330302".into(),
        resources: vec![ResourceLine { item: "boat".into(), qty: 2 }],
        issued_at: DateTime::parse_from_rfc3339("2026-09-14T08:00:00+08:00").expect("time"),
        ack_within_s: 600,
        exercise: false,
        sig: String::new(),
    }
}

/// A fuller order: several resources, text beyond ASCII, a drill.
fn order() -> DispatchOrder {
    DispatchOrder {
        id: "order-2026-0914-007".into(),
        incident: "typhoon-2026-14".into(),
        team: "zj-rescue-3".into(),
        node: "330000".into(),
        task: "转移东门群众 / evacuate the east gate".into(),
        destination: Location { lat: 28.0215, lon: 120.6543 },
        region: "330302".into(),
        resources: vec![
            ResourceLine { item: "assault boat".into(), qty: 4 },
            ResourceLine { item: "life jacket".into(), qty: 120 },
        ],
        issued_at: DateTime::parse_from_rfc3339("2026-09-14T09:55:00+08:00").expect("time"),
        ack_within_s: 300,
        exercise: true,
        sig: String::new(),
    }
}

fn signed_json(order: &DispatchOrder, key: &SigningKey) -> Value {
    serde_json::to_value(sign_order(order, key)).expect("an order serialises")
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serialises")
}

fn verify(payload: &[u8], keys: &[VerifyingKey]) -> Result<DispatchOrder, yingji_proto::Invalid> {
    verify_order(payload, keys, now(), &Limits::default())
}

fn code(payload: &[u8], keys: &[VerifyingKey]) -> Option<Code> {
    verify(payload, keys).err().map(|e| e.code)
}

/// Signs any JSON object as the hub would: Ed25519 over its canonical form, into `sig`.
fn sign_value(mut value: Value, key: &SigningKey) -> Value {
    let message = canonical_bytes(&value).expect("canonical form");
    value["sig"] = json!(BASE64.encode(key.sign(&message).to_bytes()));
    value
}

// ---------------------------------------------------------------------------------------------

#[test]
fn a_signed_order_verifies_and_parses_back() {
    let k = key(0);
    for original in [small_order(), order()] {
        let signed = sign_order(&original, &k);
        assert_eq!(BASE64.decode(&signed.sig).expect("base64").len(), 64);
        let payload = serde_json::to_vec(&signed).expect("serialise");
        let got = verify(&payload, &[public(&k)]).expect("verifies");
        assert_eq!(got, signed, "the parsed order is the signed one");
        assert_eq!(DispatchOrder { sig: String::new(), ..got }, original);
        // Signing is deterministic (Ed25519) and ignores a sig already there.
        assert_eq!(sign_order(&signed, &k), signed);
    }
}

#[test]
fn the_test_vector_matches_an_independent_implementation() {
    // Canonical form by hand: members sorted, no whitespace, numbers as ECMAScript writes them.
    let want = r#"{"ack_within_s":600,"destination":{"lat":28.02,"lon":120.65},"exercise":false,"id":"o-1","incident":"inc-1","issued_at":"2026-09-14T08:00:00+08:00","node":"330000","region":"330302","resources":[{"item":"boat","qty":2}],"task":"evacuate","team":"team-1"}"#;
    let k = key(0);
    let signed = sign_order(&small_order(), &k);
    let value = serde_json::to_value(&signed).expect("to value");
    assert_eq!(String::from_utf8(canonical_bytes(&value).expect("canonical")).expect("UTF-8"), want);
    // Computed with Python: rfc8785.dumps(order), then Ed25519PrivateKey.from_private_bytes(
    // bytes(range(32))).sign(...), base64.b64encode.
    assert_eq!(signed.sig, "qo1bEGmZ4uPApCIGkz5wBB7PPUVafwAgeSps82gmZsmyr29X2lwqQcnDcrrqDyKk/atZE1oFlLPIvu89oxUXCQ==");
    assert_eq!(public_key_base64(&public(&k)), "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=");
    assert_eq!(key_id(&public(&k)), "56475aa75463474c");
    // And the order written by hand, as another hub might, verifies.
    let by_hand = format!(
        r#"{{"sig":"{}","team":"team-1","task":"evacuate","resources":[{{"qty":2,"item":"boat"}}],"region":"330302","node":"330000","issued_at":"2026-09-14T08:00:00+08:00","incident":"inc-1","id":"o-1","exercise":false,"destination":{{"lon":120.65,"lat":28.02}},"ack_within_s":600}}"#,
        signed.sig
    );
    assert!(verify(by_hand.as_bytes(), &[public(&k)]).is_ok());
}

#[test]
fn canonical_bytes_follow_rfc_8785() {
    // RFC 8785 §3.2.2 and §3.2.3, input and output as printed there.
    let cases = [
        (
            r#"{
              "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }"#,
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#,
        ),
        (
            r#"{
              "\u20ac": "Euro Sign",
              "\r": "Carriage Return",
              "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "1": "One",
              "\ud83d\ude00": "Emoji: Grinning Face",
              "\u0080": "Control",
              "\u00f6": "Latin Small Letter O With Diaeresis"
            }"#,
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\
             \"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
        ),
        // The signature is never part of what it signs, wherever it stands.
        (r#"{"b": 1, "sig": "xyz", "a": {"sig": 2}}"#, r#"{"a":{"sig":2},"b":1}"#),
    ];
    for (input, want) in cases {
        let value: Value = serde_json::from_str(input).expect("input is JSON");
        let got = String::from_utf8(canonical_bytes(&value).expect("canonical")).expect("UTF-8");
        assert_eq!(got, want);
    }
    assert_eq!(canonical_bytes(&json!([1, 2])).map_err(|e| e.code), Err(Code::InvalidField));
}

#[test]
fn every_changed_byte_or_bit_fails() {
    let k = key(0);
    let payload = bytes(&signed_json(&order(), &k));
    let keys = [public(&k)];
    assert!(verify(&payload, &keys).is_ok());
    let mut by_code: BTreeMap<Code, usize> = BTreeMap::new();
    for i in 0..payload.len() {
        for bit in 0..8 {
            let mut changed = payload.clone();
            changed[i] ^= 1 << bit;
            match verify(&changed, &keys) {
                Ok(_) => panic!("flipping bit {bit} of byte {i} still verifies: {}", String::from_utf8_lossy(&changed)),
                Err(e) => *by_code.entry(e.code).or_default() += 1,
            }
        }
    }
    // Most flips break the JSON or the shape; those that leave a well-formed order are caught
    // by the signature.
    assert!(by_code.get(&Code::BadSignature).copied().unwrap_or(0) > 500, "{by_code:?}");
}

#[test]
fn a_change_to_any_member_fails_the_signature() {
    let k = key(0);
    let keys = [public(&k)];
    let base = signed_json(&order(), &k);
    type Change = fn(&mut Value);
    let changes: Vec<(&str, Change)> = vec![
        ("id", |o| o["id"] = json!("order-2026-0914-008")),
        ("incident", |o| o["incident"] = json!("typhoon-2026-15")),
        ("team", |o| o["team"] = json!("zj-rescue-4")),
        ("node", |o| o["node"] = json!("330001")),
        ("task", |o| o["task"] = json!("转移西门群众 / evacuate the east gate")),
        ("destination lat", |o| o["destination"]["lat"] = json!(28.0216)),
        ("destination lat by 1 ulp", |o| o["destination"]["lat"] = json!(f64::from_bits(28.0215f64.to_bits() + 1))),
        ("destination lon", |o| o["destination"]["lon"] = json!(121.6543)),
        ("region", |o| o["region"] = json!("330303")),
        ("resource item", |o| o["resources"][0]["item"] = json!("assault boats")),
        ("resource qty", |o| o["resources"][1]["qty"] = json!(121)),
        ("resources reordered", |o| {
            let r = o["resources"].as_array_mut().expect("array");
            r.swap(0, 1);
        }),
        ("resource removed", |o| {
            o["resources"].as_array_mut().expect("array").pop();
        }),
        ("resource added", |o| {
            o["resources"].as_array_mut().expect("array").push(json!({"item": "pump", "qty": 1}));
        }),
        ("issued_at", |o| o["issued_at"] = json!("2026-09-14T09:56:00+08:00")),
        ("issued_at, same instant in UTC", |o| o["issued_at"] = json!("2026-09-14T01:55:00Z")),
        ("ack_within_s", |o| o["ack_within_s"] = json!(3000)),
        ("exercise", |o| o["exercise"] = json!(false)),
        ("a member added", |o| o["priority"] = json!("high")),
        ("a member added to destination", |o| o["destination"]["alt"] = json!(12)),
    ];
    for (name, change) in changes {
        let mut value = base.clone();
        change(&mut value);
        assert_eq!(code(&bytes(&value), &keys), Some(Code::BadSignature), "{name}");
    }
}

#[test]
fn members_this_version_does_not_know_are_signed_too() {
    let k = key(0);
    let keys = [public(&k)];
    let mut value = serde_json::to_value(order()).expect("value");
    value["priority"] = json!({"level": 1, "reason": "levee breach"});
    let signed = sign_value(value, &k);
    assert!(verify(&bytes(&signed), &keys).is_ok(), "an unknown member is fine when signed");
    let mut changed = signed.clone();
    changed["priority"]["level"] = json!(2);
    assert_eq!(code(&bytes(&changed), &keys), Some(Code::BadSignature));
    let mut removed = signed;
    removed.as_object_mut().expect("object").remove("priority");
    assert_eq!(code(&bytes(&removed), &keys), Some(Code::BadSignature));
}

#[test]
fn spelling_that_jcs_erases_still_verifies() {
    let k = key(0);
    let keys = [public(&k)];
    let signed = signed_json(&order(), &k);
    let compact = String::from_utf8(bytes(&signed)).expect("UTF-8");
    let sig = signed["sig"].as_str().expect("sig").to_owned();
    // Members in reverse order, at every level, with whitespace everywhere JSON allows it.
    let reversed = {
        fn reverse(v: &Value, indent: usize) -> String {
            let pad = " ".repeat(indent);
            match v {
                Value::Object(m) => {
                    let members: Vec<String> = m
                        .iter()
                        .rev()
                        .map(|(k, v)| format!("{pad}  {} :\t{}", Value::String(k.clone()), reverse(v, indent + 2)))
                        .collect();
                    format!("{{\r\n{}\n{pad}}}", members.join(" ,\n"))
                }
                Value::Array(a) => {
                    format!("[ {} ]", a.iter().map(|x| reverse(x, indent + 2)).collect::<Vec<_>>().join(" , "))
                }
                other => other.to_string(),
            }
        }
        reverse(&signed, 0)
    };
    let variants = [
        ("pretty", serde_json::to_string_pretty(&signed).expect("pretty")),
        ("reversed with whitespace", reversed),
        ("an escaped letter", compact.replacen("\"zj-rescue-3\"", "\"zj-r\\u0065scue-3\"", 1)),
        ("an escaped CJK character", compact.replacen("转", "\\u8f6c", 1)),
        ("an escaped slash", compact.replacen(" / ", " \\/ ", 1)),
        ("an exponent", compact.replacen("28.0215", "2.80215e1", 1)),
        ("a trailing zero", compact.replacen("120.6543", "120.65430", 1)),
        ("leading whitespace", format!(" \n\t{compact}\n")),
    ];
    for (name, text) in variants {
        assert_ne!(text, compact, "{name}: the variant changes the text");
        assert!(text.contains(&sig), "{name}: the signature stays");
        let got = verify(text.as_bytes(), &keys);
        assert!(got.is_ok(), "{name}: {got:?}\n{text}");
    }
}

#[test]
fn only_trusted_keys_verify_and_keys_rotate() {
    let (old, new, other) = (key(0), key(100), key(200));
    let by_old = bytes(&signed_json(&order(), &old));
    let by_new = bytes(&signed_json(&order(), &new));
    let by_other = bytes(&signed_json(&order(), &other));
    let both = [public(&old), public(&new)];
    assert!(verify(&by_old, &both).is_ok());
    assert!(verify(&by_new, &both).is_ok());
    assert!(verify(&by_new, &[public(&new), public(&old)]).is_ok(), "the order of the keys does not matter");
    assert_eq!(code(&by_other, &both), Some(Code::BadSignature));
    assert_eq!(code(&by_old, &[public(&new)]), Some(Code::BadSignature), "a retired key no longer verifies");
    let refused = verify(&by_other, &both).expect_err("refused");
    assert!(refused.reason.contains(&key_id(&public(&old))) && refused.reason.contains(&key_id(&public(&new))));
    // A valid order re-signed by another key, with the original signature swapped in: refused.
    let mut swapped: Value = serde_json::from_slice(&by_other).expect("JSON");
    swapped["sig"] = serde_json::from_slice::<Value>(&by_old).expect("JSON")["sig"].clone();
    swapped["team"] = json!("zj-rescue-9");
    assert_eq!(code(&bytes(&swapped), &both), Some(Code::BadSignature));
}

#[test]
fn signatures_missing_garbled_or_unverifiable_are_refused() {
    let k = key(0);
    let keys = [public(&k)];
    let signed = signed_json(&order(), &k);
    let sig = signed["sig"].as_str().expect("sig").to_owned();
    let raw = BASE64.decode(&sig).expect("base64");
    let with = |sig: Value| {
        let mut v = signed.clone();
        v["sig"] = sig;
        bytes(&v)
    };
    let without = {
        let mut v = signed.clone();
        v.as_object_mut().expect("object").remove("sig");
        bytes(&v)
    };
    let url_safe = base64::engine::general_purpose::URL_SAFE.encode(&raw);
    let cases: Vec<(&str, Vec<u8>, &[VerifyingKey], Code)> = vec![
        ("no sig", without.clone(), &keys, Code::MissingSignature),
        ("empty sig", with(json!("")), &keys, Code::MissingSignature),
        ("null sig", with(Value::Null), &keys, Code::MissingSignature),
        ("sig a number", with(json!(5)), &keys, Code::InvalidField),
        ("sig an array of bytes", with(json!(raw.clone())), &keys, Code::InvalidField),
        ("sig not base64", with(json!("not base64!")), &keys, Code::BadSignature),
        ("sig without padding", with(json!(sig.trim_end_matches('='))), &keys, Code::BadSignature),
        ("sig with a newline", with(json!(format!("{sig}\n"))), &keys, Code::BadSignature),
        ("sig of 63 bytes", with(json!(BASE64.encode(&raw[..63]))), &keys, Code::BadSignature),
        ("sig of 65 bytes", with(json!(BASE64.encode([raw.as_slice(), &[0]].concat()))), &keys, Code::BadSignature),
        ("sig all zero", with(json!(BASE64.encode([0u8; 64]))), &keys, Code::BadSignature),
        (
            "sig in hex",
            with(json!(raw.iter().map(|b| format!("{b:02x}")).collect::<String>())),
            &keys,
            Code::BadSignature,
        ),
        ("no trusted key", bytes(&signed), &[], Code::NoTrustedKey),
        ("no sig and no key", without, &[], Code::MissingSignature),
    ];
    for (name, payload, keys, want) in cases {
        let got = verify(&payload, keys);
        match got {
            Err(e) => {
                assert_eq!(e.code, want, "{name}: {}", e.reason);
                assert!(!e.reason.is_empty(), "{name}: a reason");
            }
            Ok(_) => panic!("{name}: verified"),
        }
    }
    if url_safe != sig {
        assert_eq!(code(&with(json!(url_safe)), &keys), Some(Code::BadSignature), "URL-safe base64");
    }
}

#[test]
fn malformed_orders_are_refused_like_other_messages() {
    let k = key(0);
    let keys = [public(&k)];
    let signed = String::from_utf8(bytes(&signed_json(&order(), &k))).expect("UTF-8");
    let resigned = |change: fn(&mut Value)| {
        let mut v = serde_json::to_value(order()).expect("value");
        change(&mut v);
        bytes(&sign_value(v, &k))
    };
    let cases: Vec<(&str, Vec<u8>, Code)> = vec![
        ("not JSON", b"{\"id\": ".to_vec(), Code::InvalidJson),
        ("an array", b"[1, 2]".to_vec(), Code::InvalidField),
        ("a string", b"\"order\"".to_vec(), Code::InvalidField),
        ("NaN", signed.replacen("28.0215", "NaN", 1).into_bytes(), Code::InvalidJson),
        ("trailing data", format!("{signed} {{}}").into_bytes(), Code::InvalidJson),
        ("300 KiB", resigned(|o| o["pad"] = json!("x".repeat(300 * 1024))), Code::PayloadTooLarge),
        ("team given twice", signed.replacen("{", "{\"team\":\"zj-rescue-9\",", 1).into_bytes(), Code::InvalidField),
        (
            "an unknown member given twice",
            signed.replacen("{", "{\"x\":1,\"x\":2,", 1).into_bytes(),
            Code::InvalidField,
        ),
        ("lat given twice", signed.replacen("\"lat\":", "\"lat\":1,\"lat\":", 1).into_bytes(), Code::InvalidField),
        ("an integer beyond 2^53", resigned(|o| o["extra"] = json!(9_007_199_254_740_993u64)), Code::InvalidField),
        (
            "qty beyond 2^53",
            resigned(|o| o["resources"][0]["qty"] = json!(-9_007_199_254_740_993i64)),
            Code::InvalidField,
        ),
        ("negative qty", resigned(|o| o["resources"][0]["qty"] = json!(-4)), Code::InvalidField),
        ("fractional qty", resigned(|o| o["resources"][0]["qty"] = json!(1.5)), Code::InvalidField),
        ("a resource as an array", resigned(|o| o["resources"][0] = json!(["boat", 4])), Code::InvalidField),
        ("empty item", resigned(|o| o["resources"][0]["item"] = json!("")), Code::InvalidField),
        ("destination as an array", resigned(|o| o["destination"] = json!([120.65, 28.02])), Code::InvalidField),
        ("lat 91", resigned(|o| o["destination"]["lat"] = json!(91.0)), Code::CoordinatesOutOfRange),
        ("no team", resigned(|o| drop(o.as_object_mut().map(|m| m.remove("team")))), Code::InvalidField),
        ("no exercise", resigned(|o| drop(o.as_object_mut().map(|m| m.remove("exercise")))), Code::InvalidField),
        ("team with a slash", resigned(|o| o["team"] = json!("zj/3")), Code::InvalidDeviceId),
        ("team with a wildcard", resigned(|o| o["team"] = json!("#")), Code::InvalidDeviceId),
        ("node empty", resigned(|o| o["node"] = json!("")), Code::InvalidDeviceId),
        ("id with a space", resigned(|o| o["id"] = json!("order 7")), Code::InvalidId),
        ("incident empty", resigned(|o| o["incident"] = json!("")), Code::InvalidId),
        ("region of five digits", resigned(|o| o["region"] = json!("33030")), Code::InvalidRegion),
        ("task over 4 KiB", resigned(|o| o["task"] = json!("x".repeat(4097))), Code::TextTooLong),
        ("issued_at without offset", resigned(|o| o["issued_at"] = json!("2026-09-14T09:55:00")), Code::InvalidTime),
        ("issued_at next year", resigned(|o| o["issued_at"] = json!("2027-09-14T09:55:00+08:00")), Code::TimeInFuture),
        ("issued_at in 1999", resigned(|o| o["issued_at"] = json!("1999-09-14T09:55:00+08:00")), Code::TimeTooOld),
        ("ack_within_s negative", resigned(|o| o["ack_within_s"] = json!(-1)), Code::InvalidField),
        ("exercise a string", resigned(|o| o["exercise"] = json!("false")), Code::InvalidField),
    ];
    for (name, payload, want) in cases {
        let got = verify(&payload, &keys).map_err(|e| (e.code, e.reason));
        match got {
            Err((c, reason)) => assert_eq!(c, want, "{name}: {reason}"),
            Ok(_) => panic!("{name}: accepted"),
        }
    }
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(code(deep.as_bytes(), &keys), Some(Code::InvalidJson), "nested too deeply");
}

#[test]
fn public_keys_travel_as_base64() {
    let k = public(&key(0));
    let text = public_key_base64(&k);
    assert_eq!(parse_public_key(&text), Ok(k));
    assert_eq!(parse_public_key(&format!("  {text}\n")), Ok(k), "whitespace around is trimmed");
    assert_eq!(key_id(&k).len(), 16);
    assert_ne!(key_id(&k), key_id(&public(&key(1))));
    for bad in ["", "not base64", "AAAA", &BASE64.encode([7u8; 33]), &BASE64.encode([0u8; 32])] {
        assert_eq!(parse_public_key(bad).map_err(|e| e.code), Err(Code::InvalidField), "{bad:?}");
    }
}

#[test]
fn a_relayed_ack_is_the_team_json_with_a_relay_id_in_front() {
    let received = br#"{"id":"ack-1","dispatch":"order-9","team":"team-3","status":"accepted","at":"2026-09-14T09:58:00+08:00","extra":[1,2]}"#;
    let ack = Ack::parse(received, "team-3", now(), &Limits::default()).expect("valid ack");
    assert_eq!(ack.status, AckStatus::Accepted);
    let relay_id = RelayedAck::relay_id("330000", "team-3", "ack-1");
    assert_eq!(relay_id, "330000:ack:team-3:ack-1");
    let payload = RelayedAck::payload(received, &relay_id).expect("payload");
    let text = String::from_utf8(payload.clone()).expect("UTF-8");
    assert_eq!(
        text,
        format!("{{\"relay_id\":\"330000:ack:team-3:ack-1\",{}", &std::str::from_utf8(received).expect("UTF-8")[1..])
    );
    let relayed = RelayedAck::parse(&payload, now(), &Limits::default()).expect("the hub reads it");
    assert_eq!(relayed, RelayedAck { relay_id, ack: ack.clone() });
    // Whitespace before the object is fine; what the team sent is kept.
    let spaced = RelayedAck::payload(b" \n{ \"id\":\"a\" }", "r").expect("payload");
    assert_eq!(spaced, b"{\"relay_id\":\"r\", \"id\":\"a\" }");
    assert!(RelayedAck::payload(b"[1]", "r").is_err());
    // The hub refuses a relayed ack without its relay id.
    assert_eq!(RelayedAck::parse(received, now(), &Limits::default()).map_err(|e| e.code), Err(Code::InvalidField));
}
