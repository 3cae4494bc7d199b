//! The config reference (`config/example.toml` and `config/example-http.toml`, which document
//! every key with its default) is checked against the config types: every key the types accept
//! is documented, and every documented key, commented out or not, is one the types accept.
//!
//! The keys the types accept are read from the types themselves: a recording deserializer
//! walks [`pgward::config::Config`] and collects the field list serde's derive hands to every
//! struct, so a field added to a config type without documentation fails here.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

const REFERENCES: [&str; 2] = ["config/example.toml", "config/example-http.toml"];

/// What the walk found: the dotted path of every struct field, and which of them are maps
/// (whose keys are the operator's, not pgward's).
#[derive(Default)]
struct Keys {
    fields: BTreeSet<String>,
    maps: BTreeSet<String>,
}

/// Walks a type's `Deserialize` impl, recording the dotted path of every struct field. Arrays
/// of tables are transparent (`tools.params.name`); maps are leaves.
struct Recorder<'a> {
    path: String,
    keys: &'a mut Keys,
}

#[derive(Debug)]
struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("all")
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_bool(false)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(1)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(1)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(1)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_i64(1)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(1)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f64(1.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f64(1.0)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_seq(OneElement(Some(self)))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.keys.maps.insert(self.path.clone());
        v.visit_map(Fields {
            path: self.path,
            keys: self.keys,
            fields: &[],
            next: 0,
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_map(Fields {
            path: self.path,
            keys: self.keys,
            fields,
            next: 0,
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        let first = variants
            .first()
            .ok_or_else(|| Error(format!("{}: an enum without variants", self.path)))?;
        v.visit_enum(first.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

/// A sequence of one element, recorded at the sequence's own path.
struct OneElement<'a>(Option<Recorder<'a>>);

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.take().map(|r| seed.deserialize(r)).transpose()
    }
}

/// A struct's fields, each recorded and then walked.
struct Fields<'a> {
    path: String,
    keys: &'a mut Keys,
    fields: &'static [&'static str],
    next: usize,
}

impl Fields<'_> {
    fn field_path(&self) -> Result<String, Error> {
        let field = self
            .fields
            .get(self.next)
            .ok_or_else(|| Error(format!("{}: no field to read", self.path)))?;
        Ok(if self.path.is_empty() {
            (*field).to_string()
        } else {
            format!("{}.{field}", self.path)
        })
    }
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.fields.get(self.next) {
            Some(field) => {
                let path = self.field_path()?;
                self.keys.fields.insert(path);
                seed.deserialize(field.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let path = self.field_path()?;
        self.next += 1;
        seed.deserialize(Recorder {
            path,
            keys: self.keys,
        })
    }
}

/// Every key the config types accept.
fn type_keys() -> Keys {
    let mut keys = Keys::default();
    pgward::config::Config::deserialize(Recorder {
        path: String::new(),
        keys: &mut keys,
    })
    .unwrap_or_else(|e| panic!("walking the config types: {e}"));
    keys
}

/// Every key a reference file documents, as dotted paths: its TOML keys, and the keys of its
/// commented-out lines that are TOML themselves (`# [session]`, `# hmac_key = "..."`).
fn documented_keys(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut keys = BTreeSet::new();
    let mut table: Vec<String> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let line = match line.strip_prefix('#') {
            Some(commented) => commented.trim(),
            None => line,
        };
        if line.is_empty() {
            continue;
        }
        // One line of TOML on its own: a table header or a `key = value` pair. Prose in comments
        // is not TOML and is skipped; an uncommented line that is not TOML fails.
        let parsed: Result<toml::Table, _> = toml::from_str(line);
        let Ok(parsed) = parsed else {
            assert!(
                raw.trim_start().starts_with('#'),
                "{file}:{}: not TOML: {raw}",
                n + 1
            );
            continue;
        };
        if let Some(header) = line
            .strip_prefix("[[")
            .and_then(|h| h.split("]]").next())
            .or_else(|| line.strip_prefix('[').and_then(|h| h.split(']').next()))
        {
            table = header.trim().split('.').map(str::to_string).collect();
            keys.insert(table.join("."));
            continue;
        }
        insert_keys(&table, &parsed, &mut keys);
    }
    keys
}

/// The dotted paths of `table`'s keys under `prefix`, inline tables included.
fn insert_keys(prefix: &[String], table: &toml::Table, keys: &mut BTreeSet<String>) {
    for (key, value) in table {
        let mut path = prefix.to_vec();
        path.push(key.clone());
        keys.insert(path.join("."));
        if let toml::Value::Table(inner) = value {
            insert_keys(&path, inner, keys);
        }
    }
}

#[test]
fn the_walk_sees_nested_tables_and_arrays_of_tables() {
    let Keys { fields: keys, maps } = type_keys();
    for key in [
        "database.url",
        "tables.columns",
        "tools.params.max_length",
        "auth.issuers.jwks_url",
        "http.tls.client_ca_file",
        "audit.failure_policy",
    ] {
        assert!(keys.contains(key), "{key} missing from {keys:#?}");
    }
    // Maps are leaves: their keys are the operator's, not pgward's.
    assert!(keys.contains("tables.redact"));
    assert!(maps.contains("tables.redact"));
    assert!(!keys.iter().any(|k| k.starts_with("tables.redact.")));
    assert!(!maps.contains("tables.row_filter"));
    // Skipped fields are not config keys.
    assert!(!keys.contains("unknown_keys"));
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    let Keys {
        fields: accepted,
        maps,
    } = type_keys();
    let mut documented = BTreeSet::new();
    for file in REFERENCES {
        documented.extend(documented_keys(file));
    }
    // An example map entry (`redact = { email = "mask" }`) names the operator's keys.
    documented.retain(|k| !maps.iter().any(|m| k.starts_with(&format!("{m}."))));
    let undocumented: Vec<&String> = accepted.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "keys the config types accept but no reference documents ({REFERENCES:?}): {undocumented:#?}"
    );
    let unknown: Vec<&String> = documented.difference(&accepted).collect();
    assert!(
        unknown.is_empty(),
        "keys the references document but the config types do not accept: {unknown:#?}"
    );
}
