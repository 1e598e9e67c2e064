//! Exposure gateway on a real cluster. Gateway API's Standard CRDs (v1.6.1, from
//! `../shared/crds/gateway-api-v1.6.1`, never copied into the repository) are installed when the
//! cluster lacks TLSRoute v1, and removed again at the end. The system manifests are applied
//! again with exposure gateway and kflex's own Gateway (of an existing GatewayClass, else of one
//! no implementation serves), so every control plane that serves an API switches live: the
//! controller applies its TLSRoute, labels its namespace and prunes its Ingress, and `kflex diff`
//! agrees. Whether a Gateway accepts the routes needs a Gateway API implementation, which a
//! disposable cluster rarely has: it is reported, not required. Then the default exposure comes
//! back, and the Ingresses with it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Namespace;
use kflex::cluster::resources::Resources;
use kflex_core::api::{ControlPlane, ControlPlaneType};
use kflex_core::render::{Renderer, TemplateSet};
use kflex_core::settings::{CONTROL_PLANE_NAMESPACE_LABEL, Exposure, Settings};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::{FIELD_MANAGER, eventually, install_system, kflex};

const GATEWAY_API: &str = "gateway.networking.k8s.io";
/// The GatewayClass of kflex's Gateway when the cluster has none (no implementation serves it).
const FALLBACK_CLASS: &str = "kflex-e2e";

/// Where the Gateway API CRDs are (outside the repository).
fn crd_dir() -> PathBuf {
    std::env::var_os("KFLEX_GATEWAY_API_CRDS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/crds/gateway-api-v1.6.1"),
        PathBuf::from,
    )
}

fn gateway_api(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(GATEWAY_API, "v1", kind))
}

fn crd_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
    ))
}

/// What this phase installed, for cleaning up.
#[derive(Debug, Default)]
pub struct Installed {
    /// The CRDs it applied (the cluster had no TLSRoute v1).
    pub crds: Vec<String>,
}

/// Applies the Gateway API CRDs unless the cluster serves TLSRoute v1; the ones applied.
async fn install_crds(client: &kube::Client, dir: &Path) -> anyhow::Result<Vec<String>> {
    let crds: Api<DynamicObject> = Api::all_with(client.clone(), &crd_resource());
    let served = crds
        .get_opt("tlsroutes.gateway.networking.k8s.io")
        .await?
        .is_some_and(|crd| {
            crd.data["spec"]["versions"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v["name"] == "v1" && v["served"] == true))
        });
    if served {
        eprintln!("the cluster serves TLSRoute v1 already: its Gateway API CRDs are used");
        return Ok(Vec::new());
    }
    let mut applied = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    files.sort_by_key(std::fs::DirEntry::path);
    for file in files {
        let path = file.path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("reading {}", path.display()))?;
        for crd in documents
            .into_iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
        {
            let name = crd["metadata"]["name"]
                .as_str()
                .context("a CRD without a name")?
                .to_owned();
            crds.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .with_context(|| format!("applying CustomResourceDefinition {name}"))?;
            applied.push(name);
        }
    }
    for name in &applied {
        eventually(&format!("CRD {name} established"), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await?;
                Ok(kflex::controller::readiness::ready(
                    "apiextensions.k8s.io",
                    "CustomResourceDefinition",
                    &crd.data,
                ))
            }
        })
        .await?;
    }
    eprintln!(
        "installed Gateway API's Standard CRDs: {}",
        applied.join(", ")
    );
    Ok(applied)
}

/// The API-serving control planes among `control_planes` (the ones a TLSRoute exposes).
fn exposed(control_planes: &[ControlPlane]) -> Vec<String> {
    control_planes
        .iter()
        .filter(|cp| {
            matches!(
                cp.spec.type_,
                ControlPlaneType::K8s | ControlPlaneType::K3s | ControlPlaneType::Vcluster
            )
        })
        .filter_map(|cp| cp.metadata.name.clone())
        .collect()
}

async fn get(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<DynamicObject>> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    Ok(api.get_opt(name).await?)
}

/// Switches every control plane to exposure gateway and back; what was installed, or `None`
/// when the CRDs are not there to install (the phase is skipped and says so).
pub async fn check(
    client: &kube::Client,
    resources: &Resources,
    control_planes: &[ControlPlane],
    kubeconfig: &str,
    defaults: &Renderer,
) -> anyhow::Result<Option<Installed>> {
    let dir = crd_dir();
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED exposure gateway: no Gateway API CRDs at {} (set KFLEX_GATEWAY_API_CRDS)",
            dir.display()
        );
        return Ok(None);
    }
    let installed = Installed {
        crds: install_crds(client, &dir).await?,
    };
    let classes: Api<DynamicObject> = Api::all_with(client.clone(), &gateway_api("GatewayClass"));
    let class = classes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .find_map(|class| class.metadata.name)
        .unwrap_or_else(|| FALLBACK_CLASS.to_owned());
    let mut settings = Settings {
        exposure: Some(Exposure::Gateway),
        ..Settings::default()
    };
    settings.gateway.create = true;
    settings.gateway.class_name = class.clone();
    let gateway = Renderer::new(settings, &TemplateSet::embedded())?;
    install_system(client, resources, &gateway).await?;
    eprintln!("exposure gateway: kflex's Gateway kubeflex-system/kubeflex, GatewayClass {class}");

    let routes = gateway_api("TLSRoute");
    let ingresses =
        ApiResource::from_gvk(&GroupVersionKind::gvk("networking.k8s.io", "v1", "Ingress"));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in exposed(control_planes) {
        let namespace = format!("{name}-system");
        eventually(
            &format!("{name}: TLSRoute applied, Ingress pruned, namespace labelled"),
            || {
                let (client, routes, ingresses) =
                    (client.clone(), routes.clone(), ingresses.clone());
                let (namespaces, name, namespace) =
                    (namespaces.clone(), name.clone(), namespace.clone());
                async move {
                    let route = get(&client, &routes, &namespace, &name).await?;
                    let ingress = get(&client, &ingresses, &namespace, &name).await?;
                    let labels = namespaces
                        .get(&namespace)
                        .await?
                        .metadata
                        .labels
                        .unwrap_or_default();
                    Ok(route.is_some_and(|r| {
                        r.data["spec"]["hostnames"][0] == format!("{name}.localtest.me").as_str()
                            && r.data["spec"]["parentRefs"][0]["name"] == "kubeflex"
                    }) && ingress.is_none()
                        && labels.get(CONTROL_PLANE_NAMESPACE_LABEL) == Some(&name))
                }
            },
        )
        .await?;
        let route = get(client, &routes, &namespace, &name)
            .await?
            .context("the TLSRoute")?;
        let accepted = route.data["status"]["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
            .find(|c| c["type"] == "Accepted");
        match accepted {
            Some(c) => eprintln!(
                "{name}: TLSRoute Accepted={} ({}: {})",
                c["status"].as_str().unwrap_or_default(),
                c["reason"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            ),
            None => eprintln!(
                "{name}: TLSRoute applied; no Gateway API implementation reported on it (reported, \
                 not required)"
            ),
        }
    }
    if let Some(name) = exposed(control_planes).first() {
        let diff = kflex(kubeconfig, &["diff", name]).await?;
        anyhow::ensure!(
            diff.status.code() == Some(0),
            "kflex diff {name} with exposure gateway (exit {:?}):\n{}{}",
            diff.status.code(),
            String::from_utf8_lossy(&diff.stdout),
            String::from_utf8_lossy(&diff.stderr)
        );
    }

    // Back to the default exposure: the Ingresses return, the routes and labels go.
    install_system(client, resources, defaults).await?;
    let gateways: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "kubeflex-system", &gateway_api("Gateway"));
    let _ = gateways.delete("kubeflex", &DeleteParams::default()).await;
    for name in exposed(control_planes) {
        let namespace = format!("{name}-system");
        eventually(&format!("{name}: back to an Ingress"), || {
            let (client, routes, ingresses) = (client.clone(), routes.clone(), ingresses.clone());
            let (namespaces, name, namespace) =
                (namespaces.clone(), name.clone(), namespace.clone());
            async move {
                let route = get(&client, &routes, &namespace, &name).await?;
                let ingress = get(&client, &ingresses, &namespace, &name).await?;
                let labels = namespaces
                    .get(&namespace)
                    .await?
                    .metadata
                    .labels
                    .unwrap_or_default();
                Ok(route.is_none()
                    && ingress.is_some()
                    && !labels.contains_key(CONTROL_PLANE_NAMESPACE_LABEL))
            }
        })
        .await?;
    }
    eprintln!(
        "exposure gateway: every control plane switched to a TLSRoute and back to an Ingress, live"
    );
    Ok(Some(installed))
}

/// Removes the CRDs this phase installed.
pub async fn clean_up(client: &kube::Client, installed: &Installed) {
    let crds: Api<DynamicObject> = Api::all_with(client.clone(), &crd_resource());
    for name in &installed.crds {
        let _ = crds.delete(name, &DeleteParams::default()).await;
    }
}
