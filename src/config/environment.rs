//! The destination's settings as environment variables (the sidecar under `wasmtime serve`)
//! or `wasi:config` keys (Spin), every name derived from [`Settings`]: `WIF_PUSH_` and the key
//! in upper case (`WIF_PUSH_BUCKET`, `WIF_PUSH_ENDPOINTS_STS`), with the destination's id in
//! front for one of several (`WIF_PUSH_PARTNER_A_BUCKET`). Old names are the keys' serde
//! aliases; an alias inside a table is also read at the top level, as it was once written
//! (`WIF_PUSH_TOKEN_URL`).

use std::collections::BTreeMap;

use serde::de::value::{Error as DeError, MapDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};

use super::settings::{Endpoints, TABLES, keys, names};
use super::{ConfigError, Settings};

/// The environment variable that lists several destinations (`partner-a,partner-b`).
pub const DESTINATIONS_VARIABLE: &str = "WIF_PUSH_DESTINATIONS";

/// The `wasi:keyvalue` store a sidecar built with a token store keeps its access tokens in, so
/// that instances share them (`default` in Spin; empty for Wasmtime's in-memory store). Unset:
/// each instance keeps its own.
pub const TOKEN_STORE: &str = "WIF_PUSH_TOKEN_STORE";
/// The id of the one destination when [`DESTINATIONS_VARIABLE`] is unset.
pub const DEFAULT_ID: &str = "default";

/// The variable for `key` (`bucket`, `endpoints.sts`) of destination `id` (`None`: the shared
/// one): `WIF_PUSH_BUCKET`, or `WIF_PUSH_PARTNER_A_BUCKET` for destination `partner-a`.
pub fn variable(id: Option<&str>, key: &str) -> String {
    let mut name = String::from("WIF_PUSH_");
    if let Some(id) = id {
        name.push_str(&id.to_ascii_uppercase().replace('-', "_"));
        name.push('_');
    }
    name.push_str(&key.to_ascii_uppercase().replace('.', "_"));
    name
}

/// The variables that carry `settings` for destination `id`, by their canonical names.
pub fn variables(id: Option<&str>, settings: &Settings) -> Vec<(String, String)> {
    fn walk(
        id: Option<&str>,
        prefix: &str,
        value: &serde_json::Value,
        out: &mut Vec<(String, String)>,
    ) {
        let serde_json::Value::Object(map) = value else {
            return;
        };
        for (key, inner) in map {
            let path = format!("{prefix}{key}");
            match inner {
                serde_json::Value::Null => {}
                serde_json::Value::Object(_) => walk(id, &format!("{path}."), inner, out),
                serde_json::Value::String(text) => out.push((variable(id, &path), text.clone())),
                other => out.push((variable(id, &path), other.to_string())),
            }
        }
    }
    let mut out = Vec::new();
    let value = serde_json::to_value(settings).expect("settings serialize");
    walk(id, "", &value, &mut out);
    out
}

/// Which variable set each setting: to name it in errors.
#[derive(Debug, Default)]
pub struct SetBy {
    id: Option<String>,
    /// (canonical key path, variable)
    names: Vec<(String, String)>,
}

impl SetBy {
    /// The variable that set `key` (a canonical path), or the one that would.
    pub fn variable(&self, key: &str) -> String {
        self.names
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| variable(self.id.as_deref(), key))
    }

    /// `error` with its field named by the variable, when the field is a setting.
    pub fn rename(&self, error: ConfigError) -> ConfigError {
        if keys().contains(&error.field) {
            ConfigError {
                field: self.variable(&error.field),
                ..error
            }
        } else {
            error
        }
    }
}

/// The settings of destination `id` from `lookup` (the environment, then `wasi:config`). A
/// destination's own variable wins over the shared one, so common settings are written once.
/// Errors name the variable.
pub fn settings(
    id: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(Settings, SetBy), ConfigError> {
    let canonical = keys();
    let find = |key: &str| -> Option<(String, String)> {
        let own = id.map(|id| variable(Some(id), key));
        own.into_iter()
            .chain([variable(None, key)])
            .find_map(|name| lookup(&name).map(|value| (name, value)))
    };
    // (key path as written, variable, value)
    let mut found: Vec<(String, String, String)> = Vec::new();
    for name in names::<Settings>() {
        if TABLES.contains(&name) {
            for inner in names::<Endpoints>() {
                let path = format!("{name}.{inner}");
                let is_alias = !canonical.contains(&path);
                if let Some((variable, value)) =
                    find(&path).or_else(|| is_alias.then(|| find(inner)).flatten())
                {
                    found.push((path, variable, value));
                }
            }
        } else if let Some((variable, value)) = find(name) {
            found.push((name.to_owned(), variable, value));
        }
    }
    let set_by = SetBy {
        id: id.map(str::to_owned),
        names: found
            .iter()
            .map(|(path, variable, _)| (canonical_key(path), variable.clone()))
            .collect(),
    };
    let tree = Node::tree(found.into_iter().map(|(path, _, value)| (path, value)));
    match serde_path_to_error::deserialize(tree) {
        Ok(settings) => Ok((settings, set_by)),
        Err(e) => {
            let path = canonical_key(&e.path().to_string());
            let named: Vec<&str> = set_by
                .names
                .iter()
                .filter(|(p, _)| *p == path || p.starts_with(&format!("{path}.")))
                .map(|(_, v)| v.as_str())
                .collect();
            Err(ConfigError {
                field: if named.is_empty() {
                    path
                } else {
                    named.join(" and ")
                },
                problem: format!("is not valid ({})", e.inner()),
                fix: "see the README's sidecar settings for each variable's form".into(),
            })
        }
    }
}

/// The canonical path of a key as written (an alias resolves to the key it stands for): the
/// key that a one-setting document under that name fills in.
fn canonical_key(path: &str) -> String {
    let probe = Node::tree([(path.to_owned(), "1".to_owned())]);
    serde::Deserialize::deserialize(probe)
        .ok()
        .and_then(|settings: Settings| {
            variables(None, &settings)
                .into_iter()
                .next()
                .map(|(name, _)| name)
        })
        .and_then(|name| keys().into_iter().find(|key| variable(None, key) == name))
        .unwrap_or_else(|| path.to_owned())
}

/// The destinations the environment configures: the ids listed in [`DESTINATIONS_VARIABLE`],
/// or the one [`DEFAULT_ID`] (whose settings then have no id in their names).
pub fn destination_ids(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(list) = lookup(DESTINATIONS_VARIABLE) else {
        return Ok(None);
    };
    let ids: Vec<String> = list
        .split(',')
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(ConfigError {
            field: DESTINATIONS_VARIABLE.into(),
            problem: "is empty".into(),
            fix: "list destination ids, e.g. WIF_PUSH_DESTINATIONS=partner-a,partner-b, or unset \
                  it for one destination"
                .into(),
        });
    }
    for id in &ids {
        let valid = id.len() <= 63
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !id.starts_with('-');
        if !valid {
            return Err(ConfigError {
                field: DESTINATIONS_VARIABLE.into(),
                problem: format!(
                    "names the destination {id_q}",
                    id_q = crate::error::quote(id, 100)
                ),
                fix: "use ids of lowercase letters, digits and '-', e.g. partner-a".into(),
            });
        }
    }
    Ok(Some(ids))
}

/// Settings found in variables: text leaves, parsed into the type each field asks for.
enum Node {
    Leaf(String),
    Table(BTreeMap<String, Node>),
}

impl Node {
    /// A table of leaves from (key path, value) pairs (`endpoints.sts` goes in `endpoints`).
    fn tree(leaves: impl IntoIterator<Item = (String, String)>) -> Node {
        let mut top = BTreeMap::new();
        for (path, value) in leaves {
            let leaf = Node::Leaf(value);
            match path.split_once('.') {
                Some((table, key)) => {
                    let table = top
                        .entry(table.to_owned())
                        .or_insert_with(|| Node::Table(BTreeMap::new()));
                    if let Node::Table(map) = table {
                        map.insert(key.to_owned(), leaf);
                    }
                }
                None => {
                    top.insert(path, leaf);
                }
            }
        }
        Node::Table(top)
    }

    fn text(&self) -> Result<&str, DeError> {
        match self {
            Node::Leaf(value) => Ok(value.trim()),
            Node::Table(_) => Err(de::Error::custom("expected a value, not a table")),
        }
    }
}

impl<'de> IntoDeserializer<'de, DeError> for Node {
    type Deserializer = Node;
    fn into_deserializer(self) -> Node {
        self
    }
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let text = self.text()?;
            let n = text
                .parse()
                .map_err(|_| de::Error::custom(format!("{text_q} is not a whole number", text_q = crate::error::quote(&text, 100))))?;
            visitor.$visit(n)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Node::Leaf(value) => visitor.visit_string(value),
            Node::Table(map) => visitor.visit_map(MapDeserializer::new(map.into_iter())),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Only variables that are set become nodes.
        visitor.visit_some(self)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.text()? {
            "true" | "1" => visitor.visit_bool(true),
            "false" | "0" => visitor.visit_bool(false),
            other => Err(de::Error::custom(format!(
                "{other_q}: set true or false",
                other_q = crate::error::quote(other, 100)
            ))),
        }
    }

    parse_number!(
        deserialize_u8 => visit_u8, deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32, deserialize_u64 => visit_u64
    );

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::lookup as env;

    #[test]
    fn names_are_derived_from_the_keys() {
        assert_eq!(variable(None, "bucket"), "WIF_PUSH_BUCKET");
        assert_eq!(
            variable(Some("partner-a"), "endpoints.sts"),
            "WIF_PUSH_PARTNER_A_ENDPOINTS_STS"
        );
    }

    #[test]
    fn every_setting_round_trips_through_its_variables() {
        let settings = Settings {
            credential_config: Some("{}".into()),
            project_number: Some("1".into()),
            token_lifetime_seconds: Some(900),
            imds_v1_fallback: Some(true),
            chunk_size: Some(262_144),
            endpoints: Endpoints {
                sts: Some("http://127.0.0.1:1/v1/token".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let vars = variables(Some("p"), &settings);
        assert!(
            vars.contains(&(
                "WIF_PUSH_P_ENDPOINTS_STS".into(),
                "http://127.0.0.1:1/v1/token".into()
            )),
            "{vars:?}"
        );
        assert!(vars.contains(&("WIF_PUSH_P_IMDS_V1_FALLBACK".into(), "true".into())));
        let map: std::collections::HashMap<String, String> = vars.into_iter().collect();
        let (back, _) = super::settings(Some("p"), &|name| map.get(name).cloned()).unwrap();
        assert_eq!(back, settings);
    }

    #[test]
    fn old_names_still_work_and_the_own_variable_wins() {
        let (s, set_by) = settings(
            Some("a"),
            &env(&[
                ("WIF_PUSH_TOKEN_URL", "https://sts.example/v1/token"),
                ("WIF_PUSH_CREDENTIAL_CONFIG_FILE", "/etc/wif.json"),
                ("WIF_PUSH_BUCKET", "shared"),
                ("WIF_PUSH_A_BUCKET", "own"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.endpoints.sts.as_deref(),
            Some("https://sts.example/v1/token")
        );
        assert_eq!(s.credential_config.as_deref(), Some("/etc/wif.json"));
        assert_eq!(s.bucket.as_deref(), Some("own"));
        assert_eq!(
            set_by.variable("credential_config"),
            "WIF_PUSH_CREDENTIAL_CONFIG_FILE"
        );
        assert_eq!(set_by.variable("endpoints.sts"), "WIF_PUSH_TOKEN_URL");
        assert_eq!(set_by.variable("bucket"), "WIF_PUSH_A_BUCKET");
        assert_eq!(set_by.variable("prefix"), "WIF_PUSH_A_PREFIX");
    }

    #[test]
    fn a_new_setting_has_its_variable_without_more_code() {
        let (s, _) = settings(None, &env(&[("WIF_PUSH_UPLOAD_TIMEOUT_SECONDS", "600")])).unwrap();
        assert_eq!(s.upload_timeout_seconds, Some(600));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = settings(None, &env(&[("WIF_PUSH_CHUNK_SIZE", "big")])).unwrap_err();
        assert_eq!(e.field, "WIF_PUSH_CHUNK_SIZE");
        assert!(e.problem.contains("not a whole number"), "{e}");
        let e = settings(None, &env(&[("WIF_PUSH_IMDS_V1_FALLBACK", "yes")])).unwrap_err();
        assert_eq!(e.field, "WIF_PUSH_IMDS_V1_FALLBACK");
        let e = settings(
            None,
            &env(&[
                ("WIF_PUSH_TOKEN_URL", "https://a"),
                ("WIF_PUSH_ENDPOINTS_STS", "https://b"),
            ]),
        )
        .unwrap_err();
        assert!(
            e.field.contains("WIF_PUSH_ENDPOINTS_STS") && e.field.contains("WIF_PUSH_TOKEN_URL"),
            "{e}"
        );
    }
}
