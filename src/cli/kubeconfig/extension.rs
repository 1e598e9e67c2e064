//! kflex's kubeconfig extension, in KubeFlex's format so either tool reads what the other
//! wrote: an entry `kubeflex` in an `extensions` list (top level, or in a context), whose value
//! is ConfigMap-shaped (`metadata.name: kubeflex`, string `data`). Only that entry is edited:
//! other tools' extensions stay as they are (KubeFlex replaced the whole list).

use serde_json::{Map, Value};

/// The extension's name.
pub const NAME: &str = "kubeflex";

fn entry(owner: &Map<String, Value>) -> Option<&Value> {
    owner
        .get("extensions")?
        .as_array()?
        .iter()
        .find(|item| item.get("name").and_then(Value::as_str) == Some(NAME))
}

/// The extension's data in `owner` (a kubeconfig document, or a context body).
pub fn find(owner: &Map<String, Value>) -> Option<Map<String, Value>> {
    let value = entry(owner)?.get("extension")?;
    Some(
        value
            .get("data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    )
}

/// Edits the extension's data in `owner`, creating the extension if needed. Keys of the
/// extension kflex does not know (KubeFlex's `creationTimestamp`) are kept as they were, so an
/// unchanged extension is rewritten byte for byte.
pub fn update(owner: &mut Map<String, Value>, edit: impl FnOnce(&mut Map<String, Value>)) {
    let list = owner
        .entry("extensions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    let Value::Array(list) = list else {
        return;
    };
    let index = match list
        .iter()
        .position(|item| item.get("name").and_then(Value::as_str) == Some(NAME))
    {
        Some(index) => index,
        None => {
            list.push(serde_json::json!({"name": NAME}));
            list.len() - 1
        }
    };
    let Some(item) = list[index].as_object_mut() else {
        return;
    };
    let extension = item
        .entry("extension")
        .or_insert_with(|| serde_json::json!({"metadata": {"name": NAME}}));
    if !extension.is_object() {
        *extension = serde_json::json!({"metadata": {"name": NAME}});
    }
    let Some(extension) = extension.as_object_mut() else {
        return;
    };
    let data = extension
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Some(data) = data.as_object_mut() {
        edit(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn other_extensions_are_kept_when_kflex_writes_its_own() {
        let mut owner = object(json!({
            "extensions": [{"name": "other-tool", "extension": {"color": "blue"}}]
        }));
        update(&mut owner, |data| {
            data.insert("controlplane-name".into(), json!("cp1"));
        });
        assert_eq!(
            owner["extensions"],
            json!([
                {"name": "other-tool", "extension": {"color": "blue"}},
                {"name": "kubeflex", "extension": {
                    "metadata": {"name": "kubeflex"},
                    "data": {"controlplane-name": "cp1"}
                }}
            ])
        );
        assert_eq!(
            find(&owner),
            Some(object(json!({"controlplane-name": "cp1"})))
        );
    }

    #[test]
    fn kubeflex_written_extensions_are_read_and_keep_their_fields() {
        let mut owner = object(json!({"extensions": [{"name": "kubeflex", "extension": {
            "metadata": {"name": "kubeflex", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "data": {"hosting-cluster-ctx-name": "kind-kubeflex"}
        }}]}));
        update(&mut owner, |data| {
            data.insert("x".into(), json!("y"));
        });
        assert_eq!(
            owner["extensions"][0]["extension"]["metadata"]["creationTimestamp"],
            json!("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            find(&owner).map(|data| data.len()),
            Some(2),
            "both keys are there"
        );
    }
}
