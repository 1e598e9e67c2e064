//! Highly available API servers, dedicated datastores, backups and restores on a real cluster:
//! what the API server refuses (its CRD's rules), what a `dedicated` control plane, a
//! three-replica one and one with `spec.backup` and `spec.restoreFrom` consist of once the
//! controller applied them (objects, ownership, status, `kflex list -o wide`, the backup
//! CronJob and the restore Job), and that deleting them leaves nothing behind — no namespace, no
//! volume claim, nothing in kubeflex-system. Pods need not run: the checks are on what the API
//! shows (the restore Job's backup does not exist, so that control plane never becomes Ready).

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kflex_core::api::ControlPlane;
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{eventually, kflex};

/// A k8s control plane with its own PostgreSQL.
pub const DEDICATED: &str = "e2e-own";
/// A k8s control plane with three API servers.
pub const HIGHLY_AVAILABLE: &str = "e2e-ha";
/// A k8s control plane with a backup schedule, restored from a backup of its own name.
pub const BACKED_UP: &str = "e2e-backup";

/// The two control planes, created with the acceptance set.
pub fn control_planes() -> anyhow::Result<Vec<ControlPlane>> {
    Ok(vec![
        ControlPlane::new(
            DEDICATED,
            serde_json::from_value(json!({"type": "k8s", "backend": "dedicated"}))?,
        ),
        ControlPlane::new(
            HIGHLY_AVAILABLE,
            serde_json::from_value(json!({"type": "k8s", "replicas": 3}))?,
        ),
        ControlPlane::new(
            BACKED_UP,
            serde_json::from_value(json!({"type": "k8s",
                // Not during the suite: the objects are what is checked.
                "backup": {"schedule": "0 0 1 1 *", "retention": 3},
                "restoreFrom": {"controlPlane": BACKED_UP, "backup": "20000101-000000-absent"}}))?,
        ),
    ])
}

fn control_plane(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane",
           "metadata": {"name": name}, "spec": spec})
}

/// The API server's message for a refused request, or an error if it was admitted.
fn refusal<T>(what: &str, result: Result<T, kube::Error>) -> anyhow::Result<String> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 422 => Ok(status.message),
        Err(err) => Err(anyhow::anyhow!("{what}: {err}")),
        Ok(_) => bail!("{what}: the API server admitted it"),
    }
}

/// The CRD refuses, naming field and reason: replicas 0, two k3s servers, a dedicated vcluster,
/// and a changed backend (on `existing`, a k8s control plane the suite created, by dry run).
pub async fn refused_by_the_api(client: &kube::Client, existing: &str) -> anyhow::Result<()> {
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::core::ApiResource::erase::<ControlPlane>(&()),
    );
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for (name, spec, field, says) in [
        (
            "e2e-zero",
            json!({"type": "k8s", "replicas": 0}),
            "spec.replicas",
            "greater than or equal to 1",
        ),
        (
            "e2e-two-k3s",
            json!({"type": "k3s", "replicas": 2}),
            "spec.replicas",
            "only type k8s runs more than one API server",
        ),
        (
            "e2e-own-vc",
            json!({"type": "vcluster", "backend": "dedicated"}),
            "spec.backend",
            "dedicated is for k8s control planes",
        ),
        (
            "e2e-host-backup",
            json!({"type": "host", "backup": {"schedule": "@daily"}}),
            "spec.backup",
            "backups are for type k8s",
        ),
        (
            "e2e-bad-schedule",
            json!({"type": "k8s", "backup": {"schedule": "daily"}}),
            "spec.backup.schedule",
            "should match",
        ),
    ] {
        let object: DynamicObject = serde_json::from_value(control_plane(name, spec))?;
        let message = refusal(name, api.create(&dry_run, &object).await)?;
        anyhow::ensure!(
            message.contains(name) && message.contains(field) && message.contains(says),
            "{name}: the API server's refusal does not name the object, {field} and why: {message}"
        );
    }
    let patch = json!({"spec": {"backend": "dedicated"}});
    let params = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let message = refusal(
        "changing spec.backend",
        api.patch(existing, &params, &Patch::Merge(&patch)).await,
    )?;
    anyhow::ensure!(
        message.contains(existing)
            && message.contains("spec.backend")
            && message.contains("immutable")
            && message.contains("To move a control plane"),
        "changing {existing}'s backend: {message}"
    );
    let patch = json!({"spec": {"restoreFrom": {"controlPlane": existing, "backup": "b1"}}});
    let message = refusal(
        "adding spec.restoreFrom",
        api.patch(existing, &params, &Patch::Merge(&patch)).await,
    )?;
    anyhow::ensure!(
        message.contains("spec.restoreFrom") && message.contains("immutable"),
        "adding {existing}'s restoreFrom: {message}"
    );
    eprintln!(
        "the API server refuses replicas 0, two k3s servers, a dedicated vcluster, a changed \
         backend, backups of a host, a bad schedule and a restoreFrom added later, naming the \
         object, the field and why"
    );
    Ok(())
}

async fn get(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<DynamicObject>> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource =
        kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    Ok(api.get_opt(name).await?)
}

fn owned_by(object: &DynamicObject, control_plane: &str) -> bool {
    object
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "ControlPlane" && o.name == control_plane)
}

/// What the API shows of the two once Synced (the generic checks of every rendered object ran
/// already): the dedicated one's server in its namespace and nothing in kubeflex-system, the
/// replicas and budgets of the other, and `kflex list -o wide`.
pub async fn check_objects(client: &kube::Client, kubeconfig: &str) -> anyhow::Result<()> {
    let namespace = format!("{DEDICATED}-system");
    let server = get(client, "apps/v1", "StatefulSet", &namespace, "postgres")
        .await?
        .context("the dedicated PostgreSQL's StatefulSet")?;
    anyhow::ensure!(owned_by(&server, DEDICATED), "{namespace}/postgres owner");
    anyhow::ensure!(
        server.data["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain",
        "the claim outlives the StatefulSet"
    );
    for (api_version, kind, name) in [
        ("networking.k8s.io/v1", "NetworkPolicy", "postgres"),
        ("v1", "Service", "postgres"),
        ("batch/v1", "Job", "postgres-bootstrap"),
        ("batch/v1", "Job", "kflex-database"),
    ] {
        get(client, api_version, kind, &namespace, name)
            .await?
            .with_context(|| format!("{kind} {namespace}/{name}"))?;
    }
    for (api_version, kind) in [("batch/v1", "Job"), ("v1", "ServiceAccount")] {
        anyhow::ensure!(
            get(
                client,
                api_version,
                kind,
                "kubeflex-system",
                &format!("db-{DEDICATED}")
            )
            .await?
            .is_none(),
            "a dedicated control plane has no {kind} in kubeflex-system"
        );
    }
    let namespace = format!("{HIGHLY_AVAILABLE}-system");
    for (name, replicas) in [("kube-apiserver", 3), ("kube-controller-manager", 2)] {
        let deployment = get(client, "apps/v1", "Deployment", &namespace, name)
            .await?
            .with_context(|| format!("Deployment {namespace}/{name}"))?;
        anyhow::ensure!(
            deployment.data["spec"]["replicas"] == replicas,
            "{namespace}/{name} runs {replicas}: {}",
            deployment.data["spec"]["replicas"]
        );
        let budget = get(client, "policy/v1", "PodDisruptionBudget", &namespace, name)
            .await?
            .with_context(|| format!("PodDisruptionBudget {namespace}/{name}"))?;
        anyhow::ensure!(
            owned_by(&budget, HIGHLY_AVAILABLE),
            "{namespace}/{name} budget owner"
        );
        anyhow::ensure!(budget.data["spec"]["maxUnavailable"] == 1);
    }
    // The backup CronJob and the restore Job, in kubeflex-system, with their accounts; their
    // Roles in the control plane's namespace.
    let cron = get(
        client,
        "batch/v1",
        "CronJob",
        "kubeflex-system",
        &format!("backup-{BACKED_UP}"),
    )
    .await?
    .context("the backup CronJob")?;
    let args =
        &cron.data["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"];
    anyhow::ensure!(
        args[2] == "create" && args[3] == format!("--control-plane={BACKED_UP}").as_str(),
        "the CronJob runs kflex bootstrap backup create: {args}"
    );
    anyhow::ensure!(cron.data["spec"]["schedule"] == "0 0 1 1 *");
    let restore = get(
        client,
        "batch/v1",
        "Job",
        "kubeflex-system",
        &format!("restore-{BACKED_UP}"),
    )
    .await?
    .context("the restore Job")?;
    let args = &restore.data["spec"]["template"]["spec"]["containers"][0]["args"];
    anyhow::ensure!(
        args[2] == "restore"
            && args
                .as_array()
                .is_some_and(|a| a.contains(&json!(format!("--from-control-plane={BACKED_UP}")))),
        "the restore Job runs kflex bootstrap backup restore: {args}"
    );
    for object in [&cron, &restore] {
        anyhow::ensure!(
            object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CONTROL_PLANE_LABEL))
                == Some(&BACKED_UP.to_owned()),
            "{:?} is labelled with its control plane",
            object.metadata.name
        );
    }
    for (api_version, kind, namespace, name) in [
        (
            "v1",
            "ServiceAccount",
            "kubeflex-system".to_owned(),
            format!("backup-{BACKED_UP}"),
        ),
        (
            "v1",
            "ServiceAccount",
            "kubeflex-system".to_owned(),
            format!("restore-{BACKED_UP}"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "Role",
            format!("{BACKED_UP}-system"),
            "kflex-backup".to_owned(),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "Role",
            format!("{BACKED_UP}-system"),
            "kflex-restore".to_owned(),
        ),
        (
            "v1",
            "PersistentVolumeClaim",
            "kubeflex-system".to_owned(),
            "kflex-backups".to_owned(),
        ),
    ] {
        get(client, api_version, kind, &namespace, &name)
            .await?
            .with_context(|| format!("{kind} {namespace}/{name}"))?;
    }
    let listed = kflex(kubeconfig, &["list", "-o", "wide"]).await?;
    let table = String::from_utf8_lossy(&listed.stdout);
    let columns = |name: &str| -> Option<Vec<String>> {
        table
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .find(|columns| columns.first().is_some_and(|first| first == name))
    };
    anyhow::ensure!(
        columns(DEDICATED).is_some_and(|c| c[4] == "dedicated")
            && columns(HIGHLY_AVAILABLE).is_some_and(|c| c[4] == "shared" && c[5] == "3"),
        "kflex list -o wide:\n{table}"
    );
    eprintln!(
        "ControlPlane {DEDICATED}: its PostgreSQL in its namespace, nothing in kubeflex-system; \
         ControlPlane {HIGHLY_AVAILABLE}: three API servers, two controller managers, budgets; \
         ControlPlane {BACKED_UP}: its backup CronJob and restore Job in kubeflex-system"
    );
    Ok(())
}

/// After deletion: both namespaces gone — with the dedicated server's volume claim — and
/// nothing of either labelled in kubeflex-system. (The fake API models no namespace
/// termination: with it, only the last check runs.)
pub async fn nothing_left(client: &kube::Client, fake_api: bool) -> anyhow::Result<()> {
    if !fake_api {
        for name in [DEDICATED, HIGHLY_AVAILABLE, BACKED_UP] {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            let namespace = format!("{name}-system");
            eventually(&format!("namespace {namespace} gone"), || {
                let namespaces = namespaces.clone();
                let namespace = namespace.clone();
                async move { Ok(namespaces.get_opt(&namespace).await?.is_none()) }
            })
            .await?;
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
            anyhow::ensure!(
                claims.list(&ListParams::default()).await?.items.is_empty(),
                "a volume claim is left in {namespace}"
            );
        }
    }
    for (api_version, kind) in [
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ] {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            group, version, kind,
        ));
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "kubeflex-system", &resource);
        for name in [DEDICATED, HIGHLY_AVAILABLE, BACKED_UP] {
            let selector = format!("{CONTROL_PLANE_LABEL}={name}");
            let left = api
                .list(&ListParams::default().labels(&selector))
                .await?
                .items;
            anyhow::ensure!(
                left.is_empty(),
                "{kind}s of {name} left in kubeflex-system: {:?}",
                left.iter()
                    .map(|o| o.metadata.name.clone())
                    .collect::<Vec<_>>()
            );
        }
    }
    eprintln!(
        "ControlPlanes {DEDICATED}, {HIGHLY_AVAILABLE} and {BACKED_UP}: deleted, nothing left \
         behind (the backup claim stays: it is the system's)"
    );
    Ok(())
}
