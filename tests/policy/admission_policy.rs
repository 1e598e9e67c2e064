//! The controller's ClusterRole and ValidatingAdmissionPolicy (`templates/system/controller.yaml`,
//! rendered by `kflex render --system`) as each setting renders them, and the facts about kflex's
//! own output the policy relies on.
//!
//! No CEL runs here (the expressions are checked on a real cluster by tests/e2e): the first
//! tests pin which rule each setting renders, so a template edit that drops or weakens one
//! fails here; the last checks, without CEL, that everything kflex's own templates render for
//! every type passes the policy's rules, so that the policy never refuses kflex itself.

use std::collections::BTreeMap;

use kflex_core::api::{ControlPlane, PostCreateHook};
use kflex_core::manifest::Manifest;
use kflex_core::render::metadata::{CONTROL_PLANE_LABEL, HOOK_ANNOTATION};
use kflex_core::render::{HookCatalog, Renderer, TemplateSet};
use kflex_core::settings::Settings;
use serde_json::Value;

fn settings(allow_cluster_scoped_hook_rbac: bool, is_open_shift: bool) -> Settings {
    Settings {
        allow_cluster_scoped_hook_rbac,
        is_open_shift,
        ..Settings::default()
    }
}

fn system(settings: &Settings) -> Vec<Manifest> {
    Renderer::new(settings.clone(), &TemplateSet::embedded())
        .expect("the templates compile")
        .render_system()
        .expect("the system manifests render")
        .manifests
}

fn find<'a>(manifests: &'a [Manifest], kind: &str, name: &str) -> &'a Value {
    manifests
        .iter()
        .find(|m| m.kind() == kind && m.name() == name)
        .map(|m| &m.object()["spec"])
        .unwrap_or_else(|| panic!("{kind} {name} is rendered"))
}

/// The policy's validations: message → expression.
fn validations(settings: &Settings) -> BTreeMap<String, String> {
    let manifests = system(settings);
    let spec = find(
        &manifests,
        "ValidatingAdmissionPolicy",
        "kubeflex-controller-manager-scope",
    );
    spec["validations"]
        .as_array()
        .expect("validations")
        .iter()
        .map(|v| {
            (
                v["message"].as_str().expect("a message").to_owned(),
                v["expression"].as_str().expect("an expression").to_owned(),
            )
        })
        .collect()
}

fn variables(settings: &Settings) -> BTreeMap<String, String> {
    let manifests = system(settings);
    let spec = find(
        &manifests,
        "ValidatingAdmissionPolicy",
        "kubeflex-controller-manager-scope",
    );
    spec["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().expect("a name").to_owned(),
                v["expression"].as_str().expect("an expression").to_owned(),
            )
        })
        .collect()
}

/// The expression of the validation whose message starts with `message`.
fn rule<'a>(validations: &'a BTreeMap<String, String>, message: &str) -> Option<&'a str> {
    validations
        .iter()
        .find(|(m, _)| m.starts_with(message))
        .map(|(_, e)| e.as_str())
}

fn assert_has(expression: Option<&str>, parts: &[&str]) {
    let expression = expression.expect("the rule is rendered");
    for part in parts {
        assert!(
            expression.contains(part),
            "{part:?} is missing from {expression}"
        );
    }
}

const HOOK_CLUSTER_RBAC_OFF: &str = "a PostCreateHook may not create or change ClusterRoleBindings";
const HOOK_CLUSTER_ROLE_RULES: &str = "a PostCreateHook's ClusterRole must not have '*'";
const HOOK_CLUSTER_ROLE_AGGREGATION: &str = "a PostCreateHook's ClusterRole must not aggregate";
const HOOK_BINDING_ROLES: &str = "a PostCreateHook's ClusterRoleBinding must not bind";

#[test]
fn every_setting_renders_the_rules_common_to_both() {
    for allow in [false, true] {
        let validations = validations(&settings(allow, false));
        let variables = variables(&settings(allow, false));
        assert_has(
            variables.get("fromHook").map(String::as_str),
            &[&format!(
                "'{HOOK_ANNOTATION}' in variables.target.metadata.annotations"
            )],
        );
        assert_has(
            rule(&validations, "the kflex controller may write only in"),
            &[
                "variables.inAllowedNamespace",
                "variables.labelled && variables.wasLabelled",
            ],
        );
        // Nothing in kubeflex-system unless a control plane's (its Lease aside), and no delete of
        // what is not a control plane's anywhere: the PostgreSQL password Secret survives a
        // forged ControlPlane annotation even if the controller's own rules failed.
        assert_has(
            rule(
                &validations,
                "the kflex controller deletes only objects labelled",
            ),
            &[
                "request.resource.resource == 'leases'",
                "request.operation == 'DELETE' ? variables.labelled",
                "!variables.inSystemNamespace || (variables.labelled && variables.wasLabelled)",
            ],
        );
        assert_has(
            variables.get("inSystemNamespace").map(String::as_str),
            &["namespaceObject.metadata.name == 'kubeflex-system'"],
        );
        assert_has(
            rule(&validations, "the kflex controller does not move an object"),
            &[
                "request.operation != 'UPDATE'",
                &format!(
                    "object.metadata.labels['{CONTROL_PLANE_LABEL}'] == oldObject.metadata.labels['{CONTROL_PLANE_LABEL}']"
                ),
            ],
        );
        // A hook's bindings (namespaced or not) name only its own control plane's accounts.
        assert_has(
            rule(
                &validations,
                "the kflex controller binds roles only to ServiceAccounts",
            ),
            &[
                "variables.isBinding",
                "s.kind == 'ServiceAccount' && has(s.namespace)",
                "s.namespace == variables.owner + '-system'",
                "(!variables.fromHook && s.namespace == 'kubeflex-system')",
            ],
        );
        assert_has(
            variables.get("isBinding").map(String::as_str),
            &["request.resource.resource in ['rolebindings', 'clusterrolebindings']"],
        );
        assert_has(
            rule(
                &validations,
                "the kflex controller binds cluster-admin only",
            ),
            &["variables.boundClusterRole != 'cluster-admin'"],
        );
    }
}

#[test]
fn hooks_cluster_roles_are_limited_under_both_settings() {
    for allow in [false, true] {
        let validations = validations(&settings(allow, false));
        assert_has(
            rule(&validations, HOOK_CLUSTER_ROLE_RULES),
            &[
                "!variables.fromHook",
                "request.resource.resource == 'clusterroles'",
                "variables.target.rules.all(r,",
                "r.verbs.exists(v, v in ['*', 'escalate', 'bind', 'impersonate'])",
                "r.apiGroups.exists(g, g.contains('*'))",
                "r.resources.exists(x, x.contains('*'))",
                "r.nonResourceURLs.exists(u, u.contains('*'))",
            ],
        );
        assert_has(
            rule(&validations, HOOK_CLUSTER_ROLE_AGGREGATION),
            &[
                "!has(variables.target.aggregationRule)",
                "k.startsWith('rbac.authorization.k8s.io/aggregate-to-')",
            ],
        );
    }
}

#[test]
fn without_the_setting_hooks_may_not_bind_cluster_wide() {
    let validations = validations(&settings(false, false));
    assert_has(
        rule(&validations, HOOK_CLUSTER_RBAC_OFF),
        &[
            "request.operation == 'DELETE' || !variables.fromHook",
            "request.resource.resource == 'clusterrolebindings'",
        ],
    );
    assert_eq!(rule(&validations, HOOK_BINDING_ROLES), None);
}

#[test]
fn with_the_setting_hooks_cluster_role_bindings_are_limited() {
    let validations = validations(&settings(true, false));
    assert_eq!(rule(&validations, HOOK_CLUSTER_RBAC_OFF), None);
    assert_has(
        rule(&validations, HOOK_BINDING_ROLES),
        &[
            "request.resource.resource == 'clusterrolebindings'",
            "variables.boundClusterRole in ['cluster-admin', 'admin', 'edit', 'view']",
            "variables.boundClusterRole.startsWith('system:')",
        ],
    );
}

#[test]
fn restores_read_other_control_planes_backups_only_where_the_setting_allows() {
    let mut allowing = settings(false, false);
    allowing.backup.allowed_restores = vec!["prod:staging".to_owned(), "prod:dev".to_owned()];
    for (settings, pairs) in [
        (settings(false, false), &[][..]),
        (allowing, &[("prod", "staging"), ("prod", "dev")][..]),
    ] {
        let validations = validations(&settings);
        for message in [
            "the kflex controller writes a Job that restores another control plane's backup",
            "the kflex controller writes no CronJob that restores another control plane's backup",
        ] {
            let expression = rule(&validations, message);
            assert_has(
                expression,
                &[
                    "a == '--from-control-plane=' + variables.owner",
                    "c.args.all(",
                    "c.command.all(",
                ],
            );
            let expression = expression.unwrap_or_default();
            assert_eq!(
                expression.matches("variables.owner == '").count(),
                pairs.len() * 4,
                "each allowed pair, for args and command of containers and init containers"
            );
            for (source, target) in pairs {
                assert!(
                    expression.contains(&format!(
                        "(variables.owner == '{target}' && a == '--from-control-plane={source}')"
                    )),
                    "{expression}"
                );
            }
        }
    }
}

#[test]
fn openshift_keeps_the_privileged_scc_rule_under_both_settings() {
    for allow in [false, true] {
        let validations = validations(&settings(allow, true));
        assert_has(
            rule(
                &validations,
                "the kflex controller grants the privileged SCC only",
            ),
            &["'system:openshift:scc:privileged'", "'k3s-server'"],
        );
    }
}

/// The verbs the controller's ClusterRole grants on `resource` of group `group`.
fn granted(settings: &Settings, group: &str, resource: &str) -> Vec<String> {
    let manifests = system(settings);
    let role = manifests
        .iter()
        .find(|m| m.kind() == "ClusterRole" && m.name() == "kubeflex-controller-manager")
        .expect("the controller's ClusterRole");
    let mut verbs = Vec::new();
    for rule in role.object()["rules"].as_array().expect("rules") {
        let has = |field: &str, value: &str| {
            rule[field]
                .as_array()
                .is_some_and(|values| values.iter().any(|v| v == value))
        };
        if has("apiGroups", group)
            && has("resources", resource)
            && rule.get("resourceNames").is_none()
        {
            verbs.extend(
                rule["verbs"]
                    .as_array()
                    .expect("verbs")
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned)),
            );
        }
    }
    verbs
}

#[test]
fn the_controller_never_escalates_cluster_roles() {
    const RBAC: &str = "rbac.authorization.k8s.io";
    for allow in [false, true] {
        // Hooks' ClusterRoles are written (the policy limits them) ...
        let verbs = granted(&settings(allow, false), RBAC, "clusterroles");
        for verb in [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ] {
            assert!(verbs.iter().any(|v| v == verb), "{verb}: {verbs:?}");
        }
        // ... but never with escalate: a hook's ClusterRole grants only what the controller
        // holds.
        for verb in ["escalate", "*"] {
            assert!(!verbs.iter().any(|v| v == verb), "{verb}: {verbs:?}");
        }
    }
    // kflex's own host control planes need their ClusterRoleBinding either way.
    for allow in [false, true] {
        let bindings = granted(&settings(allow, false), RBAC, "clusterrolebindings");
        assert!(bindings.iter().any(|v| v == "create"), "{bindings:?}");
    }
    // hookResources still adds what hooks write.
    let mut with_hook_resources = settings(false, false);
    with_hook_resources.hook_resources = vec!["horizontalpodautoscalers.autoscaling".to_owned()];
    assert!(
        granted(
            &with_hook_resources,
            "autoscaling",
            "horizontalpodautoscalers"
        )
        .iter()
        .any(|v| v == "create")
    );
}

/// Exposure gateway: the controller writes TLSRoutes (under every exposure, so that switching
/// away prunes them) but never Gateways; the policy keeps the namespace label kflex's Gateway
/// selects on control planes' own namespaces, and hooks' TLSRoutes off kflex's Gateway.
#[test]
fn tls_routes_are_written_gateways_never_and_the_gateway_label_is_kept_to_own_namespaces() {
    const GATEWAY_API: &str = "gateway.networking.k8s.io";
    for exposure in [None, Some(kflex_core::settings::Exposure::Gateway)] {
        let settings = Settings {
            exposure,
            ..Settings::default()
        };
        let verbs = granted(&settings, GATEWAY_API, "tlsroutes");
        for verb in ["get", "list", "watch", "create", "patch", "delete"] {
            assert!(verbs.iter().any(|v| v == verb), "{verb}: {verbs:?}");
        }
        assert!(granted(&settings, GATEWAY_API, "gateways").is_empty());
        let validations = validations(&settings);
        assert_has(
            rule(
                &validations,
                "the kflex controller puts the label kflex.kubestellar.org/control-plane-namespace only",
            ),
            &[
                "request.resource.resource == 'namespaces'",
                "!variables.fromHook",
                "variables.target.metadata.labels['kflex.kubestellar.org/control-plane-namespace'] == variables.owner",
                "variables.target.metadata.name == variables.owner + '-system'",
            ],
        );
        assert_has(
            rule(
                &validations,
                "a PostCreateHook's TLSRoute must not attach to kflex's Gateway",
            ),
            &[
                "!variables.fromHook",
                "request.resource.resource == 'tlsroutes'",
                "p.name == 'kubeflex' && has(p.namespace) && p.namespace == 'kubeflex-system'",
            ],
        );
    }
}

fn documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("readable");
    serde_saphyr::from_multiple(&text).expect("YAML")
}

/// Every acceptance ControlPlane and hook.
fn acceptance() -> (Vec<ControlPlane>, Vec<PostCreateHook>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/acceptance");
    let mut control_planes = Vec::new();
    let mut hooks = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the acceptance inputs") {
        let path = entry.expect("readable").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        for document in documents(&path) {
            match document["kind"].as_str() {
                Some("ControlPlane") => {
                    control_planes.push(serde_json::from_value(document).expect("a ControlPlane"));
                }
                Some("PostCreateHook") => {
                    hooks.push(serde_json::from_value(document).expect("a PostCreateHook"));
                }
                _ => {}
            }
        }
    }
    (control_planes, hooks)
}

/// What the policy assumes of whatever the controller applies, checked on kflex's own rendered
/// objects for every type: they carry their control plane's label (the policy's owner, and
/// what admits them in kubeflex-system), never the hook annotation (so the hook rules leave
/// them alone), render no ClusterRole (so the controller needs to write ClusterRoles only for
/// hooks), and bind only ServiceAccounts of their control plane or of kflex, cluster-admin only
/// to a host's own account.
#[test]
fn kflex_s_own_objects_pass_the_policy_for_every_type() {
    let (mut control_planes, hooks) = acceptance();
    assert!(
        control_planes.len() >= 5,
        "every type is in the acceptance set"
    );
    // And the k8s variants: several API servers, a dedicated PostgreSQL.
    for (name, spec) in [
        ("ha", serde_json::json!({"type": "k8s", "replicas": 3})),
        (
            "own",
            serde_json::json!({"type": "k8s", "backend": "dedicated"}),
        ),
        // Backups and a restore: a CronJob, a Job and ServiceAccounts in kubeflex-system,
        // Roles and bindings in <cp>-system.
        (
            "kept",
            serde_json::json!({"type": "k8s", "backend": "dedicated",
                "backup": {"schedule": "@daily"},
                "restoreFrom": {"controlPlane": "kept", "backup": "20261203-021700-aaaaaa"}}),
        ),
    ] {
        control_planes.push(ControlPlane::new(
            name,
            serde_json::from_value(spec).expect("a spec"),
        ));
    }
    let gateway = |is_open_shift| Settings {
        exposure: Some(kflex_core::settings::Exposure::Gateway),
        ..settings(true, is_open_shift)
    };
    let mut external = settings(true, false);
    external.postgres.mode = kflex_core::settings::PostgresMode::External;
    external.postgres.external.secret_name = "pg-admin".into();
    for settings in [
        settings(true, false),
        settings(true, true),
        gateway(false),
        gateway(true),
        external,
    ] {
        // The acceptance hooks include a ClusterRole (KubeFlex's kubectl-check example).
        let renderer = Renderer::new(settings, &TemplateSet::embedded()).expect("renderer");
        let catalog = HookCatalog::new(hooks.clone()).expect("the hooks");
        for cp in &control_planes {
            let name = cp.metadata.name.clone().expect("named");
            let own_namespace = format!("{name}-system");
            let mut manifests = renderer.render(cp, &catalog).expect("rendered").manifests;
            manifests.extend(renderer.render_cleanup(cp).expect("cleanup rendered"));
            for manifest in &manifests {
                let key = manifest.key();
                assert_eq!(
                    manifest.label(CONTROL_PLANE_LABEL),
                    Some(name.as_str()),
                    "{key}"
                );
                // The Gateway's namespace label: only on the own namespace, valued the own name.
                if let Some(value) =
                    manifest.label(kflex_core::settings::CONTROL_PLANE_NAMESPACE_LABEL)
                {
                    assert_eq!(
                        (manifest.kind(), manifest.name(), value),
                        ("Namespace", own_namespace.as_str(), name.as_str()),
                        "{key}"
                    );
                }
                if manifest.annotation(HOOK_ANNOTATION).is_some() {
                    continue;
                }
                assert!(
                    !(manifest.group() == "rbac.authorization.k8s.io"
                        && manifest.kind() == "ClusterRole"),
                    "{key}: kflex's own templates render no ClusterRole"
                );
                if !matches!(manifest.kind(), "RoleBinding" | "ClusterRoleBinding") {
                    continue;
                }
                let subjects = manifest.object()["subjects"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{key} has subjects"));
                for subject in subjects {
                    let namespace = subject["namespace"].as_str().unwrap_or_default();
                    assert!(
                        subject["kind"] == "ServiceAccount"
                            && (namespace == own_namespace || namespace == "kubeflex-system"),
                        "{key}: {subject}"
                    );
                }
                let role = manifest.object()["roleRef"]["name"]
                    .as_str()
                    .unwrap_or_default();
                if role == "cluster-admin" {
                    assert_eq!(subjects.len(), 1, "{key}");
                    assert_eq!(subjects[0]["name"], name.as_str(), "{key}");
                    assert_eq!(subjects[0]["namespace"], own_namespace.as_str(), "{key}");
                }
                if manifest.kind() == "ClusterRoleBinding" {
                    assert_eq!(
                        (cp.spec.type_, role),
                        (kflex_core::api::ControlPlaneType::Host, "cluster-admin"),
                        "{key}: only a host binds cluster-wide"
                    );
                }
            }
        }
    }
}

/// The policy's CEL, run: `tests/admission/cel_check.py` evaluates each rendered variant with
/// cel-python against admission requests the controller could send, each with the verdict it
/// must get. cel-python comes from the Python named by `KFLEX_CEL_PYTHON` (`.ci/run` installs it
/// in its virtualenv), else `python3`; without it this test says it was skipped, unless the
/// variable was set, when it fails.
#[test]
fn the_policy_admits_and_denies_as_intended_when_its_cel_runs() {
    let Some(python) =
        crate::cel_python("the_policy_admits_and_denies_as_intended_when_its_cel_runs")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut paths = Vec::new();
    for (name, settings) in [
        ("off", settings(false, false)),
        // The opt-in variant also allows one restore across control planes.
        (
            "on",
            Settings {
                backup: kflex_core::settings::BackupSettings {
                    allowed_restores: vec!["prod:staging".to_owned()],
                    ..Default::default()
                },
                ..settings(true, false)
            },
        ),
        ("openshift", settings(false, true)),
    ] {
        let path = dir.path().join(format!("{name}.yaml"));
        let stream = kflex_core::manifest::to_yaml_stream(&system(&settings)).expect("the stream");
        std::fs::write(&path, stream).expect("written");
        paths.push(path);
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/admission/cel_check.py");
    let output = std::process::Command::new(&python)
        .arg(script)
        .args(&paths)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("failures: 0"), "{stdout}");
}
