//! Content hashes on pod templates: a workload that reads a rendered ConfigMap or Secret carries
//! `kflex.kubestellar.org/config-hash`, the sha256 of that configuration, so a config change
//! rolls its pods and an unchanged config does not.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::metadata::CONFIG_HASH_ANNOTATION;
use super::pod_security::pod_spec;
use crate::manifest::{Manifest, submap};

type ConfigKey = (String, &'static str, String);

/// Adds the hash annotation to every workload whose pod template reads rendered configuration.
pub(crate) fn annotate(manifests: &mut [Manifest]) {
    let mut config: BTreeMap<ConfigKey, Value> = BTreeMap::new();
    for manifest in manifests.iter() {
        let kind = match (manifest.group(), manifest.kind()) {
            ("", "ConfigMap") => "ConfigMap",
            ("", "Secret") => "Secret",
            _ => continue,
        };
        let content = stored_content(manifest.object());
        let namespace = manifest.namespace().unwrap_or_default().to_owned();
        config.insert(
            (namespace, kind, manifest.name().to_owned()),
            Value::Object(content),
        );
    }
    if config.is_empty() {
        return;
    }
    for manifest in manifests.iter_mut() {
        if manifest.is::<k8s_openapi::api::core::v1::Pod>() {
            // A bare Pod cannot roll; its template is the object itself.
            continue;
        }
        let Some((path, spec)) = pod_spec(manifest) else {
            continue;
        };
        let namespace = manifest.namespace().unwrap_or_default().to_owned();
        let used: BTreeSet<ConfigKey> = references(spec)
            .into_iter()
            .map(|(kind, name)| (namespace.clone(), kind, name))
            .filter(|key| config.contains_key(key))
            .collect();
        if used.is_empty() {
            continue;
        }
        let mut hasher = Sha256::new();
        for key in &used {
            hasher.update(format!("{}/{}\n", key.1, key.2).as_bytes());
            hasher.update(config[key].to_string().as_bytes());
            hasher.update(b"\n");
        }
        let digest = hex(&hasher.finalize());
        let template_path = path.trim_end_matches("/spec");
        let mut template = manifest.object_mut();
        for part in template_path.trim_start_matches('/').split('/') {
            template = submap(template, part);
        }
        submap(submap(template, "metadata"), "annotations")
            .insert(CONFIG_HASH_ANNOTATION.to_owned(), Value::String(digest));
    }
}

/// A ConfigMap's or Secret's content as the API server stores it: a Secret's `stringData`
/// merged into `data`, base64-encoded (`stringData` wins, as it does in the API), so moving a
/// value between the two fields changes no hash and rolls no pod.
fn stored_content(object: &Map<String, Value>) -> Map<String, Value> {
    use base64::Engine as _;
    let mut content: Map<String, Value> = ["data", "binaryData"]
        .iter()
        .filter_map(|field| Some(((*field).to_owned(), object.get(*field)?.clone())))
        .collect();
    if let Some(Value::Object(strings)) = object.get("stringData") {
        let data = content
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(data) = data {
            for (key, value) in strings {
                // Not a string: the API refuses the Secret; hash the value as it is.
                let stored = match value {
                    Value::String(text) => {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(text))
                    }
                    other => other.clone(),
                };
                data.insert(key.clone(), stored);
            }
        }
    }
    content
}

/// Lower-case hex of `bytes` (sha2 0.11 digests no longer format with `{:x}`).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The ConfigMaps and Secrets a pod spec reads: volumes, projected sources, envFrom and env.
fn references(spec: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let mut add = |kind: &'static str, name: Option<&Value>| {
        if let Some(name) = name.and_then(Value::as_str) {
            found.push((kind, name.to_owned()));
        }
    };
    for volume in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add("ConfigMap", volume.pointer("/configMap/name"));
        add("Secret", volume.pointer("/secret/secretName"));
        let sources = volume
            .pointer("/projected/sources")
            .and_then(Value::as_array);
        for source in sources.into_iter().flatten() {
            add("ConfigMap", source.pointer("/configMap/name"));
            add("Secret", source.pointer("/secret/name"));
        }
    }
    for list in ["initContainers", "containers"] {
        for container in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for from in container
                .get("envFrom")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                add("ConfigMap", from.pointer("/configMapRef/name"));
                add("Secret", from.pointer("/secretRef/name"));
            }
            for env in container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                add("ConfigMap", env.pointer("/valueFrom/configMapKeyRef/name"));
                add("Secret", env.pointer("/valueFrom/secretKeyRef/name"));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Manifest {
        Manifest::new("t", value).unwrap()
    }

    fn set(config: &str) -> Vec<Manifest> {
        vec![
            object(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf", "namespace": "ns"}, "data": {"k": config}}),
            ),
            object(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "conf"}}]}]}}}}),
            ),
            object(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "other", "namespace": "ns"},
                "spec": {"template": {"spec": {"volumes": [{"name": "v", "configMap": {"name": "not-rendered"}}], "containers": []}}}}),
            ),
        ]
    }

    fn hash_of(manifests: &[Manifest], name: &str) -> Option<String> {
        let m = manifests.iter().find(|m| m.name() == name)?;
        Value::Object(m.object().clone())
            .pointer(&format!(
                "/spec/template/metadata/annotations/{}",
                CONFIG_HASH_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    #[test]
    fn a_secret_hashes_the_same_in_string_data_and_in_data() {
        let hash = |secret: Value| {
            let mut manifests = vec![
                object(secret),
                object(
                    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "ns"},
                    "spec": {"template": {"spec": {"volumes": [{"name": "v", "secret": {"secretName": "conf"}}], "containers": []}}}}),
                ),
            ];
            annotate(&mut manifests);
            hash_of(&manifests, "s").expect("annotated")
        };
        let secret = |content: Value| {
            let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "conf", "namespace": "ns"}});
            secret
                .as_object_mut()
                .unwrap()
                .extend(content.as_object().unwrap().clone());
            secret
        };
        let readable = hash(secret(json!({"stringData": {"config.yaml": "a: 1\n"}})));
        assert_eq!(
            readable,
            hash(secret(json!({"data": {"config.yaml": "YTogMQo="}})))
        );
        assert_ne!(
            readable,
            hash(secret(json!({"stringData": {"config.yaml": "a: 2\n"}})))
        );
        // stringData wins over data for the same key, as in the API.
        assert_eq!(
            readable,
            hash(secret(
                json!({"data": {"config.yaml": "eDogMQo="}, "stringData": {"config.yaml": "a: 1\n"}})
            ))
        );
    }

    #[test]
    fn a_config_change_changes_the_hash_and_nothing_else_does() {
        let mut a = set("one");
        let mut b = set("one");
        let mut c = set("two");
        annotate(&mut a);
        annotate(&mut b);
        annotate(&mut c);
        let hash = hash_of(&a, "d").unwrap();
        assert_eq!(hash.len(), 64);
        assert_eq!(hash_of(&b, "d").unwrap(), hash);
        assert_ne!(hash_of(&c, "d").unwrap(), hash);
        assert_eq!(
            hash_of(&a, "other"),
            None,
            "configuration that is not rendered is not hashed"
        );
    }

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
