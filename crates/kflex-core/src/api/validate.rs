//! Checks a ControlPlane must pass before it is rendered. They mirror the CRD's CEL rules, so
//! `kflex render` refuses offline what the API server would refuse online, with a message that
//! names the object, the field and the reason.

use super::{BackendDbType, ControlPlane, ControlPlaneType, names};
use crate::settings::{MIN_KUBE_MINOR, SYSTEM_NAMESPACE};

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

/// The longest token lifetime the TokenRequest API accepts (2^32 seconds).
pub const MAX_TOKEN_EXPIRATION_SECONDS: i64 = 1 << 32;

/// How many hook uses one control plane may list (`spec.postCreateHooks`; the CRD's maxItems).
pub const MAX_HOOK_USES: usize = 100;

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
        // These reach a Job's command line and the API paths it reads: a `/` or `..` would
        // point it somewhere else.
        for (field, value, check) in [
            (
                "name",
                &secret.name,
                names::dns1123_subdomain as fn(&str) -> Option<String>,
            ),
            ("namespace", &secret.namespace, names::dns1123_label),
            ("inClusterKey", &secret.in_cluster_key, names::data_key),
        ] {
            if let Some(reason) = check(value) {
                return Err(fail(
                    &format!("spec.bootstrapSecretRef.{field}"),
                    format!("{}: {reason}", names::quoted(value)),
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
        if seconds > MAX_TOKEN_EXPIRATION_SECONDS {
            return Err(fail(
                "spec.tokenExpirationSeconds",
                format!(
                    "must be at most {MAX_TOKEN_EXPIRATION_SECONDS} (2^32, the most the \
                     TokenRequest API accepts), got {seconds}"
                ),
            ));
        }
    }
    if let Some(version) = &spec.kubernetes_version
        && let Some(reason) = kubernetes_version_problem(version)
    {
        return Err(fail("spec.kubernetesVersion", reason));
    }
    if let Some(replicas) = spec.replicas {
        if replicas < 1 {
            return Err(fail(
                "spec.replicas",
                format!("must be at least 1, got {replicas}"),
            ));
        }
        if replicas != 1
            && let Some(why) = single_api_server(spec.type_)
        {
            return Err(fail(
                "spec.replicas",
                format!(
                    "type {} cannot run {replicas} API servers: {why}; remove spec.replicas or \
                     set it to 1 (only type k8s runs several)",
                    spec.type_
                ),
            ));
        }
    }
    if spec.backend == Some(BackendDbType::Dedicated) && spec.type_ != ControlPlaneType::K8s {
        return Err(fail(
            "spec.backend",
            format!(
                "dedicated is for type k8s, whose API servers keep their data in PostgreSQL; a \
                 {} control plane stores its data itself (remove spec.backend or set shared)",
                spec.type_
            ),
        ));
    }
    check_backup(spec, &fail)?;
    let uses = spec.post_create_hooks.as_ref().map_or(0, Vec::len);
    if uses > MAX_HOOK_USES {
        return Err(fail(
            "spec.postCreateHooks",
            format!("lists {uses} hooks; at most {MAX_HOOK_USES} are allowed"),
        ));
    }
    Ok(())
}

/// The most backups one control plane may keep (`spec.backup.retention`; the CRD's maximum).
pub const MAX_BACKUP_RETENTION: i32 = 1000;

/// `spec.backup` and `spec.restoreFrom` on their own: for type k8s only, a valid schedule and
/// retention, names that can be path segments.
fn check_backup(
    spec: &super::ControlPlaneSpec,
    fail: &dyn Fn(&str, String) -> ValidationError,
) -> Result<(), ValidationError> {
    if spec.backup.is_none() && spec.restore_from.is_none() {
        return Ok(());
    }
    if spec.type_ != ControlPlaneType::K8s {
        let why = match spec.type_ {
            ControlPlaneType::K3s | ControlPlaneType::Vcluster => format!(
                "type {} keeps its data in an embedded store that kflex does not back up or \
                 restore yet (only type k8s, whose data is in PostgreSQL)",
                spec.type_
            ),
            _ => format!(
                "type {} has no datastore of kflex's to back up or restore (only type k8s, whose \
                 data is in PostgreSQL)",
                spec.type_
            ),
        };
        let field = if spec.backup.is_some() {
            "spec.backup"
        } else {
            "spec.restoreFrom"
        };
        return Err(fail(field, format!("{why}; remove {field}")));
    }
    if let Some(backup) = &spec.backup {
        if let Some(reason) = super::cron::schedule_problem(&backup.schedule) {
            return Err(fail("spec.backup.schedule", reason));
        }
        if let Some(retention) = backup.retention
            && !(1..=MAX_BACKUP_RETENTION).contains(&retention)
        {
            return Err(fail(
                "spec.backup.retention",
                format!(
                    "must be between 1 and {MAX_BACKUP_RETENTION} (how many backups to keep), got                      {retention}"
                ),
            ));
        }
        if let Some(storage) = &backup.storage
            && let Some(reason) = names::dns1123_label(storage)
        {
            return Err(fail(
                "spec.backup.storage",
                format!("{}: {reason}", names::quoted(storage)),
            ));
        }
    }
    if let Some(restore) = &spec.restore_from {
        if let Some(reason) = name_problem(&restore.control_plane) {
            return Err(fail(
                "spec.restoreFrom.controlPlane",
                format!("{} {reason}", names::quoted(&restore.control_plane)),
            ));
        }
        for (field, value) in [
            ("spec.restoreFrom.backup", Some(&restore.backup)),
            ("spec.restoreFrom.storage", restore.storage.as_ref()),
        ] {
            if let Some(value) = value
                && let Some(reason) = names::dns1123_label(value)
            {
                return Err(fail(field, format!("{}: {reason}", names::quoted(value))));
            }
        }
    }
    Ok(())
}

/// `spec.backup` and `spec.restoreFrom` against the administrator's settings: the storage they
/// name exists, and a restore reads only the control plane's own backups unless
/// `backup.allowedRestores` allows another's (a backup holds every Secret of its control plane).
pub fn validate_backup(
    cp: &ControlPlane,
    settings: &crate::settings::BackupSettings,
) -> Result<(), ValidationError> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    let fail = |field: &str, reason: String| ValidationError {
        name: name.clone(),
        field: field.to_owned(),
        reason,
    };
    let known = || {
        let names: Vec<&str> = settings.storage.iter().map(|s| s.name.as_str()).collect();
        if names.is_empty() {
            "none is configured: an administrator adds one to the setting backup.storage".to_owned()
        } else {
            format!("the setting backup.storage has {}", names.join(", "))
        }
    };
    let mut storages = Vec::new();
    if let Some(backup) = &cp.spec.backup {
        storages.push(("spec.backup.storage", backup.storage.as_deref()));
    }
    if let Some(restore) = &cp.spec.restore_from {
        storages.push(("spec.restoreFrom.storage", restore.storage.as_deref()));
    }
    for (field, storage) in storages {
        if settings.store(storage).is_none() {
            let what = storage.map_or_else(
                || "no backup storage".to_owned(),
                |s| format!("no backup storage named {}", names::quoted(s)),
            );
            return Err(fail(field, format!("{what}; {}", known())));
        }
    }
    if let Some(restore) = &cp.spec.restore_from
        && !settings.may_restore(&restore.control_plane, &name)
    {
        return Err(fail(
            "spec.restoreFrom.controlPlane",
            format!(
                "a control plane restores only its own backups: {:?}'s hold every Secret of that \
                 control plane, so reading them is another tenant's data. An administrator can \
                 allow it with the setting backup.allowedRestores ({}:{name})",
                restore.control_plane, restore.control_plane
            ),
        ));
    }
    Ok(())
}

/// `cp`'s `spec.restoreFrom` against the control plane it names, when that one is known (in the
/// same input, or in the cluster): a backup of a control plane of another type cannot be
/// restored (only k8s control planes' backups exist, and only k8s ones restore).
pub fn validate_restore_source(
    cp: &ControlPlane,
    source: Option<&ControlPlane>,
) -> Result<(), ValidationError> {
    let (Some(restore), Some(source)) = (&cp.spec.restore_from, source) else {
        return Ok(());
    };
    if source.spec.type_ == cp.spec.type_ {
        return Ok(());
    }
    Err(ValidationError {
        name: cp.metadata.name.clone().unwrap_or_default(),
        field: "spec.restoreFrom.controlPlane".to_owned(),
        reason: format!(
            "ControlPlane {:?} is of type {}, this one of type {}: a control plane is restored \
             only from backups of its own type (kflex backs up and restores type k8s)",
            restore.control_plane, source.spec.type_, cp.spec.type_
        ),
    })
}

/// Why a control plane of `type_` runs one API server at most; `None` for k8s, which runs as
/// many as `spec.replicas` says.
fn single_api_server(type_: ControlPlaneType) -> Option<&'static str> {
    match type_ {
        ControlPlaneType::K8s => None,
        ControlPlaneType::K3s => {
            Some("k3s keeps its data in an embedded store that one server uses at a time")
        }
        ControlPlaneType::Vcluster => {
            Some("vCluster, as kflex renders it, runs one server with an embedded store")
        }
        ControlPlaneType::Host | ControlPlaneType::External => {
            Some("it runs no API server of its own")
        }
        ControlPlaneType::Ocm => Some("kflex does not run it"),
    }
}

/// Why `version` cannot be a control plane's Kubernetes version: not a release tag, or older
/// than the oldest minor kflex supports.
pub(crate) fn kubernetes_version_problem(version: &str) -> Option<String> {
    let Some(minor) = kubernetes_minor(version) else {
        return Some(format!(
            "{} is not a Kubernetes release like v1.34.3",
            names::quoted(version)
        ));
    };
    (minor < MIN_KUBE_MINOR).then(|| {
        format!("{version} is older than v1.{MIN_KUBE_MINOR}, the oldest release kflex supports")
    })
}

/// Why `name` cannot name a control plane, if it cannot (its shape; the reserved names are
/// checked with the type).
pub fn name_problem(name: &str) -> Option<String> {
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

/// The minor of a release tag `v1.<minor>.<patch>` (numbers without leading zeros).
fn kubernetes_minor(version: &str) -> Option<u32> {
    let rest = version.strip_prefix("v1.")?;
    let mut parts = rest.split('.');
    let number = |part: Option<&str>| {
        part.filter(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (*p == "0" || !p.starts_with('0'))
        })
        .and_then(|p| p.parse::<u32>().ok())
    };
    let minor = number(parts.next())?;
    number(parts.next())?;
    parts.next().is_none().then_some(minor)
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
    fn bootstrap_references_cannot_point_elsewhere() {
        let with = |name: &str, namespace: &str, key: &str| {
            let mut cp = control_plane("ext", ControlPlaneType::External);
            cp.spec.bootstrap_secret_ref = Some(BootstrapSecretReference {
                name: name.into(),
                namespace: namespace.into(),
                in_cluster_key: key.into(),
            });
            validate_control_plane(&cp)
        };
        assert!(with("adopted", "ext-system", ".kubeconfig").is_ok());
        for (name, namespace, key, field) in [
            ("../x", "ext-system", "k", "spec.bootstrapSecretRef.name"),
            ("a/b", "ext-system", "k", "spec.bootstrapSecretRef.name"),
            ("a\nb", "ext-system", "k", "spec.bootstrapSecretRef.name"),
            (
                "a",
                "ext-system/..",
                "k",
                "spec.bootstrapSecretRef.namespace",
            ),
            (
                "a",
                "ext-system",
                "../k",
                "spec.bootstrapSecretRef.inClusterKey",
            ),
            (
                "a",
                "ext-system",
                "..",
                "spec.bootstrapSecretRef.inClusterKey",
            ),
            (
                "a",
                "ext-system",
                "k/../../x",
                "spec.bootstrapSecretRef.inClusterKey",
            ),
            (
                "a",
                "ext-system",
                "",
                "spec.bootstrapSecretRef.inClusterKey",
            ),
        ] {
            let err = with(name, namespace, key).unwrap_err();
            assert_eq!(err.field, field, "{name} {namespace} {key}: {err}");
            assert!(
                !err.to_string().chars().any(crate::text::is_unsafe_char),
                "{err}"
            );
        }
    }

    #[test]
    fn token_lifetime_has_the_token_request_maximum() {
        let mut cp = control_plane("cp", ControlPlaneType::External);
        cp.spec.bootstrap_secret_ref = Some(BootstrapSecretReference {
            name: "cp-bootstrap".into(),
            namespace: "kubeflex-system".into(),
            in_cluster_key: "k".into(),
        });
        cp.spec.token_expiration_seconds = Some(MAX_TOKEN_EXPIRATION_SECONDS);
        assert!(validate_control_plane(&cp).is_ok());
        cp.spec.token_expiration_seconds = Some(MAX_TOKEN_EXPIRATION_SECONDS + 1);
        let err = validate_control_plane(&cp).unwrap_err();
        assert_eq!(err.field, "spec.tokenExpirationSeconds");
        assert!(err.reason.contains("TokenRequest"), "{err}");
    }

    #[test]
    fn kubernetes_versions_must_be_supported_releases() {
        let mut cp = control_plane("cp", ControlPlaneType::K8s);
        for (version, ok) in [
            ("v1.33.0", true),
            ("v1.40.10", true),
            ("v1.32.9", false),
            ("v1.9.0", false),
        ] {
            cp.spec.kubernetes_version = Some(version.into());
            assert_eq!(validate_control_plane(&cp).is_ok(), ok, "{version}");
        }
        cp.spec.kubernetes_version = Some("v1.30.1".into());
        let err = validate_control_plane(&cp).unwrap_err();
        assert!(
            err.reason.contains("oldest release kflex supports"),
            "{err}"
        );
    }

    #[test]
    fn at_most_a_hundred_hook_uses() {
        let mut cp = control_plane("cp", ControlPlaneType::K8s);
        let use_ = |i: usize| crate::api::PostCreateHookUse {
            hook_name: format!("h{i}"),
            vars: None,
        };
        cp.spec.post_create_hooks = Some((0..MAX_HOOK_USES).map(use_).collect());
        assert!(validate_control_plane(&cp).is_ok());
        cp.spec.post_create_hooks = Some((0..=MAX_HOOK_USES).map(use_).collect());
        assert_eq!(
            validate_control_plane(&cp).unwrap_err().field,
            "spec.postCreateHooks"
        );
    }

    #[test]
    fn replicas_are_at_least_one_and_several_only_for_k8s() {
        let mut cp = control_plane("cp", ControlPlaneType::K8s);
        cp.spec.replicas = Some(3);
        assert!(validate_control_plane(&cp).is_ok());
        cp.spec.replicas = Some(0);
        let err = validate_control_plane(&cp).unwrap_err();
        assert_eq!(err.field, "spec.replicas");
        assert!(err.reason.contains("at least 1, got 0"), "{err}");
        let mut k3s = control_plane("edge", ControlPlaneType::K3s);
        k3s.spec.replicas = Some(1);
        assert!(validate_control_plane(&k3s).is_ok(), "one is what it runs");
        k3s.spec.replicas = Some(2);
        let err = validate_control_plane(&k3s).unwrap_err();
        assert_eq!(err.field, "spec.replicas");
        assert!(err.reason.contains("type k3s cannot run 2"), "{err}");
        assert!(err.reason.contains("embedded store"), "{err}");
        let mut host = control_plane("h", ControlPlaneType::Host);
        host.spec.replicas = Some(2);
        let err = validate_control_plane(&host).unwrap_err();
        assert!(err.reason.contains("no API server of its own"), "{err}");
    }

    #[test]
    fn only_k8s_may_have_a_dedicated_backend() {
        let mut cp = control_plane("vc", ControlPlaneType::Vcluster);
        cp.spec.backend = Some(BackendDbType::Shared);
        assert!(
            validate_control_plane(&cp).is_ok(),
            "KubeFlex's CLI writes shared for every type"
        );
        cp.spec.backend = Some(BackendDbType::Dedicated);
        let err = validate_control_plane(&cp).unwrap_err();
        assert_eq!(err.field, "spec.backend");
        assert!(err.reason.contains("dedicated is for type k8s"), "{err}");
        let mut k8s = control_plane("cp", ControlPlaneType::K8s);
        k8s.spec.backend = Some(BackendDbType::Dedicated);
        assert!(validate_control_plane(&k8s).is_ok());
    }

    #[test]
    fn kubernetes_versions_must_be_release_tags() {
        assert_eq!(kubernetes_minor("v1.34.3"), Some(34));
        for bad in [
            "1.34.3",
            "v1.34",
            "v2.0.0",
            "v1.34.3-rc.1",
            "v1..3",
            "v1.034.1",
            "v1.34.01",
            "latest",
        ] {
            assert_eq!(kubernetes_minor(bad), None, "{bad}");
        }
        let mut cp = control_plane("cp", ControlPlaneType::K8s);
        cp.spec.kubernetes_version = Some("latest".into());
        assert_eq!(
            validate_control_plane(&cp).unwrap_err().field,
            "spec.kubernetesVersion"
        );
    }
}
