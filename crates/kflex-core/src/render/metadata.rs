//! The labels and annotations kflex puts on what it renders, and the checks that keep users'
//! objects from faking them.

use serde_json::Value;

use crate::manifest::Manifest;

/// On every rendered object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "kflex";
/// On every object of a control plane: ties it to the control plane for selection and cleanup.
pub const CONTROL_PLANE_LABEL: &str = "kflex.kubestellar.org/control-plane";
/// On every object a PostCreateHook rendered: the hook's name.
pub const HOOK_ANNOTATION: &str = "kflex.kubestellar.org/post-create-hook";
/// On pod templates that read rendered configuration.
pub const CONFIG_HASH_ANNOTATION: &str = "kflex.kubestellar.org/config-hash";
/// On a workload of kflex's own templates whose pods cannot meet restricted: why (reviewed with
/// the template; without it such a pod is refused).
pub const POD_SECURITY_EXCEPTION_ANNOTATION: &str = "kflex.kubestellar.org/pod-security-exception";
/// On a namespace whose Pod Security level is below restricted: why.
pub const POD_SECURITY_ANNOTATION: &str = "kflex.kubestellar.org/pod-security-exceptions";

/// A reserved label or annotation already set to another value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field}: {key} is reserved for kflex and is already set to {found:?} (expected {expected:?})"
)]
pub struct ReservedMetadata {
    pub field: &'static str,
    pub key: &'static str,
    pub found: String,
    pub expected: String,
}

/// Labels `manifest` as managed by kflex and, for a control plane's objects, as belonging to it.
pub(crate) fn label(
    manifest: &mut Manifest,
    control_plane: Option<&str>,
) -> Result<(), ReservedMetadata> {
    set_reserved(
        manifest,
        "metadata.labels",
        MANAGED_BY_LABEL,
        MANAGED_BY_VALUE,
        true,
    )?;
    if let Some(name) = control_plane {
        set_reserved(manifest, "metadata.labels", CONTROL_PLANE_LABEL, name, true)?;
    }
    Ok(())
}

/// Records which hook rendered `manifest`.
pub(crate) fn mark_hook(manifest: &mut Manifest, hook: &str) -> Result<(), ReservedMetadata> {
    set_reserved(
        manifest,
        "metadata.annotations",
        HOOK_ANNOTATION,
        hook,
        false,
    )
}

fn set_reserved(
    manifest: &mut Manifest,
    field: &'static str,
    key: &'static str,
    value: &str,
    is_label: bool,
) -> Result<(), ReservedMetadata> {
    let existing = if is_label {
        manifest.label(key)
    } else {
        manifest.annotation(key)
    };
    if let Some(found) = existing.filter(|found| *found != value) {
        return Err(ReservedMetadata {
            field,
            key,
            found: found.to_owned(),
            expected: value.to_owned(),
        });
    }
    let map = if is_label {
        manifest.labels_mut()
    } else {
        manifest.annotations_mut()
    };
    map.insert(key.to_owned(), Value::from(value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_added_and_forgeries_refused() {
        let mut m = Manifest::new(
            "t",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        )
        .unwrap();
        label(&mut m, Some("cp1")).unwrap();
        assert_eq!(m.label(CONTROL_PLANE_LABEL), Some("cp1"));
        assert_eq!(m.label(MANAGED_BY_LABEL), Some("kflex"));
        let err = label(&mut m, Some("cp2")).unwrap_err();
        assert_eq!(err.found, "cp1");
        mark_hook(&mut m, "hello").unwrap();
        assert_eq!(m.annotation(HOOK_ANNOTATION), Some("hello"));
    }
}
