//! A call's arguments as CEL values, read straight from the raw JSON the inspector kept: one
//! pass, no intermediate `serde_json::Value`, strings borrowed from the request body unless
//! they hold escapes, and only the top-level fields the policy's conditions read (the others are
//! skipped unbuilt, so a large argument no condition looks at costs a scan, not a copy). Owns
//! that conversion and the record of which fields are read; not the claims' conversion (once per
//! token, in `condition.rs`), nor when it happens (`Scope::args`, once per decision and only
//! when a condition reads `args`).
//!
//! The values match the claims' conversion: numbers that fit an `i64` are ints, a larger `u64`
//! stays unsigned, others are doubles; of duplicate keys the last wins, as `serde_json` reads
//! them (the inspector refuses such bodies before any condition sees them).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Which top-level fields of `args` a policy's conditions read: all of them as soon as one
/// condition reads `args` other than as `args.x` or `has(args.x)`.
#[derive(Debug, Default)]
pub(super) struct ArgFields {
    whole: bool,
    fields: Vec<Box<str>>,
}

impl ArgFields {
    /// Adds what one condition reads of `args`.
    pub(super) fn add(&mut self, whole: bool, fields: &[&str]) {
        self.whole |= whole;
        for field in fields {
            if !self.keeps(field) {
                self.fields.push((*field).into());
            }
        }
    }

    fn keeps(&self, field: &str) -> bool {
        self.whole || self.fields.iter().any(|f| **f == *field)
    }
}

/// Parses `raw` into a CEL value that borrows its strings from it, holding only the fields of
/// the object that `read` names.
pub(super) fn from_raw<'r>(
    raw: &'r RawValue,
    read: &ArgFields,
) -> Result<Box<dyn Val + 'r>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    let value = if read.whole {
        ToVal.deserialize(&mut deserializer)?
    } else {
        deserializer.deserialize_map(Fields(read))?
    };
    deserializer.end()?;
    Ok(value)
}

/// The arguments object with only the fields read.
struct Fields<'n>(&'n ArgFields);

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Box<dyn Val + 'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the arguments object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = HashMap::new();
        while let Some(key) = map.next_key_seed(ToKey)? {
            if self.0.keeps(&key) {
                let value = map.next_value_seed(ToVal)?;
                members.insert(map_key(key), value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Box::new(CelMap::from(members)))
    }
}

/// Builds one CEL value from whatever JSON value comes next.
struct ToVal;

impl<'de> DeserializeSeed<'de> for ToVal {
    type Value = Box<dyn Val + 'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ToVal {
    type Value = Box<dyn Val + 'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Box::new(CelNull))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Box::new(CelBool::from(b)))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Self::Value, E> {
        Ok(Box::new(CelInt::from(i)))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Self::Value, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => Box::new(CelInt::from(i)),
            Err(_) => Box::new(CelUInt::from(u)),
        })
    }

    fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
        Ok(Box::new(CelDouble::from(f)))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Box::new(CelString::from(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Box::new(CelString::from(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Box::new(CelString::from(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(ToVal)? {
            items.push(item);
        }
        Ok(Box::new(CelList::from(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = HashMap::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key_seed(ToKey)? {
            let value = map.next_value_seed(ToVal)?;
            members.insert(map_key(key), value);
        }
        Ok(Box::new(CelMap::from(members)))
    }
}

fn map_key(key: Cow<'_, str>) -> CelMapKey<'_> {
    match key {
        Cow::Borrowed(key) => CelMapKey::from(key),
        Cow::Owned(key) => CelMapKey::from(key),
    }
}

/// An object's key, borrowed where the text allows.
struct ToKey;

impl<'de> DeserializeSeed<'de> for ToKey {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ToKey {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
mod tests {
    use cel::common::types::CelString;

    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn read(whole: bool, fields: &[&str]) -> ArgFields {
        let mut read = ArgFields::default();
        read.add(whole, fields);
        read
    }

    fn member<'v>(map: &'v (dyn Val + 'v), key: &str) -> Option<&'v (dyn Val + 'v)> {
        let map = map.downcast_ref::<CelMap>().expect("a map");
        map.inner()
            .get(&CelMapKey::from(key.to_owned()))
            .map(|value| &**value)
    }

    #[test]
    fn strings_are_borrowed_from_the_request_unless_they_hold_escapes() {
        let text = raw(r#"{"customer_id":"acme-7","note":"line\none"}"#);
        let args = from_raw(&text, &read(true, &[])).unwrap();
        let id = member(&*args, "customer_id").unwrap();
        let id = id.downcast_ref::<CelString>().unwrap();
        assert_eq!(id.inner(), "acme-7");
        assert!(id.as_borrowed().is_some(), "copied, not borrowed");
        let note = member(&*args, "note").unwrap();
        let note = note.downcast_ref::<CelString>().unwrap();
        assert_eq!(note.inner(), "line\none");
    }

    #[test]
    fn only_the_fields_read_are_built_unless_args_is_read_whole() {
        let text = raw(r#"{"customer_id":"acme-7","history":[{"a":1},{"b":[2,3]}],"n":5}"#);
        let some = from_raw(&text, &read(false, &["customer_id", "n"])).unwrap();
        assert!(member(&*some, "customer_id").is_some());
        assert!(member(&*some, "n").is_some());
        assert!(member(&*some, "history").is_none());
        let all = from_raw(&text, &read(true, &["n"])).unwrap();
        assert!(member(&*all, "history").is_some());
    }

    #[test]
    fn numbers_are_ints_where_they_fit_then_unsigned_then_doubles() {
        let text = raw(r#"{"a":-3,"b":18446744073709551615,"c":1.5,"d":7}"#);
        let args = from_raw(&text, &read(true, &[])).unwrap();
        let kind = |key: &str| {
            let value = member(&*args, key).unwrap();
            if value.downcast_ref::<CelInt>().is_some() {
                "int"
            } else if value.downcast_ref::<CelUInt>().is_some() {
                "uint"
            } else if value.downcast_ref::<CelDouble>().is_some() {
                "double"
            } else {
                "other"
            }
        };
        assert_eq!(
            [kind("a"), kind("b"), kind("c"), kind("d")],
            ["int", "uint", "double", "int"]
        );
    }

    #[test]
    fn trailing_text_and_a_non_object_are_errors() {
        assert!(from_raw(&raw(r#"[1]"#), &read(false, &["a"])).is_err());
        assert!(from_raw(&raw(r#"[1]"#), &read(true, &[])).is_ok());
    }
}
