//! Rendering a control plane the way the controller in the hosting cluster will: with that
//! cluster's configuration (ConfigMap kubeflex-system/kubeflex-config) and its PostCreateHooks,
//! and with the controller's ownership metadata. `create` uses it to refuse a control plane the
//! controller would refuse, before creating anything; `diff` compares its output with the live
//! objects.

use std::collections::HashSet;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kflex_core::api::{ControlPlane, PostCreateHook};
use kflex_core::manifest::{Manifest, ObjectKey};
use kflex_core::render::{HookCatalog, Renderer, TemplateSet};
use kflex_core::settings::{SYSTEM_NAMESPACE, Settings};
use kube::Api;

use crate::controller::config::{CONFIG_MAP, settings};
use crate::controller::desired;

/// The hosting cluster's settings; an error when its ConfigMap does not exist, as the
/// controller then renders nothing either.
pub async fn hosting_settings(client: &kube::Client) -> anyhow::Result<Settings> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let config = config_maps
        .get_opt(CONFIG_MAP)
        .await
        .with_context(|| format!("reading ConfigMap {SYSTEM_NAMESPACE}/{CONFIG_MAP}"))?;
    // A ConfigMap without data holds no setting: the defaults, as the controller reads it.
    let data = config.map(|config| config.data.unwrap_or_default());
    Ok(settings(SYSTEM_NAMESPACE, data.as_ref())?)
}

/// Every PostCreateHook of the hosting cluster.
pub async fn hosting_hooks(client: &kube::Client) -> anyhow::Result<Vec<PostCreateHook>> {
    let hooks: Api<PostCreateHook> = Api::all(client.clone());
    Ok(hooks
        .list(&Default::default())
        .await
        .map_err(|err| super::reach::on_kflex_api(err, "listing PostCreateHooks".to_owned()))?
        .items)
}

/// What the controller would apply for a control plane.
#[derive(Debug)]
pub struct AsApplied {
    /// The rendered set, with the controller's ownership metadata.
    pub manifests: Vec<Manifest>,
    /// The keys of the set and of its cleanup Jobs: what the controller may delete in the
    /// system namespace (see `cluster::trust`).
    pub rendered: HashSet<ObjectKey>,
}

/// What the controller would apply for `cp`: rendered, with its ownership metadata.
pub async fn render(client: &kube::Client, cp: &ControlPlane) -> anyhow::Result<AsApplied> {
    let settings = hosting_settings(client).await?;
    let hooks = hosting_hooks(client).await?;
    render_with(&settings, hooks, cp)
}

/// [`render`] with the configuration and hooks given (see `controller::desired`).
pub fn render_with(
    settings: &Settings,
    hooks: Vec<PostCreateHook>,
    cp: &ControlPlane,
) -> anyhow::Result<AsApplied> {
    let renderer = Renderer::new(settings.clone(), &TemplateSet::embedded())
        .context("compiling the templates")?;
    let catalog = HookCatalog::new(hooks).context("the hosting cluster's PostCreateHooks")?;
    let name = cp.metadata.name.as_deref().unwrap_or_default();
    let manifests = desired::manifests(&renderer, &catalog, cp, SYSTEM_NAMESPACE)
        .with_context(|| format!("ControlPlane {name} cannot be rendered"))?;
    let rendered = desired::deletable(&renderer, cp, &manifests)
        .with_context(|| format!("ControlPlane {name}'s cleanup Jobs cannot be rendered"))?;
    Ok(AsApplied {
        manifests,
        rendered,
    })
}
