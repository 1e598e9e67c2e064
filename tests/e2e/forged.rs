//! Forged ApplySet annotations on a ControlPlane, on a real cluster: whoever may write a
//! ControlPlane writes its `applyset.kubernetes.io/*` and `kflex.kubestellar.org/secrets`
//! annotations. They name a sacrificial Secret in another control plane's namespace and one in
//! kubeflex-system, and a ConfigMap in `default` carries the forger's ApplySet label. The Secrets
//! are labelled for that other control plane, as kflex labels what it writes, so the admission
//! policy would let the controller delete them: only the controller's own rules keep them.
//! Pruning (a live control plane) and deletion cleanup must leave all three alone, and say so
//! with a PruneRefused Event.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kflex::cluster::ownership::{
    ADDITIONAL_NAMESPACES, CONTAINS_GROUP_KINDS, PART_OF, SECRETS, applyset_id,
};
use kflex::controller::reconcile::PAUSED;
use kflex_core::api::ControlPlane;
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use super::{FIELD_MANAGER, eventually};

const SACRIFICE: &str = "kflex-e2e-sacrificial";

fn forged_config_map(forger: &str) -> String {
    format!("kflex-e2e-forged-{forger}")
}

/// The sacrificial Secrets (in `<victim>-system` and kubeflex-system), and a ConfigMap in
/// `default` labelled as a member of `forger`'s ApplySet.
pub async fn plant(client: &kube::Client, victim: &str, forger: &str) -> anyhow::Result<()> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for namespace in [format!("{victim}-system"), "kubeflex-system".to_owned()] {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": SACRIFICE, "namespace": namespace,
                                         "labels": {CONTROL_PLANE_LABEL: victim}},
                            "stringData": {"key": "must survive"}});
        secrets
            .patch(SACRIFICE, &params, &Patch::Apply(&secret))
            .await
            .with_context(|| format!("creating Secret {namespace}/{SACRIFICE}"))?;
    }
    let name = forged_config_map(forger);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": name, "namespace": "default", "labels": {
                                PART_OF: applyset_id(forger), CONTROL_PLANE_LABEL: forger}}});
    config_maps
        .patch(&name, &params, &Patch::Apply(&config_map))
        .await
        .with_context(|| format!("creating ConfigMap default/{name}"))?;
    Ok(())
}

/// Forges `forger`'s annotations to name what [`plant`] made (and pauses it first, when asked,
/// so that no reconcile rewrites them before it is deleted).
pub async fn forge(
    client: &kube::Client,
    forger: &str,
    victim: &str,
    pause: bool,
) -> anyhow::Result<()> {
    let api: Api<ControlPlane> = Api::all(client.clone());
    let live = api.get(forger).await?;
    let annotations = live.metadata.annotations.unwrap_or_default();
    let with = |key: &str, more: &str| match annotations.get(key).filter(|v| !v.is_empty()) {
        Some(value) => format!("{value},{more}"),
        None => more.to_owned(),
    };
    let mut forged = json!({
        CONTAINS_GROUP_KINDS: with(CONTAINS_GROUP_KINDS, "ConfigMap,Secret"),
        ADDITIONAL_NAMESPACES: with(ADDITIONAL_NAMESPACES, &format!("default,kubeflex-system,{victim}-system")),
        SECRETS: with(SECRETS, &format!("{victim}-system/{SACRIFICE},kubeflex-system/{SACRIFICE}")),
    });
    if pause {
        forged[PAUSED] = json!("true");
    }
    api.patch(
        forger,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": forged}})),
    )
    .await
    .with_context(|| format!("forging the annotations of ControlPlane {forger}"))?;
    Ok(())
}

/// Whether a PruneRefused Event on ControlPlane `forger` names `object`.
async fn refusal_reported(
    client: &kube::Client,
    forger: &str,
    object: &str,
) -> anyhow::Result<bool> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("events.k8s.io", "v1", "Event"));
    let events: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    Ok(events
        .list(&Default::default())
        .await?
        .items
        .iter()
        .any(|e| {
            e.data["reason"] == "PruneRefused"
                && e.data["regarding"]["name"] == forger
                && e.data["note"]
                    .as_str()
                    .is_some_and(|note| note.starts_with(object))
        }))
}

/// Waits until the controller has reported refusing each planted object for `forger`, then
/// checks that every one is still there.
pub async fn refused_and_kept(
    client: &kube::Client,
    forger: &str,
    victim: &str,
) -> anyhow::Result<()> {
    let planted = [
        format!("Secret {victim}-system/{SACRIFICE}"),
        format!("Secret kubeflex-system/{SACRIFICE}"),
        format!("ConfigMap default/{}", forged_config_map(forger)),
    ];
    for object in &planted {
        eventually(
            &format!("a PruneRefused Event on ControlPlane {forger} naming {object}"),
            || {
                let client = client.clone();
                let object = object.clone();
                async move { refusal_reported(&client, forger, &format!("{object} ")).await }
            },
        )
        .await?;
    }
    for namespace in [format!("{victim}-system"), "kubeflex-system".to_owned()] {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        anyhow::ensure!(
            secrets.get_opt(SACRIFICE).await?.is_some(),
            "Secret {namespace}/{SACRIFICE}, named by ControlPlane {forger}'s forged annotation, was deleted"
        );
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    anyhow::ensure!(
        config_maps
            .get_opt(&forged_config_map(forger))
            .await?
            .is_some(),
        "ConfigMap default/{}, labelled into ControlPlane {forger}'s ApplySet, was deleted",
        forged_config_map(forger)
    );
    Ok(())
}

/// Waits until `forger`'s annotations no longer name the sacrificial Secrets (the controller
/// rewrote them to its current members).
pub async fn annotations_rewritten(client: &kube::Client, forger: &str) -> anyhow::Result<()> {
    let api: Api<ControlPlane> = Api::all(client.clone());
    eventually(
        &format!("ControlPlane {forger}'s annotations rewritten"),
        || {
            let api = api.clone();
            async move {
                let live = api.get(forger).await?;
                let annotations = live.metadata.annotations.unwrap_or_default();
                Ok(!annotations
                    .get(SECRETS)
                    .is_some_and(|s| s.contains(SACRIFICE)))
            }
        },
    )
    .await
}

/// Removes what [`plant`] made (the Secret in `<victim>-system` goes with its namespace too).
pub async fn clean_up(client: &kube::Client, victim: &str, forgers: &[&str]) {
    for namespace in [format!("{victim}-system"), "kubeflex-system".to_owned()] {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let _ = secrets.delete(SACRIFICE, &DeleteParams::default()).await;
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for forger in forgers {
        let _ = config_maps
            .delete(&forged_config_map(forger), &DeleteParams::default())
            .await;
    }
}
