//! Which listed members of a control plane's ApplySet the controller may delete — when pruning,
//! when cleaning up after a deletion, and in `kflex diff`'s view of what pruning removes.
//!
//! The parent's annotations that say which kinds, namespaces and Secrets the set holds
//! (`applyset.kubernetes.io/contains-group-kinds`, `…/additional-namespaces`,
//! `kflex.kubestellar.org/secrets`) are written by whoever may write the ControlPlane, and are
//! copied with an exported ControlPlane. They only say where to look. Whether an object found
//! there belongs to this control plane is decided here, by facts a tenant cannot forge through
//! the ControlPlane: where the object lives, its live `kflex.kubestellar.org/control-plane`
//! label, and what this control plane renders. The rules, in order:
//!
//! 1. A Secret (the controller may neither list nor read Secrets, so it knows them only by the
//!    names in the annotation): only in `<cp>-system`, and never one the type's programs create
//!    at runtime (its keys and kubeconfigs, `TypeFacts::generated_secrets`), which kflex never
//!    renders.
//! 2. In the system namespace (`kubeflex-system`): only an object this control plane renders
//!    (its current render or its cleanup render). So pruning never removes anything there, and
//!    deletion cleanup removes only what the render names — never the shared PostgreSQL or
//!    another control plane's database Job.
//! 3. Any other object found by its ApplySet label: in `<cp>-system`; or cluster-scoped and
//!    labelled for this control plane (the label as the API has it now, not as the
//!    ControlPlane claims).
//!
//! Anything else is refused, with the reason. This module does no I/O.

use std::collections::HashSet;

use kflex_core::manifest::ObjectKey;
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;

use super::ownership::SECRETS;

/// How a member was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// By its ApplySet label (from a cache or a label-selected list), with the value of its live
    /// `kflex.kubestellar.org/control-plane` label.
    Labelled { control_plane: Option<String> },
    /// Named by the parent's annotation only (Secrets, which the controller cannot list).
    Named,
}

/// What belongs to one control plane.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub control_plane: &'a str,
    pub system_namespace: &'a str,
    /// The Secrets the type's programs create at runtime (never rendered).
    pub generated_secrets: &'a [&'a str],
    /// Every object the control plane renders: its current render and its cleanup render;
    /// `None` when it could not be rendered (then nothing in the system namespace is trusted).
    pub rendered: Option<&'a HashSet<ObjectKey>>,
}

/// A listed member the controller will not delete, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key} is listed as a member of ControlPlane {control_plane} but is not deleted: {why}")]
pub struct Refusal {
    pub key: ObjectKey,
    pub control_plane: String,
    pub why: String,
}

fn is_secret(key: &ObjectKey) -> bool {
    key.is::<k8s_openapi::api::core::v1::Secret>()
}

/// Why the member `key`, found as `found`, may not be deleted as `owner`'s; `None`: it belongs
/// to `owner` and may be.
pub fn refusal(owner: &Owner<'_>, key: &ObjectKey, found: &Found) -> Option<Refusal> {
    let why = why_not(owner, key, found)?;
    Some(Refusal {
        key: key.clone(),
        control_plane: owner.control_plane.to_owned(),
        why,
    })
}

fn why_not(owner: &Owner<'_>, key: &ObjectKey, found: &Found) -> Option<String> {
    let home = format!("{}-system", owner.control_plane);
    let namespace = key.namespace.as_deref();
    if is_secret(key) {
        if namespace != Some(home.as_str()) {
            return Some(format!(
                "kflex deletes Secrets only in the control plane's namespace {home} (the \
                 ControlPlane's annotation {SECRETS} naming it can be written by anyone who may \
                 edit the ControlPlane)"
            ));
        }
        if owner.generated_secrets.contains(&key.name.as_str()) {
            return Some(
                "the control plane's own programs create this Secret (its keys or a kubeconfig) \
                 and kflex never renders it, so kflex never deletes it"
                    .to_owned(),
            );
        }
        return None;
    }
    if namespace == Some(owner.system_namespace) {
        return match owner.rendered {
            Some(rendered) if rendered.contains(key) => None,
            Some(_) => Some(format!(
                "in {} kflex deletes only objects this control plane renders",
                owner.system_namespace
            )),
            None => Some(format!(
                "in {} kflex deletes only objects this control plane renders, and it could not \
                 be rendered",
                owner.system_namespace
            )),
        };
    }
    let Found::Labelled { control_plane } = found else {
        return Some("only Secrets are deleted by name alone".to_owned());
    };
    match namespace {
        Some(namespace) if namespace == home => None,
        Some(namespace) => Some(format!(
            "it is in namespace {namespace}, and a control plane's namespaced objects are in {home}"
        )),
        None => match control_plane.as_deref() {
            Some(label) if label == owner.control_plane => None,
            Some(other) => Some(format!(
                "it is labelled {CONTROL_PLANE_LABEL}={other}: it belongs to ControlPlane {other}"
            )),
            None => Some(format!(
                "it is cluster-scoped and not labelled {CONTROL_PLANE_LABEL}={}",
                owner.control_plane
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    fn secret(namespace: &str, name: &str) -> ObjectKey {
        key("", "Secret", Some(namespace), name)
    }

    fn labelled(control_plane: Option<&str>) -> Found {
        Found::Labelled {
            control_plane: control_plane.map(str::to_owned),
        }
    }

    const GENERATED: &[&str] = &[
        "k8s-certs",
        "admin-kubeconfig",
        "cm-kubeconfig",
        "kine-datastore",
    ];

    fn check(rendered: Option<&HashSet<ObjectKey>>, key: &ObjectKey, found: &Found) -> bool {
        let owner = Owner {
            control_plane: "cp1",
            system_namespace: "kubeflex-system",
            generated_secrets: GENERATED,
            rendered,
        };
        refusal(&owner, key, found).is_none()
    }

    #[test]
    fn secrets_named_by_the_annotation_only_in_the_own_namespace_and_never_generated_ones() {
        let rendered = HashSet::new();
        let r = Some(&rendered);
        assert!(check(r, &secret("cp1-system", "token-cp1"), &Found::Named));
        for name in GENERATED {
            assert!(
                !check(r, &secret("cp1-system", name), &Found::Named),
                "{name}"
            );
        }
        for (namespace, name) in [
            ("cp2-system", "k8s-certs"),
            ("cp2-system", "admin-kubeconfig"),
            ("cp2-system", "token-cp1"),
            ("kubeflex-system", "postgres-postgresql"),
            ("kube-system", "bootstrap-token-abcdef"),
            ("default", "anything"),
            ("cp1-system-x", "token-cp1"),
        ] {
            assert!(
                !check(r, &secret(namespace, name), &Found::Named),
                "{namespace}/{name}"
            );
        }
    }

    #[test]
    fn a_secret_in_the_system_namespace_is_refused_even_when_rendered() {
        let postgres = secret("kubeflex-system", "postgres-postgresql");
        let rendered = HashSet::from([postgres.clone()]);
        assert!(!check(Some(&rendered), &postgres, &Found::Named));
    }

    #[test]
    fn in_the_system_namespace_only_what_the_control_plane_renders() {
        let account = key("", "ServiceAccount", Some("kubeflex-system"), "db-cp1");
        let job = key("batch", "Job", Some("kubeflex-system"), "db-drop-cp1");
        let rendered = HashSet::from([account.clone(), job.clone()]);
        let mine = labelled(Some("cp1"));
        assert!(check(Some(&rendered), &account, &mine));
        assert!(check(Some(&rendered), &job, &mine));
        for other in [
            key("", "ServiceAccount", Some("kubeflex-system"), "db-cp2"),
            key("batch", "Job", Some("kubeflex-system"), "db-cp2"),
            key(
                "apps",
                "StatefulSet",
                Some("kubeflex-system"),
                "postgres-postgresql",
            ),
            key("", "ConfigMap", Some("kubeflex-system"), "kubeflex-config"),
        ] {
            assert!(!check(Some(&rendered), &other, &mine), "{other}");
        }
        // Without a render nothing there can be told apart.
        assert!(!check(None, &account, &mine));
    }

    #[test]
    fn labelled_members_in_the_own_namespace_or_cluster_scoped_with_the_own_label() {
        let rendered = HashSet::new();
        let r = Some(&rendered);
        let config_map = |namespace| key("", "ConfigMap", Some(namespace), "hello-cp1");
        assert!(check(r, &config_map("cp1-system"), &labelled(Some("cp1"))));
        // The namespace decides: a tenant can label only what it can write.
        assert!(check(r, &config_map("cp1-system"), &labelled(None)));
        for namespace in ["cp2-system", "default", "kube-system", "cp1"] {
            assert!(
                !check(r, &config_map(namespace), &labelled(Some("cp1"))),
                "{namespace}"
            );
        }
        let binding = key(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            None,
            "kflex-host-cp1",
        );
        assert!(check(r, &binding, &labelled(Some("cp1"))));
        assert!(!check(r, &binding, &labelled(Some("cp2"))));
        assert!(!check(r, &binding, &labelled(None)));
        let namespace = key("", "Namespace", None, "cp2-system");
        assert!(!check(r, &namespace, &labelled(Some("cp2"))));
        // A cluster-scoped object is never deleted by name alone.
        assert!(!check(r, &binding, &Found::Named));
    }

    #[test]
    fn a_refusal_names_the_object_the_control_plane_and_why() {
        let rendered = HashSet::new();
        let owner = Owner {
            control_plane: "cp1",
            system_namespace: "kubeflex-system",
            generated_secrets: GENERATED,
            rendered: Some(&rendered),
        };
        let refusal =
            refusal(&owner, &secret("cp2-system", "k8s-certs"), &Found::Named).expect("refused");
        let text = refusal.to_string();
        assert!(
            text.contains("Secret cp2-system/k8s-certs")
                && text.contains("ControlPlane cp1")
                && text.contains("cp1-system"),
            "{text}"
        );
    }
}
