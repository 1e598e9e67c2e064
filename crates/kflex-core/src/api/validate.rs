//! Checks a ControlPlane must pass before it is rendered. They mirror the CRD's CEL rules, so
//! `kflex render` refuses offline what the API server would refuse online, with a message that
//! names the object, the field and the reason.

use super::{ControlPlane, ControlPlaneType};
use crate::settings::SYSTEM_NAMESPACE;

/// `<cp>-system` must fit the 63-character limit of a namespace name.
pub const MAX_CONTROL_PLANE_NAME_LEN: usize = 56;

/// Names whose namespace `<name>-system` belongs to someone else, with whom.
pub const RESERVED_NAMES: [(&str, &str); 2] = [
    ("kube", "kube-system belongs to Kubernetes"),
    (
        "kubeflex",
        "kubeflex-system holds kflex's own components and the PostgreSQL admin password",
    ),
];

/// For type k8s, names whose database and role (`<name>` with `-` → `_`) PostgreSQL reserves or
/// uses itself.
pub const RESERVED_DATABASE_NAMES: [&str; 9] = [
    "postgres",
    "template0",
    "template1",
    "public",
    "none",
    "current-user",
    "current-role",
    "session-user",
    "system-user",
];

/// For type k8s, the name prefix of PostgreSQL's own roles (`pg_`).
pub const RESERVED_DATABASE_PREFIX: &str = "pg-";

/// A ControlPlane that must not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// `metadata.name` as given (possibly invalid).
    pub name: String,
    /// The offending field, as a path from the object root.
    pub field: String,
    /// Why the value is refused, and what would be accepted.
    pub reason: String,
}

/// Checks the name and the type-specific requirements of `cp`.
pub fn validate_control_plane(cp: &ControlPlane) -> Result<(), ValidationError> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let fail = |field: &str, reason: String| ValidationError {
        name: name.clone(),
        field: field.to_owned(),
        reason,
    };
    if let Some(reason) = name_problem(&name) {
        return Err(fail("metadata.name", reason));
    }
    if let Some((_, owner)) = RESERVED_NAMES
        .iter()
        .find(|(reserved, _)| *reserved == name)
    {
        return Err(fail(
            "metadata.name",
            format!("{name:?} is reserved: its namespace {owner}"),
        ));
    }
    if cp.spec.type_ == ControlPlaneType::K8s
        && (RESERVED_DATABASE_NAMES.contains(&name.as_str())
            || name.starts_with(RESERVED_DATABASE_PREFIX))
    {
        let database = name.replace('-', "_");
        return Err(fail(
            "metadata.name",
            format!(
                "{name:?} is reserved for type k8s: its database and role {database:?} in the \
                 shared PostgreSQL would be one PostgreSQL reserves or uses itself"
            ),
        ));
    }
    if cp
        .metadata
        .namespace
        .as_deref()
        .is_some_and(|ns| !ns.is_empty())
    {
        return Err(fail(
            "metadata.namespace",
            "ControlPlane is cluster-scoped; remove metadata.namespace".to_owned(),
        ));
    }
    let spec = &cp.spec;
    if spec.type_ == ControlPlaneType::External && spec.bootstrap_secret_ref.is_none() {
        return Err(fail(
            "spec.bootstrapSecretRef",
            "required for type external: name the Secret (name, namespace, inClusterKey) that \
             holds the kubeconfig of the cluster to adopt"
                .to_owned(),
        ));
    }
    if let Some(secret) = &spec.bootstrap_secret_ref {
        for (field, value) in [
            ("name", &secret.name),
            ("namespace", &secret.namespace),
            ("inClusterKey", &secret.in_cluster_key),
        ] {
            if value.is_empty() {
                return Err(fail(
                    &format!("spec.bootstrapSecretRef.{field}"),
                    "must not be empty".to_owned(),
                ));
            }
        }
        // Otherwise anyone allowed to create a ControlPlane could have kflex read a Secret of
        // any namespace, or another Secret of kubeflex-system (the PostgreSQL admin password,
        // another control plane's bootstrap kubeconfig).
        let home = format!("{name}-system");
        let own = format!("{name}-bootstrap");
        if secret.namespace == SYSTEM_NAMESPACE {
            if secret.name != own {
                return Err(fail(
                    "spec.bootstrapSecretRef.name",
                    format!(
                        "in {SYSTEM_NAMESPACE} a control plane's bootstrap Secret is named \
                         {own:?} (KubeFlex's name for it), got {:?}",
                        secret.name
                    ),
                ));
            }
        } else if secret.namespace != home {
            return Err(fail(
                "spec.bootstrapSecretRef.namespace",
                format!(
                    "kflex reads a bootstrap Secret only from {SYSTEM_NAMESPACE} or {home}, got \
                     {:?}",
                    secret.namespace
                ),
            ));
        }
    }
    if let Some(seconds) = spec.token_expiration_seconds {
        // The TokenRequest API refuses anything shorter than ten minutes.
        if seconds < 600 {
            return Err(fail(
                "spec.tokenExpirationSeconds",
                format!("must be at least 600 (ten minutes), got {seconds}"),
            ));
        }
    }
    if let Some(version) = &spec.kubernetes_version
        && !is_kubernetes_version(version)
    {
        return Err(fail(
            "spec.kubernetesVersion",
            format!("{version:?} is not a Kubernetes release like v1.34.3"),
        ));
    }
    Ok(())
}

/// Why `name` cannot name a control plane, if it cannot.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is required".to_owned());
    }
    let length = name.chars().count();
    if length > MAX_CONTROL_PLANE_NAME_LEN {
        return Some(format!(
            "is {length} characters long; at most {MAX_CONTROL_PLANE_NAME_LEN} are allowed so that \
             the namespace \"<name>-system\" fits the 63-character limit"
        ));
    }
    let bad: Vec<String> = name
        .chars()
        .filter(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        .map(|c| format!("{c:?}"))
        .collect();
    if !bad.is_empty() {
        return Some(format!(
            "must be a DNS-1035 label (lower-case letters, digits and '-'); found {}",
            dedup(bad).join(", ")
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some("must start with a lower-case letter (it also names a Service)".to_owned());
    }
    if name.ends_with('-') {
        return Some("must end with a letter or digit".to_owned());
    }
    None
}

fn dedup(mut items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    items.retain(|item| seen.insert(item.clone()));
    items
}

/// `v1.<minor>.<patch>`, the form of Kubernetes release tags.
pub(crate) fn is_kubernetes_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix("v1.") else {
        return false;
    };
    let mut parts = rest.split('.');
    let numeric = |part: Option<&str>| {
        part.is_some_and(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    numeric(parts.next()) && numeric(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BootstrapSecretReference, ControlPlaneSpec};

    fn control_plane(name: &str, type_: ControlPlaneType) -> ControlPlane {
        let spec: ControlPlaneSpec =
            serde_json::from_value(serde_json::json!({ "type": type_ })).unwrap();
        ControlPlane::new(name, spec)
    }

    #[test]
    fn accepts_names_up_to_56_characters() {
        let name = format!("a{}", "b".repeat(55));
        assert!(validate_control_plane(&control_plane(&name, ControlPlaneType::K8s)).is_ok());
    }

    #[test]
    fn refuses_57_characters_and_says_why() {
        let name = format!("a{}", "b".repeat(56));
        let err = validate_control_plane(&control_plane(&name, ControlPlaneType::K8s)).unwrap_err();
        assert_eq!(err.field, "metadata.name");
        assert!(err.reason.contains("57 characters"), "{err}");
        assert!(err.reason.contains("-system"), "{err}");
    }

    #[test]
    fn refuses_upper_case_and_dots_listing_each_character_once() {
        let err =
            validate_control_plane(&control_plane("Team.A", ControlPlaneType::K8s)).unwrap_err();
        assert_eq!(err.field, "metadata.name");
        assert!(err.reason.contains("'T', '.', 'A'"), "{err}");
    }

    #[test]
    fn refuses_a_leading_digit_because_the_name_is_also_a_service_name() {
        let err = validate_control_plane(&control_plane("1cp", ControlPlaneType::K8s)).unwrap_err();
        assert!(
            err.reason.contains("start with a lower-case letter"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_trailing_dash() {
        let err = validate_control_plane(&control_plane("cp-", ControlPlaneType::K8s)).unwrap_err();
        assert!(err.reason.contains("end with"), "{err}");
    }

    #[test]
    fn external_needs_a_bootstrap_secret() {
        let err =
            validate_control_plane(&control_plane("ext", ControlPlaneType::External)).unwrap_err();
        assert_eq!(err.field, "spec.bootstrapSecretRef");
        let mut cp = control_plane("ext", ControlPlaneType::External);
        cp.spec.bootstrap_secret_ref = Some(BootstrapSecretReference {
            name: "ext-bootstrap".into(),
            namespace: "kubeflex-system".into(),
            in_cluster_key: "kubeconfig-incluster".into(),
        });
        assert!(validate_control_plane(&cp).is_ok());
    }

    #[test]
    fn the_bootstrap_secret_cannot_be_another_secret_of_kubeflex() {
        let with_secret = |name: &str, namespace: &str| {
            let mut cp = control_plane("ext", ControlPlaneType::External);
            cp.spec.bootstrap_secret_ref = Some(BootstrapSecretReference {
                name: name.into(),
                namespace: namespace.into(),
                in_cluster_key: "kubeconfig-incluster".into(),
            });
            validate_control_plane(&cp)
        };
        for (name, namespace, field) in [
            (
                "postgres-postgresql",
                "kubeflex-system",
                "spec.bootstrapSecretRef.name",
            ),
            (
                "other-bootstrap",
                "kubeflex-system",
                "spec.bootstrapSecretRef.name",
            ),
            (
                "ext-bootstrap",
                "team-a",
                "spec.bootstrapSecretRef.namespace",
            ),
            (
                "ext-bootstrap",
                "other-system",
                "spec.bootstrapSecretRef.namespace",
            ),
        ] {
            let err = with_secret(name, namespace).unwrap_err();
            assert_eq!(err.field, field, "{name} in {namespace}: {err}");
        }
        // In its own namespace, any name: nothing else of kflex's is there to read.
        assert!(with_secret("adopted", "ext-system").is_ok());
    }

    #[test]
    fn names_that_would_take_over_system_namespaces_are_refused() {
        for name in ["kube", "kubeflex"] {
            let err =
                validate_control_plane(&control_plane(name, ControlPlaneType::Host)).unwrap_err();
            assert_eq!(err.field, "metadata.name");
            assert!(err.reason.contains("-system"), "{err}");
        }
        assert!(validate_control_plane(&control_plane("kubex", ControlPlaneType::K8s)).is_ok());
    }

    #[test]
    fn k8s_names_must_not_be_postgres_own_databases_or_roles() {
        for name in ["postgres", "template1", "public", "current-user", "pg-x"] {
            let err =
                validate_control_plane(&control_plane(name, ControlPlaneType::K8s)).unwrap_err();
            assert!(err.reason.contains("PostgreSQL"), "{name}: {err}");
        }
        // Other types have no database.
        assert!(
            validate_control_plane(&control_plane("postgres", ControlPlaneType::Vcluster)).is_ok()
        );
        assert!(validate_control_plane(&control_plane("pgx", ControlPlaneType::K8s)).is_ok());
    }

    #[test]
    fn token_lifetime_has_the_token_request_minimum() {
        let mut cp = control_plane("cp", ControlPlaneType::K8s);
        cp.spec.token_expiration_seconds = Some(599);
        let err = validate_control_plane(&cp).unwrap_err();
        assert_eq!(err.field, "spec.tokenExpirationSeconds");
    }

    #[test]
    fn kubernetes_versions_must_be_release_tags() {
        assert!(is_kubernetes_version("v1.34.3"));
        for bad in [
            "1.34.3",
            "v1.34",
            "v2.0.0",
            "v1.34.3-rc.1",
            "v1..3",
            "latest",
        ] {
            assert!(!is_kubernetes_version(bad), "{bad}");
        }
        let mut cp = control_plane("cp", ControlPlaneType::K8s);
        cp.spec.kubernetes_version = Some("latest".into());
        assert_eq!(
            validate_control_plane(&cp).unwrap_err().field,
            "spec.kubernetesVersion"
        );
    }
}
