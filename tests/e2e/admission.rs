//! The controller's RBAC and admission policy on the cluster, with dry-run writes as the
//! controller's ServiceAccount (nothing is created even where a write is admitted).
//!
//! Where the ServiceAccount's RBAC would refuse a write before the policy sees it (a ClusterRole
//! with `*` needs `escalate`), the suite grants the ServiceAccount those rights for the moment,
//! so that the policy itself is what is tested: it must hold whatever RBAC grants. The grant is
//! removed before the controller starts.

use anyhow::Context as _;
use kflex_core::render::metadata::{CONTROL_PLANE_LABEL, HOOK_ANNOTATION};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

use super::{FIELD_MANAGER, denied, eventually};

/// A control plane the checks pretend exists: its namespace is created (labelled as a control
/// plane's), nothing else.
const PROBE: &str = "kflex-e2e-probe";
const PROBE_NAMESPACE: &str = "kflex-e2e-probe-system";
const EXTRA_RIGHTS: &str = "kflex-e2e-probe-extra-rights";
const CONTROLLER: &str = "kubeflex-controller-manager";
const SYSTEM: &str = "kubeflex-system";
const RBAC: &str = "rbac.authorization.k8s.io";

const OUTSIDE_NAMESPACES: &str = "the kflex controller may write only";
const BINDS_ONLY: &str = "binds roles only to ServiceAccounts";
const NO_MOVE: &str = "does not move an object from one control plane to another";
const LABELLED_ONLY: &str = "deletes only objects labelled";
const HOOK_CLUSTER_RBAC_OFF: &str = "may not create or change ClusterRoleBindings";
const HOOK_CLUSTER_ROLE_RULES: &str = "ClusterRole must not have '*'";
const HOOK_CLUSTER_ROLE_AGGREGATION: &str = "ClusterRole must not aggregate";
const HOOK_BINDING_ROLES: &str =
    "ClusterRoleBinding must not bind cluster-admin, admin, edit, view or a system: role";

fn api_of(client: &kube::Client, object: &Value) -> anyhow::Result<Api<DynamicObject>> {
    let api_version = object["apiVersion"].as_str().context("apiVersion")?;
    let kind = object["kind"].as_str().context("kind")?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Ok(match object["metadata"]["namespace"].as_str() {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    })
}

/// A dry-run create of `object` through `client`.
async fn try_create(
    client: &kube::Client,
    object: &Value,
) -> anyhow::Result<Result<(), kube::Error>> {
    let api = api_of(client, object)?;
    let object: DynamicObject = serde_json::from_value(object.clone())?;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    Ok(api.create(&dry_run, &object).await.map(|_| ()))
}

/// Waits until the policy denies the controller `object` saying `policy_says` (it propagates
/// asynchronously, and so does an RBAC change).
async fn denies(
    as_controller: &kube::Client,
    what: &str,
    object: Value,
    policy_says: &str,
) -> anyhow::Result<()> {
    eventually(
        &format!("the admission policy denies the controller {what}"),
        || {
            let client = as_controller.clone();
            let object = object.clone();
            async move { denied(try_create(&client, &object).await?, policy_says) }
        },
    )
    .await?;
    eprintln!("  denied: {what}");
    Ok(())
}

/// Waits until the controller may create `object` (a dry run).
async fn admits(as_controller: &kube::Client, what: &str, object: Value) -> anyhow::Result<()> {
    eventually(&format!("the controller may write {what}"), || {
        let client = as_controller.clone();
        let object = object.clone();
        async move {
            try_create(&client, &object)
                .await?
                .map_err(|err| anyhow::anyhow!(err))?;
            Ok(true)
        }
    })
    .await?;
    eprintln!("  admitted: {what}");
    Ok(())
}

/// Metadata of an object a hook of the probe control plane rendered.
fn hook_metadata(name: &str, namespace: Option<&str>) -> Value {
    let mut metadata = json!({
        "name": name,
        "labels": {CONTROL_PLANE_LABEL: PROBE},
        "annotations": {HOOK_ANNOTATION: "kflex-e2e-hook"},
    });
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    metadata
}

fn account(name: &str, namespace: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
}

fn hook_cluster_role(rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": hook_metadata("kflex-e2e-probe-hook", None), "rules": rules})
}

fn hook_cluster_role_binding(role: &str, subject: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": hook_metadata("kflex-e2e-probe-hook", None),
           "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
           "subjects": [subject]})
}

fn role_binding(metadata: Value, role_kind: &str, role: &str, subject: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": metadata,
           "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role},
           "subjects": [subject]})
}

fn reading_namespaces() -> Value {
    json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]}])
}

async fn apply_as_admin(admin: &kube::Client, object: &Value) -> anyhow::Result<()> {
    let api = api_of(admin, object)?;
    let name = object["metadata"]["name"].as_str().context("a name")?;
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .with_context(|| format!("applying {name}"))?;
    Ok(())
}

async fn delete_as_admin(admin: &kube::Client, object: &Value) {
    if let (Ok(api), Some(name)) = (api_of(admin, object), object["metadata"]["name"].as_str()) {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
}

fn extra_rights() -> [Value; 2] {
    [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": EXTRA_RIGHTS},
               "rules": [{"apiGroups": [RBAC], "resources": ["clusterroles", "clusterrolebindings"],
                          "verbs": ["create", "update", "patch", "escalate", "bind"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": EXTRA_RIGHTS},
               "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": EXTRA_RIGHTS},
               "subjects": [account(CONTROLLER, SYSTEM)]}),
    ]
}

/// Runs `checks` while the controller's ServiceAccount may write any ClusterRole and binding as
/// far as RBAC is concerned, so that only the admission policy stands in the way.
async fn with_extra_rights<F, Fut>(admin: &kube::Client, checks: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let grant = extra_rights();
    for object in &grant {
        apply_as_admin(admin, object).await?;
    }
    let outcome = checks().await;
    for object in grant.iter().rev() {
        delete_as_admin(admin, object).await;
    }
    outcome
}

/// What the checks need: the probe control plane's namespace, an object of it to relabel, and an
/// unlabelled ConfigMap in kubeflex-system.
fn fixtures() -> [Value; 3] {
    [
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": PROBE_NAMESPACE, "labels": {CONTROL_PLANE_LABEL: PROBE}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "kflex-e2e-probe", "namespace": PROBE_NAMESPACE,
                            "labels": {CONTROL_PLANE_LABEL: PROBE}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "kflex-e2e-probe-unlabelled", "namespace": SYSTEM}}),
    ]
}

/// Creates what the checks need.
pub async fn prepare(admin: &kube::Client) -> anyhow::Result<()> {
    for object in fixtures() {
        apply_as_admin(admin, &object).await?;
    }
    Ok(())
}

/// Removes what [`prepare`] created, and the probe ClusterRole the first check uses.
pub async fn clean_up(admin: &kube::Client) {
    for object in fixtures().iter().rev() {
        delete_as_admin(admin, object).await;
    }
    for object in extra_rights().iter().rev() {
        delete_as_admin(admin, object).await;
    }
}

/// With the system manifests rendered by the default settings (allowClusterScopedHookRbac
/// false): what confines every write, and hooks' cluster-wide RBAC refused.
pub async fn setting_off(admin: &kube::Client, as_controller: &kube::Client) -> anyhow::Result<()> {
    let config_map = |namespace: &str, labelled: bool| {
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "kflex-e2e-probe-new", "namespace": namespace}});
        if labelled {
            object["metadata"]["labels"] = json!({CONTROL_PLANE_LABEL: PROBE});
        }
        object
    };
    // First: waits until the policy is in force, so the controller never starts unconfined.
    denies(
        as_controller,
        "a ConfigMap in default",
        config_map("default", true),
        OUTSIDE_NAMESPACES,
    )
    .await?;
    admits(
        as_controller,
        "a control plane's ConfigMap in kubeflex-system",
        config_map(SYSTEM, true),
    )
    .await?;
    denies(
        as_controller,
        "a ConfigMap of no control plane in kubeflex-system",
        config_map(SYSTEM, false),
        LABELLED_ONLY,
    )
    .await?;
    admits(
        as_controller,
        "a ConfigMap in a control plane's namespace",
        config_map(PROBE_NAMESPACE, true),
    )
    .await?;

    // Deleting what is no control plane's: e.g. the shared PostgreSQL's password.
    let config_maps: Api<DynamicObject> = api_of(as_controller, &fixtures()[2])?;
    let dry_delete = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    eventually(
        "the admission policy denies deleting an unlabelled ConfigMap in kubeflex-system",
        || {
            let config_maps = config_maps.clone();
            let dry_delete = dry_delete.clone();
            async move {
                denied(
                    config_maps
                        .delete("kflex-e2e-probe-unlabelled", &dry_delete)
                        .await,
                    LABELLED_ONLY,
                )
            }
        },
    )
    .await?;
    eprintln!("  denied: deleting a ConfigMap of no control plane in kubeflex-system");

    // No object changes control plane: a namespaced one and a cluster-scoped one.
    let moved = json!({"metadata": {"labels": {CONTROL_PLANE_LABEL: "kflex-e2e-other"}}});
    let dry_patch = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    for object in [&fixtures()[1], &fixtures()[0]] {
        let api = api_of(as_controller, object)?;
        let name = object["metadata"]["name"]
            .as_str()
            .context("a name")?
            .to_owned();
        let what = format!("moving {} {name} to another control plane", object["kind"]);
        eventually(&format!("the admission policy denies {what}"), || {
            let (api, name, moved, dry_patch) =
                (api.clone(), name.clone(), moved.clone(), dry_patch.clone());
            async move {
                denied(
                    api.patch(&name, &dry_patch, &Patch::Merge(&moved)).await,
                    NO_MOVE,
                )
            }
        })
        .await?;
        eprintln!("  denied: {what}");
    }

    // A role the controller could grant (it holds these rights), bound to a user: the probe
    // ClusterRole is the admin's, for this check only.
    let probe_role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                            "metadata": {"name": "kflex-e2e-probe"},
                            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]});
    apply_as_admin(admin, &probe_role).await?;
    let to_user = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                         "metadata": {"name": "kflex-e2e-probe", "labels": {CONTROL_PLANE_LABEL: PROBE}},
                         "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "kflex-e2e-probe"},
                         "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "mallory"}]});
    let outcome = denies(as_controller, "a binding to a user", to_user, BINDS_ONLY).await;
    delete_as_admin(admin, &probe_role).await;
    outcome?;

    // Hooks' namespaced RBAC in their own namespace works; bound to anyone else's account, not.
    admits(
        as_controller,
        "a hook's Role in its control plane's namespace",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": hook_metadata("kflex-e2e-probe-hook", Some(PROBE_NAMESPACE)),
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
    )
    .await?;
    let own_account = account("kflex-e2e-probe-hook", PROBE_NAMESPACE);
    let hook_binding_metadata = hook_metadata("kflex-e2e-probe-hook", Some(PROBE_NAMESPACE));
    admits(
        as_controller,
        "a hook's RoleBinding of its Role to its own ServiceAccount",
        role_binding(
            hook_binding_metadata.clone(),
            "Role",
            "kflex-e2e-probe-hook",
            own_account.clone(),
        ),
    )
    .await?;
    admits(
        as_controller,
        "a hook's RoleBinding of view to its own ServiceAccount",
        role_binding(
            hook_binding_metadata.clone(),
            "ClusterRole",
            "view",
            own_account.clone(),
        ),
    )
    .await?;
    denies(
        as_controller,
        "a hook's RoleBinding to a ServiceAccount in kubeflex-system",
        role_binding(
            hook_binding_metadata.clone(),
            "ClusterRole",
            "view",
            account(CONTROLLER, SYSTEM),
        ),
        BINDS_ONLY,
    )
    .await?;
    denies(
        as_controller,
        "a hook's RoleBinding to another control plane's ServiceAccount",
        role_binding(
            hook_binding_metadata,
            "ClusterRole",
            "view",
            account("default", "kflex-e2e-other-system"),
        ),
        BINDS_ONLY,
    )
    .await?;
    // kflex's own (the database bootstrap's) may still name a kubeflex-system account.
    admits(
        as_controller,
        "kflex's own RoleBinding to a ServiceAccount in kubeflex-system",
        role_binding(
            json!({"name": "kflex-e2e-probe-own", "namespace": PROBE_NAMESPACE, "labels": {CONTROL_PLANE_LABEL: PROBE}}),
            "ClusterRole",
            "view",
            account("db-kflex-e2e-probe", SYSTEM),
        ),
    )
    .await?;

    // A hook's ClusterRole grants nothing unbound: admitted within its limits ...
    admits(
        as_controller,
        "a hook's ClusterRole reading namespaces",
        hook_cluster_role(reading_namespaces()),
    )
    .await?;
    with_extra_rights(admin, || async {
        cluster_role_limits(as_controller).await?;
        // ... but binding anything cluster-wide needs the opt-in, whatever RBAC allows.
        denies(
            as_controller,
            "a hook's ClusterRoleBinding of its own ClusterRole",
            hook_cluster_role_binding(
                "kflex-e2e-probe-hook",
                account("kflex-e2e-probe-hook", PROBE_NAMESPACE),
            ),
            HOOK_CLUSTER_RBAC_OFF,
        )
        .await
    })
    .await?;
    eprintln!("the admission policy confines the controller (allowClusterScopedHookRbac false)");
    Ok(())
}

/// What no hook's ClusterRole may hold, under either setting. Run with [`with_extra_rights`]:
/// RBAC alone would refuse most of these (the controller holds no `escalate`), and the policy
/// must refuse them whatever RBAC allows.
async fn cluster_role_limits(as_controller: &kube::Client) -> anyhow::Result<()> {
    for (what, rules) in [
        (
            "verb *",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]),
        ),
        (
            "apiGroup *",
            json!([{"apiGroups": ["*"], "resources": ["configmaps"], "verbs": ["get"]}]),
        ),
        (
            "resource *",
            json!([{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]),
        ),
        (
            "resource pods/*",
            json!([{"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]}]),
        ),
        (
            "verb escalate",
            json!([{"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["escalate"]}]),
        ),
        (
            "verb bind",
            json!([{"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["get", "bind"]}]),
        ),
        (
            "verb impersonate",
            json!([{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}]),
        ),
        (
            "a second rule with verb *",
            json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
                                            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}]),
        ),
    ] {
        denies(
            as_controller,
            &format!("a hook's ClusterRole with {what}"),
            hook_cluster_role(rules),
            HOOK_CLUSTER_ROLE_RULES,
        )
        .await?;
    }
    let mut aggregating = hook_cluster_role(json!([]));
    aggregating["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {"kflex-e2e": "probe"}}]});
    denies(
        as_controller,
        "a hook's aggregating ClusterRole",
        aggregating,
        HOOK_CLUSTER_ROLE_AGGREGATION,
    )
    .await?;
    let mut aggregated = hook_cluster_role(reading_namespaces());
    aggregated["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] = json!("true");
    denies(
        as_controller,
        "a hook's ClusterRole aggregated into view",
        aggregated,
        HOOK_CLUSTER_ROLE_AGGREGATION,
    )
    .await
}

/// After the checks, with the default settings installed again (before the controller starts):
/// waits until the opt-in no longer holds, so the control planes run under the defaults.
pub async fn defaults_in_force(as_controller: &kube::Client) -> anyhow::Result<()> {
    let binding = hook_cluster_role_binding(
        "kflex-e2e-probe-hook",
        account("kflex-e2e-probe-hook", PROBE_NAMESPACE),
    );
    eventually(
        "the default policy denies hooks' ClusterRoleBindings again",
        || {
            let (client, binding) = (as_controller.clone(), binding.clone());
            async move {
                Ok(match try_create(&client, &binding).await? {
                    Err(kube::Error::Api(status)) => status.code == 403 || status.code == 422,
                    _ => false,
                })
            }
        },
    )
    .await
}

/// With the system manifests rendered with allowClusterScopedHookRbac true: hooks' ClusterRoles
/// and ClusterRoleBindings within the limits.
pub async fn setting_on(admin: &kube::Client, as_controller: &kube::Client) -> anyhow::Result<()> {
    let own_account = account("kflex-e2e-probe-hook", PROBE_NAMESPACE);
    with_extra_rights(admin, || async {
        // First: waits until the new policy is in force (the probe ClusterRole need not exist:
        // the extra rights include `bind`).
        admits(
            as_controller,
            "a hook's ClusterRoleBinding of its own ClusterRole to its own ServiceAccount",
            hook_cluster_role_binding("kflex-e2e-probe-hook", own_account.clone()),
        )
        .await?;
        cluster_role_limits(as_controller).await?;
        // To the probe control plane's own account `kflex-e2e-probe`: for cluster-admin, only the
        // hook rule stands in the way (a host's own binding is kflex's, not a hook's).
        for (role, subject) in [
            ("cluster-admin", account(PROBE, PROBE_NAMESPACE)),
            ("admin", own_account.clone()),
            ("edit", own_account.clone()),
            ("view", own_account.clone()),
            ("system:node", own_account.clone()),
        ] {
            denies(
                as_controller,
                &format!("a hook's ClusterRoleBinding of {role}"),
                hook_cluster_role_binding(role, subject),
                HOOK_BINDING_ROLES,
            )
            .await?;
        }
        for (what, subject) in [
            (
                "a ServiceAccount of another namespace",
                account("default", "default"),
            ),
            (
                "a ServiceAccount of kubeflex-system",
                account(CONTROLLER, SYSTEM),
            ),
            (
                "a group",
                json!({"apiGroup": RBAC, "kind": "Group", "name": "system:authenticated"}),
            ),
        ] {
            denies(
                as_controller,
                &format!("a hook's ClusterRoleBinding to {what}"),
                hook_cluster_role_binding("kflex-e2e-probe-hook", subject),
                BINDS_ONLY,
            )
            .await?;
        }
        Ok(())
    })
    .await?;
    eprintln!(
        "the admission policy limits hooks' cluster-wide RBAC (allowClusterScopedHookRbac true)"
    );
    Ok(())
}
