//! Canonical output: YAML 1.1-safe block YAML (serde-saphyr quotes every string a YAML 1.1
//! reader would misread), keys sorted except `apiVersion`, `kind`, `metadata` first; or a JSON
//! `v1/List`; or one file per object with a stable name.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::{Manifest, yaml_writer};
use crate::text::escape_unsafe;

/// Output could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("failed to write {object} (from {source_name}) as YAML")]
    Yaml {
        object: String,
        source_name: String,
        #[source]
        source: serde_saphyr::ser::Error,
    },
    #[error("failed to write the object list as JSON")]
    Json(#[source] serde_json::Error),
}

/// The top-level fields that lead every object, in this order; the rest follow sorted.
const LEADING_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// One object, leading fields first. Nested mappings are serde_json's sorted maps.
struct Canonical<'a>(&'a Map<String, Value>);

impl Serialize for Canonical<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for field in LEADING_FIELDS {
            if let Some(value) = self.0.get(field) {
                map.serialize_entry(field, value)?;
            }
        }
        for (key, value) in self.0 {
            if !LEADING_FIELDS.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// A multi-document YAML stream; each document is preceded by `---` and a `# Source:` comment
/// naming its template or hook.
pub fn to_yaml_stream(manifests: &[Manifest]) -> Result<String, EmitError> {
    let mut out = String::with_capacity(manifests.len() * 1024);
    for manifest in manifests {
        out.push_str("---\n# Source: ");
        // A comment ends at the first line break: whatever a caller passes, nothing in it may
        // start a line of its own (a document, a key) in the stream.
        out.push_str(&escape_unsafe(manifest.source()));
        out.push('\n');
        let object = manifest.object();
        if object.is_empty() {
            out.push_str("{}\n");
        } else {
            yaml_writer::write_root_entries(
                &mut out,
                yaml_writer::canonical_entries(object, &LEADING_FIELDS),
            );
        }
    }
    Ok(out)
}

/// One value as a YAML document in the same canonical form (mapping keys sorted), without the
/// `---` marker: for configuration files that are themselves rendered into an object.
pub fn to_yaml_document(value: &Value) -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    yaml_writer::write_document(&mut out, value);
    Ok(out)
}

/// A `v1/List` holding the objects in order, pretty-printed, ending in a newline.
pub fn to_json_list(manifests: &[Manifest]) -> Result<String, EmitError> {
    struct Items<'a>(&'a [Manifest]);
    impl Serialize for Items<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(|m| Canonical(m.object())))
        }
    }
    struct List<'a>(&'a [Manifest]);
    impl Serialize for List<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(3))?;
            map.serialize_entry("apiVersion", "v1")?;
            map.serialize_entry("kind", "List")?;
            map.serialize_entry("items", &Items(self.0))?;
            map.end()
        }
    }
    let mut text = serde_json::to_string_pretty(&List(manifests)).map_err(EmitError::Json)?;
    text.push('\n');
    Ok(text)
}

/// A stable file name for one object: `<kind>[.<group>]_[<namespace>_]<name>.yaml`, lower case.
/// Object names never contain `_`, so names cannot collide.
/// The parts are validated when the object is made ([`Manifest::new`]); in case a caller
/// changed one since, anything but letters, digits, `.`, `-` and `:` is percent-encoded, so the
/// name is always one file in one directory.
pub fn file_name(manifest: &Manifest) -> String {
    let mut name = String::new();
    push_file_part(&mut name, &manifest.kind().to_ascii_lowercase());
    if !manifest.group().is_empty() {
        name.push('.');
        push_file_part(&mut name, manifest.group());
    }
    if let Some(namespace) = manifest.namespace() {
        name.push('_');
        push_file_part(&mut name, namespace);
    }
    name.push('_');
    push_file_part(&mut name, manifest.name());
    name.push_str(".yaml");
    name
}

fn push_file_part(out: &mut String, part: &str) {
    // A part that is only dots would read as `.` or `..` if it ever stood alone.
    let only_dots = part.bytes().all(|b| b == b'.');
    for byte in part.bytes() {
        let keep = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b':') || byte == b'.';
        if keep && !only_dots {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::arbitrary::{TRICKY, tricky, value};
    use proptest::prelude::*;
    use serde_json::json;

    /// What kflex wrote before it had its own writer, and still must write byte for byte:
    /// serde-saphyr, with long one-line strings (flags, URLs) kept on one line.
    fn reference(value: &Map<String, Value>) -> String {
        let mut options = serde_saphyr::SerializerOptions::default();
        options.folded_wrap_chars = usize::MAX;
        let mut out = String::new();
        serde_saphyr::to_fmt_writer_with_options(&mut out, &Canonical(value), options)
            .expect("serde-saphyr writes any JSON value");
        out
    }

    fn ours(value: &Map<String, Value>) -> String {
        let manifest = Manifest {
            source: String::new(),
            object: value.clone(),
        };
        let stream = to_yaml_stream(&[manifest]).expect("written");
        stream
            .strip_prefix("---\n# Source: \n")
            .expect("the header")
            .to_owned()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// kflex's writer writes exactly what serde-saphyr writes, for any JSON value.
        #[test]
        fn the_writer_writes_what_serde_saphyr_writes(
            entries in proptest::collection::btree_map(tricky(), value(), 1..6),
        ) {
            let object: Map<String, Value> = entries.into_iter().collect();
            prop_assert_eq!(ours(&object), reference(&object));
        }
    }

    #[test]
    fn every_tricky_string_is_written_as_serde_saphyr_writes_it() {
        for text in TRICKY {
            for object in [
                json!({"k": text}),
                json!({(*text): "v"}),
                json!({"list": [text, {"k": text}, [text]]}),
                json!({"m": {"k": text, "n": {"k": text}}}),
                json!({"l": [{"a": 1, "k": text}, [[text]]]}),
            ] {
                let Value::Object(object) = object else {
                    unreachable!()
                };
                assert_eq!(ours(&object), reference(&object), "{text:?}");
            }
        }
    }

    fn config_map(data: Value) -> Manifest {
        Manifest::new(
            "test.yaml",
            json!({"data": data, "metadata": {"name": "x", "namespace": "ns"}, "kind": "ConfigMap", "apiVersion": "v1"}),
        )
        .unwrap()
    }

    #[test]
    fn leading_fields_first_then_sorted() {
        let yaml = to_yaml_stream(&[config_map(json!({"b": "1", "a": "2"}))]).unwrap();
        assert_eq!(
            yaml,
            "---\n# Source: test.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: ns\ndata:\n  a: \"2\"\n  b: \"1\"\n"
        );
    }

    #[test]
    fn yaml_1_1_ambiguities_are_quoted_and_read_back_as_strings() {
        let data = json!({
            "no": "no", "on": "on", "y": "y", "date": "2024-01-01", "octal": "012",
            "float": "1e3", "null": "null", "tilde": "~", "colon": "a: b", "hash": "a #b",
            "braces": "{{.X}}", "dashes": "---", "multi": "line 1\nline 2\n", "empty": "",
            "long": "x ".repeat(80),
        });
        let yaml = to_yaml_stream(&[config_map(data.clone())]).unwrap();
        for line in [
            "\"no\": \"no\"",
            "\"on\": \"on\"",
            "date: \"2024-01-01\"",
            "octal: \"012\"",
        ] {
            assert!(yaml.contains(line), "{line} missing in\n{yaml}");
        }
        let back: Value = serde_saphyr::from_str(yaml.split_once("\n").unwrap().1).unwrap();
        assert_eq!(back["data"], data);
    }

    #[test]
    fn long_single_line_strings_are_not_folded() {
        let long = "--flag=".to_owned() + "value ".repeat(30).trim_end();
        let yaml = to_yaml_stream(&[config_map(json!({"arg": long.clone()}))]).unwrap();
        assert!(
            yaml.lines()
                .any(|line| line.trim_start().starts_with("arg: --flag=value")),
            "{yaml}"
        );
    }

    #[test]
    fn json_list_keeps_order_and_leading_fields() {
        let text = to_json_list(&[config_map(json!({})), config_map(json!({"k": "v"}))]).unwrap();
        let list: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][1]["data"]["k"], "v");
        assert!(text.starts_with("{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"List\""));
        let first_item = &text[text.find("\"items\"").unwrap()..];
        assert!(first_item.find("apiVersion").unwrap() < first_item.find("data").unwrap());
    }

    #[test]
    fn file_names_are_stable_and_distinct() {
        let cm = config_map(json!({}));
        assert_eq!(file_name(&cm), "configmap_ns_x.yaml");
        let crb = Manifest::new(
            "t",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "a-b"}}),
        )
        .unwrap();
        assert_eq!(
            file_name(&crb),
            "clusterrole.rbac.authorization.k8s.io_a-b.yaml"
        );
    }

    /// Strings a caller (or an input) may pass that would break a line-oriented stream.
    const HOSTILE: [&str; 12] = [
        "x\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding",
        "x\r\n---\r\nkind: Secret",
        "x\rkind: Secret",
        "x\0y",
        "x\u{85}---\u{85}kind: Secret",
        "x\u{2028}---\u{2029}kind: Secret",
        "\u{1b}]0;owned\u{7}\u{1b}[2J",
        "x\u{feff}y",
        "\u{202e}lanigiro",
        "\t- item",
        "# comment\n- item",
        "...\n---",
    ];

    fn documents(stream: &str) -> Vec<Value> {
        serde_saphyr::from_multiple(stream).expect("the stream parses")
    }

    #[test]
    fn the_source_comment_never_starts_a_line_of_its_own() {
        for hostile in HOSTILE {
            let manifest = Manifest::new(
                hostile,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
            )
            .unwrap();
            let stream = to_yaml_stream(&[manifest.clone(), manifest]).unwrap();
            let lines: Vec<&str> = stream.split_inclusive(['\n']).collect();
            // ---, # Source, apiVersion, kind, metadata, name; twice.
            assert_eq!(lines.len(), 12, "{hostile:?}:\n{stream}");
            assert_eq!(stream.matches("\n---\n").count() + 1, 2, "{stream}");
            assert!(
                !stream
                    .chars()
                    .any(|c| c != '\n' && crate::text::is_unsafe_char(c)),
                "{stream:?}"
            );
            assert_eq!(documents(&stream).len(), 2, "{stream}");
        }
    }

    #[test]
    fn hostile_keys_and_values_stay_inside_their_document() {
        let mut data = Map::new();
        for (i, hostile) in HOSTILE.iter().enumerate() {
            data.insert(format!("k{i}{hostile}"), json!(hostile));
            data.insert(format!("v{i}"), json!(format!("{hostile}{hostile}")));
        }
        let manifest = config_map(Value::Object(data.clone()));
        let stream = to_yaml_stream(&[manifest]).unwrap();
        let back = documents(&stream);
        assert_eq!(back.len(), 1, "{stream}");
        assert_eq!(back[0]["data"], Value::Object(data), "{stream}");
    }

    #[test]
    fn file_names_are_one_file_whatever_the_parts() {
        let mut manifest = config_map(json!({}));
        for hostile in ["../../etc/passwd", "/abs", "..", "a/b", "x\ny", "."] {
            manifest.set_namespace(hostile);
            let name = file_name(&manifest);
            assert!(
                !name.contains('/') && !name.chars().any(crate::text::is_unsafe_char),
                "{name}"
            );
            assert!(!name.contains("_.._") && !name.contains("_._"), "{name}");
        }
    }

    #[test]
    fn serde_json_maps_are_sorted_in_this_build() {
        // Canonical output relies on it; `preserve_order` anywhere in the build would break it.
        let map: Map<String, Value> = [("b".to_owned(), json!(1)), ("a".to_owned(), json!(2))]
            .into_iter()
            .collect();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b"]);
    }
}
