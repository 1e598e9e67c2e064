//! Layered settings: flat dotted keys (`images.kine.tag`), each value tagged with where it came
//! from, merged in order over the defaults. String values (from `--set`, the environment or a
//! ConfigMap) are typed by the key they set.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::Settings;

/// Where a setting's value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingSource {
    Default,
    /// A values file, by path.
    File(String),
    /// An environment variable, by name.
    Env(String),
    /// A `--set key=value` argument.
    Set,
    /// A dedicated command-line flag, by name.
    Flag(String),
    /// A ConfigMap, as `namespace/name`.
    ConfigMap(String),
}

impl fmt::Display for SettingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("the default"),
            Self::File(path) => write!(f, "values file {path}"),
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Set => f.write_str("--set"),
            Self::Flag(name) => write!(f, "flag --{name}"),
            Self::ConfigMap(name) => write!(f, "ConfigMap {name}"),
        }
    }
}

/// A setting could not be read or is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("unknown setting {key:?} (from {origin}); {known}")]
    UnknownKey {
        key: String,
        origin: SettingSource,
        /// "did you mean …?" or the settings there are.
        known: String,
    },
    #[error(
        "environment variable {variable} is not a kflex setting{hint}; kflex reads KFLEX_ and a \
         setting's key in upper snake case (KFLEX_EXTERNAL_PORT for externalPort)"
    )]
    UnknownVariable {
        variable: String,
        /// " (did you mean KFLEX_…?)", or empty.
        hint: String,
    },
    #[error("setting {key} (from {origin}): {reason}")]
    InvalidValue {
        key: String,
        origin: SettingSource,
        reason: String,
    },
    #[error("{origin}: {reason}")]
    InvalidDocument {
        origin: SettingSource,
        reason: String,
    },
}

/// The type of a setting, taken from its default value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    String,
    Integer,
    Bool,
    List,
    /// A mapping of strings: nested in a document, a JSON object in a string.
    Map,
    /// A list of mappings (entries with fields of their own): nested in a document, a JSON
    /// array in a string.
    Objects,
}

/// Settings whose value is a mapping of strings (their keys are the user's, such as annotation
/// keys with dots and slashes), not a group of settings.
const MAP_KEYS: [&str; 1] = ["loadBalancer.annotations"];

/// Settings whose value is a list of entries, each a mapping of fields (typed when the settings
/// are resolved).
const OBJECT_LIST_KEYS: [&str; 1] = ["backup.storage"];

#[derive(Clone, Debug)]
struct Entry {
    key: String,
    value: Value,
    source: SettingSource,
}

/// One layer of settings, applied over the layers before it.
#[derive(Clone, Debug, Default)]
pub struct Layer {
    entries: Vec<Entry>,
}

impl Layer {
    /// A nested document such as a values file: `{domain: x, images: {kine: {tag: v1}}}`.
    pub fn from_document(source: SettingSource, document: &Value) -> Result<Self, SettingsError> {
        let Value::Object(map) = document else {
            if document.is_null() {
                return Ok(Self::default());
            }
            return Err(SettingsError::InvalidDocument {
                origin: source,
                reason: "must be a mapping of settings".to_owned(),
            });
        };
        let registry = registry();
        let mut entries = Vec::new();
        flatten_document(map, "", &registry, &source, &mut entries)?;
        Ok(Self { entries })
    }

    /// String values keyed by setting name, as `--set`, a ConfigMap or a flag give them.
    pub fn from_strings<K, V>(
        source: impl Fn(&str) -> SettingSource,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, SettingsError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let registry = registry();
        let entries = pairs
            .into_iter()
            .map(|(key, value)| {
                let key = key.as_ref();
                string_entry(&registry, key, value.as_ref(), source(key))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// The `KFLEX_*` variables among `vars` that name a setting (`KFLEX_EXTERNAL_PORT`,
    /// `KFLEX_IMAGES_KINE_TAG`), by exact name, so no two names set one setting; the same name
    /// twice (possible in a process's environment block) is refused rather than one winning.
    /// Any other `KFLEX_*` variable is refused, with the setting it probably meant (a typo would
    /// otherwise render with the default silently), except those kflex reads for other purposes
    /// ([`OTHER_VARIABLES`]). Variables without that prefix are ignored.
    pub fn from_environment<K, V>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, SettingsError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let registry = registry();
        let by_env_name: BTreeMap<String, &String> =
            registry.keys().map(|key| (env_name(key), key)).collect();
        let mut entries = Vec::new();
        for (name, value) in vars {
            let name = name.as_ref();
            if name.starts_with("KFLEX_")
                && !by_env_name.contains_key(name)
                && !is_other_variable(name)
            {
                let hint = crate::text::nearest(name, by_env_name.keys().map(String::as_str))
                    .map_or_else(String::new, |known| format!(" (did you mean {known}?)"));
                return Err(SettingsError::UnknownVariable {
                    variable: name.to_owned(),
                    hint,
                });
            }
            if let Some(key) = by_env_name.get(name) {
                let source = SettingSource::Env(name.to_owned());
                if entries.iter().any(|entry: &Entry| entry.key == **key) {
                    return Err(SettingsError::InvalidValue {
                        key: (*key).clone(),
                        origin: source,
                        reason: "the variable is set twice in the environment".to_owned(),
                    });
                }
                entries.push(string_entry(&registry, key, value.as_ref(), source)?);
            }
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { entries })
    }

    /// Whether this layer sets nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `KFLEX_*` variables that are not settings, never refused: the end-to-end suite's, the test
/// suites' and CI's (and any `KFLEX_*_PYTHON`, the interpreters tests run checks with), and the
/// image the example pull-request workflow renders with.
pub const OTHER_VARIABLES: [&str; 9] = [
    "KFLEX_E2E_KUBECONFIG",
    "KFLEX_E2E_KEEP",
    "KFLEX_E2E_FAKE_API",
    "KFLEX_UPDATE_GOLDEN",
    "KFLEX_HELM_CHART",
    "KFLEX_BIN",
    "KFLEX_GATEWAY_API_CRDS",
    "KFLEX_SHARED_ACCEPTANCE",
    "KFLEX_IMAGE",
];

fn is_other_variable(name: &str) -> bool {
    OTHER_VARIABLES.contains(&name) || name.ends_with("_PYTHON")
}

/// Every setting key with the environment variable that sets it, in key order.
pub fn known_keys() -> Vec<(String, String)> {
    registry()
        .into_keys()
        .map(|key| {
            let env = env_name(&key);
            (key, env)
        })
        .collect()
}

/// Whether `key` is a setting that holds a list (given as comma-separated text in strings).
pub fn is_list_key(key: &str) -> bool {
    registry().get(key) == Some(&KeyKind::List)
}

/// The settings as the string map a ConfigMap holds: every key, lists comma-separated,
/// mappings as JSON objects, and the exposure in effect.
pub fn flatten_for_config_map(settings: &Settings) -> BTreeMap<String, String> {
    let mut flat = BTreeMap::new();
    if let Ok(Value::Object(map)) = serde_json::to_value(settings) {
        flatten_values(&map, "", &mut flat);
    }
    flat.insert(
        "exposure".to_owned(),
        Value::from(settings.exposure().as_str()),
    );
    flat.into_iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s,
                Value::Array(items) if OBJECT_LIST_KEYS.contains(&key.as_str()) => {
                    Value::Array(items).to_string()
                }
                Value::Array(items) => items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map_or_else(|| item.to_string(), str::to_owned)
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                Value::Object(map) => Value::Object(map).to_string(),
                other => other.to_string(),
            };
            (key, text)
        })
        .collect()
}

/// Applies `layers` over the defaults and builds the typed settings, with where each key's value
/// came from.
pub(super) fn merge_with_origins(
    layers: &[Layer],
) -> Result<(Settings, BTreeMap<String, SettingSource>), SettingsError> {
    let mut merged: BTreeMap<String, (Value, SettingSource)> = BTreeMap::new();
    if let Ok(Value::Object(defaults)) = serde_json::to_value(Settings::default()) {
        let mut flat = BTreeMap::new();
        flatten_values(&defaults, "", &mut flat);
        merged.extend(
            flat.into_iter()
                .map(|(k, v)| (k, (v, SettingSource::Default))),
        );
    }
    for entry in layers.iter().flat_map(|layer| &layer.entries) {
        merged.insert(
            entry.key.clone(),
            (entry.value.clone(), entry.source.clone()),
        );
    }
    // Before the types: a number too large for its field gets the range, not serde's "expected
    // u16".
    for (key, low, high) in super::validate::INTEGER_RANGES {
        if let Some((value, source)) = merged.get(key)
            && let Some(reason) = super::validate::out_of_range(value, low, high)
        {
            return Err(SettingsError::InvalidValue {
                key: key.to_owned(),
                origin: source.clone(),
                reason,
            });
        }
    }
    let mut nested = Map::new();
    for (key, (value, _)) in &merged {
        insert_dotted(&mut nested, key, value.clone());
    }
    let settings =
        serde_path_to_error::deserialize::<_, Settings>(Value::Object(nested)).map_err(|err| {
            let key = err.path().to_string();
            // A field inside a list setting's entry (`backup.storage[0].s3.bucket`) came from
            // where that setting did.
            let setting = key.split('[').next().unwrap_or(&key);
            let source = merged
                .get(setting)
                .map_or(SettingSource::Default, |(_, s)| s.clone());
            SettingsError::InvalidValue {
                key,
                origin: source,
                reason: plain(&err.into_inner().to_string()),
            }
        })?;
    let origins = merged
        .into_iter()
        .map(|(key, (_, source))| (key, source))
        .collect();
    Ok((settings, origins))
}

/// serde's message about a value, in the words settings errors use: the values or fields there
/// are, and a "did you mean" (never "unknown variant" or "expected u32").
fn plain(message: &str) -> String {
    // serde lists what it expected as "`a`", "`a` or `b`" or "one of `a`, `b`, `c`".
    let names = |list: &str| -> Vec<String> {
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let quoted = |text: &str| text.split('`').nth(1).unwrap_or_default().to_owned();
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (given, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let (given, allowed) = (quoted(given), names(expected));
        let hint = crate::text::nearest(&given, allowed.iter().map(String::as_str))
            .map_or_else(String::new, |near| format!(" (did you mean {near}?)"));
        return format!("must be one of {}, got {given:?}{hint}", allowed.join(", "));
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (given, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let (given, allowed) = (quoted(given), names(expected));
        let hint = crate::text::nearest(&given, allowed.iter().map(String::as_str))
            .map_or_else(String::new, |near| format!("did you mean {near}? "));
        return format!(
            "there is no field {given:?}; {hint}the fields are {}",
            allowed.join(", ")
        );
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("needs the field {}", quoted(field));
    }
    if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    {
        let (given, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let expected = match expected {
            "u16" | "u32" | "u64" | "i32" | "i64" => "a whole number",
            "a boolean" => "true or false",
            "a sequence" => "a list",
            other if other.starts_with("struct ") || other == "a map" => "a mapping",
            other => other,
        };
        return format!("must be {expected}, got {}", given.replace('`', ""));
    }
    message.replace('`', "")
}

/// Maps each flat key to its kind, from the defaults.
fn registry() -> BTreeMap<String, KeyKind> {
    let mut flat = BTreeMap::new();
    if let Ok(Value::Object(defaults)) = serde_json::to_value(Settings::default()) {
        flatten_values(&defaults, "", &mut flat);
    }
    flat.into_iter()
        .map(|(key, value)| {
            let kind = match value {
                _ if OBJECT_LIST_KEYS.contains(&key.as_str()) => KeyKind::Objects,
                Value::Bool(_) => KeyKind::Bool,
                Value::Number(_) => KeyKind::Integer,
                Value::Array(_) => KeyKind::List,
                Value::Object(_) => KeyKind::Map,
                _ => KeyKind::String,
            };
            (key, kind)
        })
        .collect()
}

fn string_entry(
    registry: &BTreeMap<String, KeyKind>,
    key: &str,
    text: &str,
    source: SettingSource,
) -> Result<Entry, SettingsError> {
    let kind = lookup(registry, key, &source)?;
    match typed(kind, text) {
        Ok(value) => Ok(Entry {
            key: key.to_owned(),
            value,
            source,
        }),
        Err(reason) => Err(SettingsError::InvalidValue {
            key: key.to_owned(),
            origin: source,
            reason,
        }),
    }
}

fn lookup(
    registry: &BTreeMap<String, KeyKind>,
    key: &str,
    source: &SettingSource,
) -> Result<KeyKind, SettingsError> {
    registry
        .get(key)
        .copied()
        .ok_or_else(|| SettingsError::UnknownKey {
            key: key.to_owned(),
            origin: source.clone(),
            known: unknown_key_hint(key, registry),
        })
}

/// What to tell someone who set `key`, which is not a setting: the setting they probably
/// meant, the settings under it when it is a group (`postgres`), or every setting.
fn unknown_key_hint(key: &str, registry: &BTreeMap<String, KeyKind>) -> String {
    if let Some(near) = crate::text::nearest(key, registry.keys().map(String::as_str)) {
        return format!("did you mean {near}?");
    }
    let group = format!("{key}.");
    let under: Vec<&str> = registry
        .keys()
        .map(String::as_str)
        .filter(|known| known.starts_with(&group))
        .collect();
    if under.is_empty() {
        let all: Vec<&str> = registry.keys().map(String::as_str).collect();
        format!("known settings: {}", all.join(", "))
    } else {
        format!("it is a group; set one of {}", under.join(", "))
    }
}

fn flatten_values(map: &Map<String, Value>, prefix: &str, out: &mut BTreeMap<String, Value>) {
    for (name, value) in map {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            Value::Object(inner) if !MAP_KEYS.contains(&key.as_str()) => {
                flatten_values(inner, &key, out);
            }
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

fn flatten_document(
    map: &Map<String, Value>,
    prefix: &str,
    registry: &BTreeMap<String, KeyKind>,
    source: &SettingSource,
    out: &mut Vec<Entry>,
) -> Result<(), SettingsError> {
    for (name, value) in map {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let Value::Object(inner) = value
            && registry
                .keys()
                .any(|known| known.starts_with(&format!("{key}.")))
        {
            flatten_document(inner, &key, registry, source, out)?;
            continue;
        }
        let kind = lookup(registry, &key, source)?;
        let value = conform(kind, value).map_err(|reason| SettingsError::InvalidValue {
            key: key.clone(),
            origin: source.clone(),
            reason,
        })?;
        out.push(Entry {
            key,
            value,
            source: source.clone(),
        });
    }
    Ok(())
}

/// A value from a document: accepted as typed, or as a string that parses as the type.
fn conform(kind: KeyKind, value: &Value) -> Result<Value, String> {
    match (kind, value) {
        (KeyKind::String, Value::String(_))
        | (KeyKind::Integer, Value::Number(_))
        | (KeyKind::Bool, Value::Bool(_)) => Ok(value.clone()),
        (KeyKind::List, Value::Array(items)) => {
            if items.iter().all(Value::is_string) {
                Ok(value.clone())
            } else {
                Err("must be a list of strings".to_owned())
            }
        }
        (KeyKind::Map, Value::Object(entries)) => {
            if entries.values().all(Value::is_string) {
                Ok(value.clone())
            } else {
                Err(
                    "must be a mapping of strings (quote values a YAML reader would take for \
                     numbers or booleans)"
                        .to_owned(),
                )
            }
        }
        (KeyKind::Map, Value::Null) => Ok(Value::Object(Map::new())),
        (KeyKind::Objects, Value::Array(items)) => {
            if items.iter().all(Value::is_object) {
                Ok(value.clone())
            } else {
                Err("must be a list of mappings".to_owned())
            }
        }
        (KeyKind::Objects, Value::Null) => Ok(Value::Array(Vec::new())),
        (KeyKind::String, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (_, Value::String(text)) => typed(kind, text),
        (KeyKind::String, Value::Bool(b)) => Err(format!(
            "must be a string; the YAML value {b} is a boolean (quote it if you meant the text)"
        )),
        (_, other) => Err(format!("must be {}, got {other}", kind.describe())),
    }
}

/// A string value typed by its key.
fn typed(kind: KeyKind, text: &str) -> Result<Value, String> {
    match kind {
        KeyKind::String => Ok(Value::String(text.to_owned())),
        KeyKind::Integer => text
            .trim()
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| format!("must be a whole number, got {text:?}")),
        KeyKind::Bool => parse_bool(text.trim())
            .map(Value::Bool)
            .ok_or_else(|| format!("must be true or false, got {text:?}")),
        KeyKind::List => Ok(Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        )),
        KeyKind::Map if text.trim().is_empty() => Ok(Value::Object(Map::new())),
        KeyKind::Objects if text.trim().is_empty() => Ok(Value::Array(Vec::new())),
        KeyKind::Objects => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) if items.iter().all(Value::is_object) => {
                Ok(Value::Array(items))
            }
            _ => Err(
                "must be a JSON array of objects, like [{\"name\":\"local\",\"pvc\":{}}]"
                    .to_owned(),
            ),
        },
        KeyKind::Map => serde_json::from_str::<BTreeMap<String, String>>(text)
            .map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                )
            })
            .map_err(|err| {
                format!(
                    "must be a JSON object of strings, like \
                     {{\"service.beta.kubernetes.io/aws-load-balancer-scheme\":\"internal\"}} \
                     ({err})"
                )
            }),
    }
}

/// The spellings Go's `strconv.ParseBool` accepts, so KubeFlex's ConfigMap keeps working.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

impl KeyKind {
    fn describe(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Integer => "a whole number",
            Self::Bool => "true or false",
            Self::List => "a list of strings",
            Self::Map => "a mapping of strings",
            Self::Objects => "a list of mappings",
        }
    }
}

fn insert_dotted(root: &mut Map<String, Value>, key: &str, value: Value) {
    let mut map = root;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        let slot = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(inner) = slot else { return };
        map = inner;
    }
}

/// `images.kubeApiserver.tag` → `KFLEX_IMAGES_KUBE_APISERVER_TAG`; "OpenShift" is one word, as
/// in `KFLEX_IS_OPENSHIFT`.
fn env_name(key: &str) -> String {
    let mut name = String::from("KFLEX");
    for part in key.split('.') {
        name.push('_');
        let part = part.replace("OpenShift", "Openshift");
        let mut previous_lower = false;
        for c in part.chars() {
            if c.is_ascii_uppercase() && previous_lower {
                name.push('_');
            }
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            name.push(c.to_ascii_uppercase());
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merge(layers: &[Layer]) -> Result<Settings, SettingsError> {
        merge_with_origins(layers).map(|(settings, _)| settings)
    }

    #[test]
    fn environment_names_follow_the_keys() {
        assert_eq!(env_name("externalPort"), "KFLEX_EXTERNAL_PORT");
        assert_eq!(env_name("isOpenShift"), "KFLEX_IS_OPENSHIFT");
        assert_eq!(
            env_name("images.kubeApiserver.tag"),
            "KFLEX_IMAGES_KUBE_APISERVER_TAG"
        );
        assert_eq!(
            env_name("postgres.maxConnections"),
            "KFLEX_POSTGRES_MAX_CONNECTIONS"
        );
    }

    #[test]
    fn every_key_has_a_distinct_environment_variable() {
        let keys = known_keys();
        let names: std::collections::BTreeSet<_> = keys.iter().map(|(_, env)| env).collect();
        assert_eq!(names.len(), keys.len());
        assert!(keys.iter().any(|(key, _)| key == "images.kine.tag"));
    }

    #[test]
    fn later_layers_win_key_by_key() {
        let file = Layer::from_document(
            SettingSource::File("values.yaml".into()),
            &json!({"domain": "file.example", "externalPort": 8443}),
        )
        .unwrap();
        let env = Layer::from_environment([("KFLEX_DOMAIN", "env.example")]).unwrap();
        let set = Layer::from_strings(|_| SettingSource::Set, [("externalPort", "443")]).unwrap();
        let settings = merge(&[file.clone(), env.clone(), set]).unwrap();
        assert_eq!(settings.domain, "env.example");
        assert_eq!(settings.external_port, 443);
        let settings = merge(&[env, file]).unwrap();
        assert_eq!(settings.domain, "file.example");
        assert_eq!(settings.external_port, 8443);
    }

    #[test]
    fn strings_are_typed_by_their_key() {
        let layer = Layer::from_strings(
            |_| SettingSource::ConfigMap("kubeflex-system/kubeflex-config".into()),
            [
                ("isOpenShift", "True"),
                ("externalPort", "9444"),
                ("namespacedKinds", "A.x, B.y,"),
            ],
        )
        .unwrap();
        let settings = merge(&[layer]).unwrap();
        assert!(settings.is_open_shift);
        assert_eq!(settings.external_port, 9444);
        assert_eq!(settings.namespaced_kinds, ["A.x", "B.y"]);
    }

    #[test]
    fn a_bad_value_names_key_source_and_reason() {
        let err = Layer::from_environment([("KFLEX_EXTERNAL_PORT", "https")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "setting externalPort (from environment variable KFLEX_EXTERNAL_PORT): \
             must be a whole number, got \"https\""
        );
        let layer =
            Layer::from_strings(|_| SettingSource::Set, [("externalPort", "70000")]).unwrap();
        let err = merge(&[layer]).unwrap_err().to_string();
        assert!(
            err.starts_with("setting externalPort (from --set): "),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_source() {
        let err = Layer::from_document(
            SettingSource::File("v.yaml".into()),
            &json!({"images": {"kine": {"tga": "x"}}}),
        )
        .unwrap_err();
        let SettingsError::UnknownKey {
            key,
            origin: source,
            ..
        } = err
        else {
            panic!("{err:?}")
        };
        assert_eq!(key, "images.kine.tga");
        assert_eq!(source, SettingSource::File("v.yaml".into()));
    }

    #[test]
    fn a_yaml_boolean_for_a_string_setting_is_explained() {
        let err = Layer::from_document(
            SettingSource::File("v.yaml".into()),
            &json!({"domain": true}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("quote it"), "{err}");
    }

    #[test]
    fn list_keys_are_known() {
        assert!(is_list_key("namespacedKinds"));
        assert!(!is_list_key("domain"));
        assert!(!is_list_key("no.such.key"));
    }

    #[test]
    fn an_environment_variable_given_twice_is_refused() {
        let err =
            Layer::from_environment([("KFLEX_DOMAIN", "a.example"), ("KFLEX_DOMAIN", "b.example")])
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "setting domain (from environment variable KFLEX_DOMAIN): the variable is set twice in the environment"
        );
        // Only the exact name counts: other spellings are not kflex's variables.
        let layer =
            Layer::from_environment([("KFLEX_DOMAIN", "a"), ("kflex_domain", "b")]).unwrap();
        assert_eq!(merge(&[layer]).unwrap().domain, "a");
    }

    #[test]
    fn unrelated_environment_variables_are_ignored() {
        let layer = Layer::from_environment([
            ("KFLEX_E2E_KUBECONFIG", "/x"),
            ("KFLEX_CEL_PYTHON", "/venv/bin/python"),
            ("KFLEX_UPDATE_GOLDEN", "1"),
            ("HOME", "/root"),
        ])
        .unwrap();
        assert!(layer.is_empty());
    }

    #[test]
    fn a_misspelt_kflex_variable_is_refused_with_the_one_meant() {
        let err = Layer::from_environment([("KFLEX_DOMIAN", "example.com")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "environment variable KFLEX_DOMIAN is not a kflex setting (did you mean \
             KFLEX_DOMAIN?); kflex reads KFLEX_ and a setting's key in upper snake case \
             (KFLEX_EXTERNAL_PORT for externalPort)"
        );
        let err = Layer::from_environment([("KFLEX_IMAGES_KINE_TGA", "v1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(did you mean KFLEX_IMAGES_KINE_TAG?)"),
            "{err}"
        );
        let err = Layer::from_environment([("KFLEX_VERBOSE", "1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("environment variable KFLEX_VERBOSE is not a kflex setting;"),
            "no suggestion when nothing is near: {err}"
        );
    }

    #[test]
    fn an_unknown_key_gets_a_did_you_mean() {
        let err = Layer::from_strings(|_| SettingSource::Set, [("domian", "x")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown setting \"domian\" (from --set); did you mean domain?"
        );
        let err = Layer::from_document(
            SettingSource::File("v.yaml".into()),
            &json!({"gateway": {"nmae": "x"}}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.ends_with("did you mean gateway.name?"), "{err}");
        let err = Layer::from_strings(|_| SettingSource::Set, [("gateway", "x")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown setting \"gateway\" (from --set); it is a group; set one of \
             gateway.className, gateway.create, gateway.name, gateway.namespace, \
             gateway.sectionName"
        );
    }

    #[test]
    fn bad_values_say_what_is_allowed_in_settings_words() {
        let refused = |key: &str, value: &str| {
            let layer = Layer::from_strings(|_| SettingSource::Set, [(key, value)]).unwrap();
            merge(&[layer]).unwrap_err().to_string()
        };
        for (key, value, expected) in [
            (
                "externalPort",
                "70000",
                "must be between 1 and 65535, got 70000",
            ),
            (
                "k8s.replicas",
                "5000000000",
                "must be between 1 and 2147483647, got 5000000000",
            ),
            (
                "postgres.maxConnections",
                "99999999999",
                "must be between 10 and 100000, got 99999999999",
            ),
            (
                "apiServerServiceType",
                "LoadBalancer",
                "must be one of ClusterIP, NodePort, got \"LoadBalancer\"",
            ),
            (
                "imagePullPolicy",
                "always",
                "must be one of Always, IfNotPresent, Never, got \"always\" (did you mean Always?)",
            ),
            (
                "postgres.mode",
                "extrenal",
                "must be one of inCluster, external, got \"extrenal\" (did you mean external?)",
            ),
            (
                "backup.storage",
                r#"[{"name": "x", "s3": {"bukcet": "b"}}]"#,
                "there is no field \"bukcet\"; did you mean bucket? the fields are endpoint, bucket,",
            ),
        ] {
            let err = refused(key, value);
            assert!(err.contains(expected), "{key}={value}: {err}");
            for serde_words in [
                "unknown variant",
                "unknown field",
                "expected u",
                "invalid value",
                "`",
            ] {
                assert!(!err.contains(serde_words), "{key}={value}: {err}");
            }
        }
        let err = Layer::from_document(
            SettingSource::File("v.yaml".into()),
            &json!({"k8s": {"replicas": -1}}),
        )
        .and_then(|layer| merge(&[layer]))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "setting k8s.replicas (from values file v.yaml): must be between 1 and 2147483647, got -1"
        );
        let err = Layer::from_document(
            SettingSource::File("v.yaml".into()),
            &json!({"externalPort": 443.5}),
        )
        .and_then(|layer| merge(&[layer]))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "setting externalPort (from values file v.yaml): must be a whole number between 1 \
             and 65535, got 443.5"
        );
    }

    #[test]
    fn a_mapping_setting_comes_nested_in_documents_and_as_json_in_strings() {
        let file = Layer::from_document(
            SettingSource::File("v.yaml".into()),
            &json!({"loadBalancer": {"annotations": {"example.com/a": "x,y=z"}}}),
        )
        .unwrap();
        assert_eq!(
            merge(&[file]).unwrap().load_balancer.annotations["example.com/a"],
            "x,y=z"
        );
        let env = Layer::from_environment([(
            "KFLEX_LOAD_BALANCER_ANNOTATIONS",
            r#"{"example.com/b": "1"}"#,
        )])
        .unwrap();
        assert_eq!(
            merge(&[env]).unwrap().load_balancer.annotations["example.com/b"],
            "1"
        );
        let err = Layer::from_strings(
            |_| SettingSource::Set,
            [("loadBalancer.annotations", "a=b")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "setting loadBalancer.annotations (from --set): must be a JSON object of strings"
            ),
            "{err}"
        );
        let err = Layer::from_document(
            SettingSource::File("v.yaml".into()),
            &json!({"loadBalancer": {"annotations": {"example.com/a": 1}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("must be a mapping of strings"), "{err}");
    }

    #[test]
    fn an_unknown_exposure_is_refused_with_the_known_ones() {
        let layer = Layer::from_environment([("KFLEX_EXPOSURE", "nodePort")]).unwrap();
        let err = merge(&[layer]).unwrap_err().to_string();
        assert!(
            err == "setting exposure (from environment variable KFLEX_EXPOSURE): must be one of \
                    ingress, route, gateway, loadBalancer, got \"nodePort\"",
            "{err}"
        );
    }

    #[test]
    fn config_map_form_round_trips() {
        let settings = Settings {
            is_open_shift: true,
            cluster_scoped_kinds: vec!["Widget.example.com".into(), "Gadget.example.com".into()],
            ..Settings::default()
        };
        let flat = flatten_for_config_map(&settings);
        assert_eq!(flat["isOpenShift"], "true");
        // The exposure in effect is written down: the ConfigMap says what is rendered.
        assert_eq!(flat["exposure"], "route");
        assert_eq!(flat["loadBalancer.annotations"], "{}");
        assert_eq!(flat["externalPort"], "9443");
        assert_eq!(
            flat["clusterScopedKinds"],
            "Widget.example.com,Gadget.example.com"
        );
        let layer = Layer::from_strings(|_| SettingSource::Set, flat.iter()).unwrap();
        let read = merge(&[layer]).unwrap();
        assert_eq!(read.exposure(), settings.exposure());
        assert_eq!(
            read,
            Settings {
                exposure: Some(settings.exposure()),
                ..settings.clone()
            }
        );
        let with_annotations = Settings {
            load_balancer: crate::settings::LoadBalancerSettings {
                annotations: [("example.com/a".to_owned(), "b, \"c\"".to_owned())].into(),
                source_ranges: vec!["10.0.0.0/8".into(), "192.0.2.0/24".into()],
                ..Default::default()
            },
            ..Settings::default()
        };
        let flat = flatten_for_config_map(&with_annotations);
        let layer = Layer::from_strings(|_| SettingSource::Set, flat.iter()).unwrap();
        assert_eq!(
            merge(&[layer]).unwrap().load_balancer,
            with_annotations.load_balancer
        );
    }
}
