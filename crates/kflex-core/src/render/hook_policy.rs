//! What a PostCreateHook may render beyond its own namespace's ordinary objects. A hook author
//! is a tenant: its objects must not grant power outside `<cp>-system`, take a namespace that
//! is someone else's, or replace a Secret the control plane's programs create.
//!
//! The same rules hold in the cluster: the controller's ValidatingAdmissionPolicy
//! (`templates/system/controller.yaml`) refuses what this module refuses, so a hook applied by
//! the controller cannot do what `kflex render` would not print. Change both together.

use serde_json::Value;

use crate::manifest::Manifest;
use crate::settings::{CONTROL_PLANE_NAMESPACE_LABEL, SYSTEM_NAMESPACE, Settings};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Verbs that let the holder grant more than it has, or act as someone else.
pub const FORBIDDEN_VERBS: [&str; 4] = ["*", "escalate", "bind", "impersonate"];

/// ClusterRoles no hook may bind cluster-wide: Kubernetes' user-facing roles (every one of them
/// reads or writes other tenants' namespaces) and, by prefix, Kubernetes' own components'.
pub const FORBIDDEN_CLUSTER_ROLES: [&str; 4] = ["cluster-admin", "admin", "edit", "view"];
pub const SYSTEM_ROLE_PREFIX: &str = "system:";

/// Labels that add a ClusterRole's rules to the built-in admin, edit and view roles.
pub const AGGREGATION_LABEL_PREFIX: &str = "rbac.authorization.k8s.io/aggregate-to-";

/// Namespace names no hook may create: Kubernetes' and OpenShift's own, and any name a control
/// plane's namespace could have (`<cp>-system`: creating it would squat on that control plane).
const FORBIDDEN_NAMESPACE_PREFIXES: [&str; 2] = ["kube-", "openshift-"];
const FORBIDDEN_NAMESPACES: [&str; 3] = ["default", "openshift", SYSTEM_NAMESPACE];
const CONTROL_PLANE_NAMESPACE_SUFFIX: &str = "-system";

/// A hook object kflex refuses: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub field: String,
    pub reason: String,
}

fn refuse(field: impl Into<String>, reason: impl Into<String>) -> Option<Refusal> {
    Some(Refusal {
        field: field.into(),
        reason: reason.into(),
    })
}

/// Why the hook object `manifest` (already placed; `home` is `<cp>-system`) must not be
/// rendered, if it must not. `generated_secrets` are the Secrets the control plane's own
/// programs create in `home`.
pub(crate) fn check(
    manifest: &Manifest,
    home: &str,
    generated_secrets: &[&str],
    settings: &Settings,
) -> Option<Refusal> {
    if manifest.label(CONTROL_PLANE_NAMESPACE_LABEL).is_some() {
        return refuse(
            "metadata.labels",
            format!(
                "{CONTROL_PLANE_NAMESPACE_LABEL} is kflex's: it marks the namespaces kflex's \
                 Gateway accepts routes from, and only a control plane's own namespace carries it"
            ),
        );
    }
    match (manifest.group(), manifest.kind()) {
        ("batch", "Job" | "CronJob") => restore_source(manifest, home, settings),
        ("", "Namespace") => namespace(manifest.name(), home),
        ("", "Secret") if generated_secrets.contains(&manifest.name()) => refuse(
            "metadata.name",
            format!(
                "Secret {home}/{} is created by the control plane itself (its keys or its \
                 kubeconfig); a hook must not replace it",
                manifest.name()
            ),
        ),
        (RBAC_GROUP, "RoleBinding") => subjects(manifest.object(), home),
        // A ClusterRole grants nothing until it is bound; bound by a RoleBinding it grants only
        // in that namespace. It must still not aggregate or hold escalating rules, so that no
        // binding anywhere can turn it into more.
        (RBAC_GROUP, "ClusterRole") => cluster_role(manifest),
        ("gateway.networking.k8s.io", "TLSRoute") => tls_route(manifest.object(), settings),
        (RBAC_GROUP, "ClusterRoleBinding") => {
            if !settings.allow_cluster_scoped_hook_rbac {
                return refuse(
                    "kind",
                    format!(
                        "a PostCreateHook may grant permissions in {home} only (a RoleBinding); \
                         a ClusterRoleBinding grants them in every namespace. An administrator \
                         can allow hooks' ClusterRoleBindings, within limits, with the setting \
                         allowClusterScopedHookRbac"
                    ),
                );
            }
            cluster_role_binding(manifest.object(), home)
        }
        _ => None,
    }
}

/// A hook's TLSRoute must not attach to kflex's Gateway, which carries one route per control
/// plane for `<cp>.<domain>`: a hook's could claim another control plane's host.
fn tls_route(object: &serde_json::Map<String, Value>, settings: &Settings) -> Option<Refusal> {
    let gateway = &settings.gateway;
    let parents = object
        .get("spec")
        .and_then(|spec| spec.get("parentRefs"))
        .and_then(Value::as_array);
    for (index, parent) in parents.into_iter().flatten().enumerate() {
        let text = |field: &str| parent.get(field).and_then(Value::as_str);
        if text("name") == Some(gateway.name.as_str())
            && text("namespace") == Some(gateway.namespace.as_str())
        {
            return refuse(
                format!("spec.parentRefs[{index}]"),
                format!(
                    "Gateway {}/{} is kflex's, carrying one route per control plane for \
                     <cp>.<domain>; a hook's TLSRoute must not attach to it",
                    gateway.namespace, gateway.name
                ),
            );
        }
    }
    None
}

/// A hook's Job or CronJob must not restore another control plane's backup
/// (`--from-control-plane`), unless the setting `backup.allowedRestores` allows it: a backup
/// holds every Secret of its control plane.
fn restore_source(manifest: &Manifest, home: &str, settings: &Settings) -> Option<Refusal> {
    const FLAG: &str = "--from-control-plane=";
    let own = home
        .strip_suffix(CONTROL_PLANE_NAMESPACE_SUFFIX)
        .unwrap_or(home);
    let spec = manifest.object().get("spec")?;
    let (pod, path) = if manifest.is::<k8s_openapi::api::batch::v1::CronJob>() {
        (
            spec.pointer("/jobTemplate/spec/template/spec")?,
            "spec.jobTemplate.spec.template.spec",
        )
    } else {
        (spec.pointer("/template/spec")?, "spec.template.spec")
    };
    for list in ["initContainers", "containers"] {
        let containers = pod.get(list).and_then(Value::as_array);
        for (index, container) in containers.into_iter().flatten().enumerate() {
            for field in ["command", "args"] {
                let words = container.get(field).and_then(Value::as_array);
                for word in words.into_iter().flatten().filter_map(Value::as_str) {
                    if let Some(source) = word.strip_prefix(FLAG)
                        && !settings.backup.may_restore(source, own)
                    {
                        return refuse(
                            format!("{path}.{list}[{index}].{field}"),
                            format!(
                                "{FLAG}{source} reads control plane {source}'s backups, which \
                                 hold its Secrets; a hook may restore only its own control \
                                 plane's, unless the setting backup.allowedRestores allows it"
                            ),
                        );
                    }
                }
            }
        }
    }
    None
}

fn namespace(name: &str, home: &str) -> Option<Refusal> {
    let reserved = FORBIDDEN_NAMESPACES.contains(&name)
        || FORBIDDEN_NAMESPACE_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix));
    if reserved {
        return refuse(
            "metadata.name",
            format!("{name} is a system namespace; a hook must not create or change it"),
        );
    }
    if name.ends_with(CONTROL_PLANE_NAMESPACE_SUFFIX) && name != home {
        return refuse(
            "metadata.name",
            format!(
                "{name} is, or could become, another control plane's namespace (<name>-system); \
                 a hook must not create it"
            ),
        );
    }
    None
}

/// Every subject of a binding is a ServiceAccount of `home`.
fn subjects(object: &serde_json::Map<String, Value>, home: &str) -> Option<Refusal> {
    let subjects = object.get("subjects").and_then(Value::as_array);
    for (index, subject) in subjects.into_iter().flatten().enumerate() {
        let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
        let namespace = subject.get("namespace").and_then(Value::as_str);
        if kind != "ServiceAccount" || namespace != Some(home) {
            let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
            return refuse(
                format!("subjects[{index}]"),
                format!(
                    "{kind} {name:?}{}: a hook's bindings may name only ServiceAccounts in {home}",
                    namespace.map(|ns| format!(" in {ns}")).unwrap_or_default()
                ),
            );
        }
    }
    None
}

fn cluster_role(manifest: &Manifest) -> Option<Refusal> {
    let object = manifest.object();
    if object.get("aggregationRule").is_some_and(|v| !v.is_null()) {
        return refuse(
            "aggregationRule",
            "a hook's ClusterRole must list its own rules; aggregation would collect other \
             roles' permissions",
        );
    }
    let labels = object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object);
    if let Some(label) = labels
        .into_iter()
        .flatten()
        .map(|(key, _)| key)
        .find(|key| key.starts_with(AGGREGATION_LABEL_PREFIX))
    {
        return refuse(
            "metadata.labels",
            format!(
                "{label} would add this role's rules to a role every namespace's users may hold"
            ),
        );
    }
    let rules = object.get("rules").and_then(Value::as_array);
    for (index, rule) in rules.into_iter().flatten().enumerate() {
        let list = |field: &str| -> Vec<&str> {
            rule.get(field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect()
        };
        if let Some(verb) = list("verbs")
            .into_iter()
            .find(|verb| FORBIDDEN_VERBS.contains(verb))
        {
            return refuse(
                format!("rules[{index}].verbs"),
                format!(
                    "{verb:?} is not allowed in a hook's ClusterRole (nor are {}): it would \
                     let the holder grant itself more, or act as someone else",
                    FORBIDDEN_VERBS.join(", ")
                ),
            );
        }
        for field in ["apiGroups", "resources", "nonResourceURLs"] {
            if list(field).iter().any(|value| value.contains('*')) {
                return refuse(
                    format!("rules[{index}].{field}"),
                    "a hook's ClusterRole names what it grants; '*' is not allowed",
                );
            }
        }
    }
    None
}

fn cluster_role_binding(object: &serde_json::Map<String, Value>, home: &str) -> Option<Refusal> {
    let role = object
        .get("roleRef")
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if FORBIDDEN_CLUSTER_ROLES.contains(&role) || role.starts_with(SYSTEM_ROLE_PREFIX) {
        return refuse(
            "roleRef.name",
            format!(
                "a hook's ClusterRoleBinding must not bind {role:?} cluster-wide (nor {} or any \
                 {SYSTEM_ROLE_PREFIX}* role); bind it in {home} with a RoleBinding instead",
                FORBIDDEN_CLUSTER_ROLES.join(", ")
            ),
        );
    }
    subjects(object, home)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_restores_only_its_own_control_planes_backups() {
        let job = |kind: &str, source: &str| {
            let pod = serde_json::json!({"containers": [{"name": "r", "image": "kflex",
                "args": ["bootstrap", "backup", "restore", format!("--from-control-plane={source}")]}]});
            let spec = if kind == "CronJob" {
                serde_json::json!({"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": pod}}}})
            } else {
                serde_json::json!({"template": {"spec": pod}})
            };
            Manifest::new(
                "PostCreateHook h",
                serde_json::json!({"apiVersion": "batch/v1", "kind": kind,
                    "metadata": {"name": "r", "namespace": "cp1-system"}, "spec": spec}),
            )
            .unwrap()
        };
        let mut settings = Settings::default();
        assert!(check(&job("Job", "cp1"), "cp1-system", &[], &settings).is_none());
        let refusal = check(&job("Job", "prod"), "cp1-system", &[], &settings).unwrap();
        assert_eq!(refusal.field, "spec.template.spec.containers[0].args");
        assert!(
            refusal.reason.contains("backup.allowedRestores"),
            "{}",
            refusal.reason
        );
        let refusal = check(&job("CronJob", "prod"), "cp1-system", &[], &settings).unwrap();
        assert_eq!(
            refusal.field,
            "spec.jobTemplate.spec.template.spec.containers[0].args"
        );
        settings.backup.allowed_restores = vec!["prod:cp1".into()];
        assert!(check(&job("Job", "prod"), "cp1-system", &[], &settings).is_none());
    }
    use serde_json::json;

    fn object(value: Value) -> Manifest {
        Manifest::new("PostCreateHook h, templates[0]", value).unwrap()
    }

    fn allowed() -> Settings {
        Settings {
            allow_cluster_scoped_hook_rbac: true,
            ..Settings::default()
        }
    }

    fn check_default(manifest: &Manifest) -> Option<Refusal> {
        check(manifest, "cp1-system", &["k8s-certs"], &Settings::default())
    }

    fn binding(kind: &str, role: &str, subjects: Value) -> Manifest {
        object(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": {"name": "b", "namespace": "cp1-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects}),
        )
    }

    fn cluster_role(rules: Value) -> Manifest {
        object(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r"}, "rules": rules}),
        )
    }

    fn own_sa() -> Value {
        json!([{"kind": "ServiceAccount", "name": "default", "namespace": "cp1-system"}])
    }

    #[test]
    fn namespaced_rbac_in_the_own_namespace_is_fine() {
        let role = object(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "cp1-system"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        );
        assert_eq!(check_default(&role), None);
        for role in ["admin", "edit", "view", "cluster-admin", "my-role"] {
            assert_eq!(check_default(&binding("RoleBinding", role, own_sa())), None);
        }
    }

    #[test]
    fn bindings_name_only_service_accounts_of_the_own_namespace() {
        for subjects in [
            json!([{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]),
            json!([{"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}]),
            json!([{"kind": "ServiceAccount", "name": "default", "namespace": "cp2-system"}]),
            json!([{"kind": "ServiceAccount", "name": "default", "namespace": "kube-system"}]),
            json!([{"kind": "ServiceAccount", "name": "kubeflex-controller-manager", "namespace": "kubeflex-system"}]),
            json!([{"kind": "ServiceAccount", "name": "default"}]),
        ] {
            let refused = check_default(&binding("RoleBinding", "view", subjects.clone()));
            assert_eq!(
                refused.map(|r| r.field),
                Some("subjects[0]".to_owned()),
                "{subjects}"
            );
            let refused = check(
                &binding("ClusterRoleBinding", "mine", subjects.clone()),
                "cp1-system",
                &[],
                &allowed(),
            );
            assert!(refused.is_some(), "{subjects}");
        }
    }

    #[test]
    fn cluster_role_bindings_need_the_setting() {
        let binding = binding("ClusterRoleBinding", "r", own_sa());
        let refused = check_default(&binding).unwrap();
        assert_eq!(refused.field, "kind");
        assert!(
            refused.reason.contains("allowClusterScopedHookRbac"),
            "{}",
            refused.reason
        );
        assert_eq!(check(&binding, "cp1-system", &[], &allowed()), None);
        // A ClusterRole alone grants nothing (KubeFlex users' hooks render them).
        let role = cluster_role(
            json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]}]),
        );
        assert_eq!(check_default(&role), None);
    }

    #[test]
    fn cluster_roles_cannot_escalate_with_or_without_the_setting() {
        for (rules, field) in [
            (
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]),
                "rules[0].verbs",
            ),
            (
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["escalate"]}]),
                "rules[1].verbs",
            ),
            (
                json!([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"]}]),
                "rules[0].verbs",
            ),
            (
                json!([{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}]),
                "rules[0].verbs",
            ),
            (
                json!([{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}]),
                "rules[0].apiGroups",
            ),
            (
                json!([{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]),
                "rules[0].resources",
            ),
            (
                json!([{"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]}]),
                "rules[0].resources",
            ),
            (
                json!([{"nonResourceURLs": ["/metrics*"], "verbs": ["get"]}]),
                "rules[0].nonResourceURLs",
            ),
        ] {
            for settings in [Settings::default(), allowed()] {
                let refused = check(&cluster_role(rules.clone()), "cp1-system", &[], &settings);
                assert_eq!(refused.map(|r| r.field), Some(field.to_owned()), "{rules}");
            }
        }
        let aggregated = object(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}),
        );
        assert_eq!(
            check_default(&aggregated).map(|r| r.field),
            Some("aggregationRule".to_owned())
        );
        let to_admin = object(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r", "labels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}, "rules": []}),
        );
        assert_eq!(
            check_default(&to_admin).map(|r| r.field),
            Some("metadata.labels".to_owned())
        );
    }

    #[test]
    fn even_allowed_cluster_role_bindings_cannot_bind_powerful_roles() {
        for role in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:node",
            "system:controller:clusterrole-aggregation-controller",
        ] {
            let refused = check(
                &binding("ClusterRoleBinding", role, own_sa()),
                "cp1-system",
                &[],
                &allowed(),
            );
            assert_eq!(
                refused.map(|r| r.field),
                Some("roleRef.name".to_owned()),
                "{role}"
            );
        }
    }

    #[test]
    fn namespaces_of_the_system_and_of_other_control_planes_are_refused() {
        let namespace = |name: &str| {
            object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        };
        for name in [
            "default",
            "kube-system",
            "kube-public",
            "kube-anything",
            "kubeflex-system",
            "openshift-config",
            "cp2-system",
            "x-system",
        ] {
            assert!(check_default(&namespace(name)).is_some(), "{name}");
        }
        for name in ["team-a", "tools", "systems", "cp1-system-extra"] {
            assert_eq!(check_default(&namespace(name)), None, "{name}");
        }
    }

    #[test]
    fn secrets_the_control_plane_creates_cannot_be_replaced() {
        let secret = |name: &str| {
            object(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "cp1-system"}}),
            )
        };
        assert_eq!(
            check_default(&secret("k8s-certs")).map(|r| r.field),
            Some("metadata.name".to_owned())
        );
        assert_eq!(check_default(&secret("mine")), None);
    }

    #[test]
    fn no_hook_object_carries_the_gateway_namespace_label() {
        for (kind, namespace) in [("Namespace", None), ("ConfigMap", Some("cp1-system"))] {
            let mut value = json!({"apiVersion": "v1", "kind": kind,
                "metadata": {"name": "team-a",
                             "labels": {CONTROL_PLANE_NAMESPACE_LABEL: "cp1"}}});
            if let Some(namespace) = namespace {
                value["metadata"]["namespace"] = json!(namespace);
            }
            let refusal = check_default(&object(value)).expect("refused");
            assert_eq!(refusal.field, "metadata.labels");
            assert!(
                refusal.reason.contains("kflex's Gateway"),
                "{}",
                refusal.reason
            );
        }
    }

    #[test]
    fn a_hook_tls_route_may_not_attach_to_kflex_s_gateway() {
        let route = |parent: Value| {
            object(
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "TLSRoute",
                "metadata": {"name": "r", "namespace": "cp1-system"},
                "spec": {"parentRefs": [{"name": "mine"}, parent],
                         "hostnames": ["cp2.localtest.me"],
                         "rules": [{"backendRefs": [{"name": "s", "port": 443}]}]}}),
            )
        };
        let refusal = check_default(&route(
            json!({"name": "kubeflex", "namespace": "kubeflex-system"}),
        ))
        .expect("refused");
        assert_eq!(refusal.field, "spec.parentRefs[1]");
        // Its own Gateway, or one of that name in its own namespace, is the hook's business.
        assert_eq!(check_default(&route(json!({"name": "kubeflex"}))), None);
        assert_eq!(
            check_default(&route(
                json!({"name": "other", "namespace": "kubeflex-system"})
            )),
            None
        );
        // The Gateway the settings name is the one protected.
        let mut settings = Settings::default();
        settings.gateway.name = "edge".into();
        settings.gateway.namespace = "gateways".into();
        let moved = route(json!({"name": "edge", "namespace": "gateways"}));
        assert!(check(&moved, "cp1-system", &[], &settings).is_some());
    }
}
