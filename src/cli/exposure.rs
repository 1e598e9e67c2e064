//! What the hosting cluster can expose control planes with: `init` says it (and refuses an
//! exposure the cluster cannot serve before installing anything); `create` refuses a control
//! plane whose exposure the cluster cannot serve before creating anything. Detection reads
//! only: CustomResourceDefinitions, GatewayClasses, IngressClasses, Gateways, and whether the
//! OpenShift Route API is served. The decisions are pure functions of what was found.

use anyhow::Context as _;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kflex_core::api::ControlPlaneType;
use kflex_core::settings::{Exposure, Settings};
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};

use crate::controller::exposure::serves_v1;

const GATEWAY_API: &str = "gateway.networking.k8s.io";
const TLS_ROUTE_CRD: &str = "tlsroutes.gateway.networking.k8s.io";

/// What a hosting cluster offers for exposing control planes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Support {
    /// The TLSRoute CRD serves `gateway.networking.k8s.io/v1` (Gateway API v1.5 or later).
    pub tls_route_v1: bool,
    pub gateway_classes: Vec<String>,
    pub ingress_classes: Vec<String>,
    /// OpenShift's Route API is served.
    pub routes: bool,
}

fn gateway_api(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(GATEWAY_API, "v1", kind))
}

/// Whether the TLSRoute CRD is there and serves v1.
async fn tls_route_v1(client: &kube::Client) -> anyhow::Result<bool> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    Ok(crds
        .get_opt(TLS_ROUTE_CRD)
        .await
        .with_context(|| format!("reading CustomResourceDefinition {TLS_ROUTE_CRD}"))?
        .as_ref()
        .is_some_and(serves_v1))
}

/// The names of a cluster-scoped list, or none when the kind is not served.
async fn names(api: Api<DynamicObject>, what: &str) -> anyhow::Result<Vec<String>> {
    match api.list_metadata(&ListParams::default()).await {
        Ok(list) => Ok(list
            .items
            .into_iter()
            .filter_map(|item| item.metadata.name)
            .collect()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(Vec::new()),
        Err(err) => Err(err).with_context(|| format!("listing {what}")),
    }
}

/// What the cluster of `client` offers.
pub(crate) async fn detect(client: &kube::Client) -> anyhow::Result<Support> {
    let tls_route_v1 = tls_route_v1(client).await?;
    let gateway_classes = if tls_route_v1 {
        names(
            Api::all_with(client.clone(), &gateway_api("GatewayClass")),
            "GatewayClasses",
        )
        .await?
    } else {
        Vec::new()
    };
    let ingress_classes: Api<IngressClass> = Api::all(client.clone());
    let ingress_classes = match ingress_classes.list_metadata(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter_map(|i| i.metadata.name)
            .collect(),
        Err(kube::Error::Api(status)) if status.is_not_found() => Vec::new(),
        Err(err) => return Err(err).context("listing IngressClasses"),
    };
    let routes = client
        .list_api_group_resources("route.openshift.io/v1")
        .await
        .is_ok();
    Ok(Support {
        tls_route_v1,
        gateway_classes,
        ingress_classes,
        routes,
    })
}

fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// One line per exposure: whether this cluster can serve it, and what is missing.
pub(crate) fn describe(support: &Support, settings: &Settings) -> Vec<String> {
    let ingress_class = &settings.ingress_class_name;
    let ingress = if support.ingress_classes.contains(ingress_class) {
        format!("yes: IngressClass {ingress_class} (ingressClassName) exists")
    } else {
        format!(
            "no IngressClass {ingress_class} (ingressClassName; IngressClasses: {})",
            listed(&support.ingress_classes)
        )
    };
    let route = if support.routes {
        "yes: OpenShift's Route API is served".to_owned()
    } else {
        "no: not OpenShift (no route.openshift.io API)".to_owned()
    };
    let gateway = match (support.tls_route_v1, support.gateway_classes.is_empty()) {
        (false, _) => "no: no TLSRoute v1 CustomResourceDefinition (install Gateway API v1.5 or \
                       later, Standard channel)"
            .to_owned(),
        (true, true) => "no: TLSRoute v1 is served but there is no GatewayClass (install a \
                         Gateway API implementation)"
            .to_owned(),
        (true, false) => format!(
            "yes: TLSRoute v1 and GatewayClasses {}",
            listed(&support.gateway_classes)
        ),
    };
    vec![
        format!("  ingress       {ingress}"),
        format!("  route         {route}"),
        format!("  gateway       {gateway}"),
        "  loadBalancer  needs a load-balancer implementation (a cloud's, MetalLB, ...), which \
         kflex cannot see"
            .to_owned(),
    ]
}

/// Why the cluster cannot serve the exposure `settings` choose, for `init` (before anything is
/// installed): Routes off OpenShift, Gateway API without TLSRoute v1 or any GatewayClass, a
/// Gateway to render whose GatewayClass is missing.
pub(crate) fn init_refusal(support: &Support, settings: &Settings) -> Option<String> {
    match settings.exposure() {
        Exposure::Route if !support.routes => Some(
            "exposure route needs OpenShift's Route API, which this cluster does not serve"
                .to_owned(),
        ),
        Exposure::Gateway if !support.tls_route_v1 => Some(
            "exposure gateway needs Gateway API's TLSRoute v1 (Gateway API v1.5 or later, \
             Standard channel), which this cluster does not serve: install its CRDs and a \
             Gateway API implementation first"
                .to_owned(),
        ),
        Exposure::Gateway if support.gateway_classes.is_empty() => Some(
            "exposure gateway needs a Gateway API implementation, and this cluster has no \
             GatewayClass: install one first"
                .to_owned(),
        ),
        Exposure::Gateway
            if settings.gateway.create
                && !support
                    .gateway_classes
                    .contains(&settings.gateway.class_name) =>
        {
            Some(format!(
                "gateway.className {:?} is not a GatewayClass of this cluster (GatewayClasses: {})",
                settings.gateway.class_name,
                listed(&support.gateway_classes)
            ))
        }
        _ => None,
    }
}

/// Whether Gateway `namespace/name` exists.
pub(crate) async fn gateway_exists(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<bool> {
    let gateways: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &gateway_api("Gateway"));
    match gateways.get_opt(name).await {
        Ok(found) => Ok(found.is_some()),
        // The kind is not served at all.
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
        Err(err) => Err(err).with_context(|| format!("reading Gateway {namespace}/{name}")),
    }
}

/// Refuses, for `create`, a control plane of `type_` whose exposure the hosting cluster cannot
/// serve: exposure gateway without TLSRoute v1 or without the Gateway routes attach to.
pub(crate) async fn check_for_create(
    client: &kube::Client,
    settings: &Settings,
    type_: ControlPlaneType,
) -> anyhow::Result<()> {
    let serves_api = matches!(
        type_,
        ControlPlaneType::K8s | ControlPlaneType::K3s | ControlPlaneType::Vcluster
    );
    if !serves_api || settings.exposure() != Exposure::Gateway {
        return Ok(());
    }
    if !tls_route_v1(client).await? {
        anyhow::bail!(
            "the hosting cluster's exposure is gateway (ConfigMap kubeflex-system/kubeflex-config), \
             but it does not serve Gateway API's TLSRoute v1: install Gateway API v1.5 or later \
             (Standard channel) and an implementation, or choose another exposure (`kflex init \
             --exposure`); nothing was created"
        );
    }
    let gateway = &settings.gateway;
    if !gateway_exists(client, &gateway.namespace, &gateway.name).await? {
        anyhow::bail!(
            "the hosting cluster's exposure is gateway, but Gateway {}/{} does not exist: create \
             it, or let kflex render it (gateway.create and gateway.className, then `kflex init` \
             or `kflex render --system | kubectl apply --server-side -f -`); nothing was created",
            gateway.namespace,
            gateway.name
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway_settings(create: bool) -> Settings {
        let mut settings = Settings {
            exposure: Some(Exposure::Gateway),
            ..Settings::default()
        };
        settings.gateway.create = create;
        settings.gateway.class_name = "eg".to_owned();
        settings
    }

    #[test]
    fn gateway_needs_tls_route_v1_and_a_gateway_class() {
        let none = Support::default();
        let crds_only = Support {
            tls_route_v1: true,
            ..Support::default()
        };
        let ready = Support {
            tls_route_v1: true,
            gateway_classes: vec!["cilium".into()],
            ..Support::default()
        };
        let why = init_refusal(&none, &gateway_settings(false)).unwrap_or_default();
        assert!(why.contains("TLSRoute v1"), "{why}");
        let why = init_refusal(&crds_only, &gateway_settings(false)).unwrap_or_default();
        assert!(why.contains("no GatewayClass"), "{why}");
        assert_eq!(init_refusal(&ready, &gateway_settings(false)), None);
        let why = init_refusal(&ready, &gateway_settings(true)).unwrap_or_default();
        assert_eq!(
            why,
            "gateway.className \"eg\" is not a GatewayClass of this cluster (GatewayClasses: cilium)"
        );
        // The default exposure needs nothing detected: an Ingress controller may come later.
        assert_eq!(init_refusal(&none, &Settings::default()), None);
        let lines = describe(&ready, &Settings::default()).join("\n");
        assert!(
            lines.contains("gateway       yes: TLSRoute v1 and GatewayClasses cilium"),
            "{lines}"
        );
        assert!(
            lines.contains("ingress       no IngressClass nginx"),
            "{lines}"
        );
    }
}
