//! The payload's JSON in one pass: a tree that borrows its strings from the payload where
//! it can (a string with escapes is owned) and refuses a repeated key at any depth while
//! it is built (issue 9: `{"aqi": 50, "aqi": 500}` must not mean 500).
//!
//! Numbers are kept as the `f64` that `serde_json::Value::as_f64` would give (the same
//! deserializer, `float_roundtrip`), so every value and every reason reads as before.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One JSON value of a payload.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json<'a> {
    Null,
    Bool(bool),
    Number(f64),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// An object's members in payload order; no key appears twice.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

/// Above this many members a key set is kept for the duplicate check (a linear scan is
/// cheaper for the few keys a real payload has).
const SCAN_LIMIT: usize = 16;

impl<'a> Object<'a> {
    pub(super) fn get(&self, k: &str) -> Option<&Json<'a>> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }
}

impl<'a> Json<'a> {
    /// What a reason calls this kind of value ("… must be a number, got a string").
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(n as f64))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(n as f64))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        Ok(Json::Number(n))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(a.size_hint().unwrap_or(0));
        while let Some(v) = a.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
        let mut seen: Option<BTreeSet<Cow<'de, str>>> = None;
        while let Some(Key(k)) = a.next_key()? {
            let v = a.next_value()?;
            let repeated = match &mut seen {
                Some(set) => !set.insert(k.clone()),
                None => members.iter().any(|(key, _)| *key == k),
            };
            if repeated {
                return Err(de::Error::custom(format!(
                    "duplicate key {k:?} (a repeated key is ambiguous)"
                )));
            }
            members.push((k, v));
            if seen.is_none() && members.len() > SCAN_LIMIT {
                seen = Some(members.iter().map(|(key, _)| key.clone()).collect());
            }
        }
        Ok(Json::Object(Object(members)))
    }
}

/// An object key, borrowed from the payload unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Json<'_>, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn numbers_read_as_value_reads_them() {
        for s in [
            "0",
            "-0",
            "1",
            "-7",
            "1.5",
            "1e3",
            "18446744073709551615",
            "0.1",
            "-2.5e-3",
        ] {
            let v: serde_json::Value = serde_json::from_str(s).unwrap();
            let Json::Number(n) = parse(s).unwrap() else {
                panic!("{s} is a number")
            };
            assert_eq!(n.to_bits(), v.as_f64().unwrap().to_bits(), "{s}");
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let Json::Object(o) = parse(r#"{"a": "x", "b\u0063": "y\n"}"#).unwrap() else {
            panic!("an object")
        };
        assert!(matches!(o.get("a"), Some(Json::String(Cow::Borrowed("x")))));
        assert!(matches!(o.get("bc"), Some(Json::String(Cow::Owned(s))) if s == "y\n"));
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth_and_in_large_objects() {
        assert!(parse(r#"{"a": 1, "\u0061": 2}"#).is_err());
        assert!(parse(r#"{"x": [{"a": 1, "a": 1}]}"#).is_err());
        assert!(parse(r#"[{"a": 1}, {"a": 1}]"#).is_ok());
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        assert!(parse(&format!("{{{}}}", many.join(", "))).is_ok());
        let dup = format!("{{{}, \"k3\": 0}}", many.join(", "));
        let e = parse(&dup).unwrap_err().to_string();
        assert!(e.contains("duplicate key \"k3\""), "{e}");
    }
}
