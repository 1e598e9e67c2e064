//! Whether a control plane is reachable the way its exposure says, for its Ready condition:
//! with exposure gateway its TLSRoute is accepted by its Gateway; with exposure loadBalancer its
//! API Service has an address (and, with `loadBalancer.publishAddress`, the off-cluster
//! kubeconfig names it). Ingresses and Routes report nothing reliable and are not checked. The
//! facts are read from the rendered objects, so this knows no type's names; the decisions are
//! pure functions of the live objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kflex_core::manifest::Manifest;
use kflex_core::render::KubeconfigSecret;
use kflex_core::render::metadata::HOOK_ANNOTATION;
use kflex_core::settings::Settings;
use kube::Api;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::readiness::ReadinessError;
use crate::bootstrap::{address, kubeconfig};

const GATEWAY_API: &str = "gateway.networking.k8s.io";

/// Whether the hosting cluster serves TLSRoutes in the version kflex renders (its CRD is there
/// and serves v1). Any error reading it counts as no.
pub async fn tls_routes_served(client: &kube::Client) -> bool {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    match crds.get_opt("tlsroutes.gateway.networking.k8s.io").await {
        Ok(Some(crd)) => serves_v1(&crd),
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the TLSRoute CustomResourceDefinition; TLSRoutes are not watched");
            false
        }
    }
}

/// Whether `crd` serves version v1.
pub fn serves_v1(crd: &CustomResourceDefinition) -> bool {
    crd.spec
        .versions
        .iter()
        .any(|version| version.name == "v1" && version.served)
}

/// What keeps the exposure of the control plane whose objects are `manifests` (in `namespace`)
/// from working, if anything; `kubeconfig` is its kubeconfig Secret.
pub async fn problem(
    client: &kube::Client,
    settings: &Settings,
    namespace: &str,
    manifests: &[Manifest],
    kubeconfig: &KubeconfigSecret,
) -> Result<Option<String>, ReadinessError> {
    let own = |group: &'static str, kind: &'static str| {
        manifests.iter().filter(move |m| {
            m.group() == group
                && m.kind() == kind
                && m.annotation(HOOK_ANNOTATION).is_none()
                && m.namespace() == Some(namespace)
        })
    };
    for route in own(GATEWAY_API, "TLSRoute") {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(GATEWAY_API, "v1", "TLSRoute"));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let live = api
            .get_opt(route.name())
            .await
            .map_err(|err| ReadinessError::read("TLSRoute", Some(namespace), route.name(), err))?;
        let Some(live) = live else {
            return Ok(Some(format!(
                "TLSRoute {namespace}/{} does not exist",
                route.name()
            )));
        };
        let parents = route.object()["spec"]["parentRefs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let live = serde_json::to_value(&live).map_err(|err| {
            ReadinessError::read(
                "TLSRoute",
                Some(namespace),
                route.name(),
                kube::Error::SerdeError(err),
            )
        })?;
        for parent in &parents {
            if let Some(problem) = route_problem(&live, parent) {
                return Ok(Some(problem));
            }
        }
    }
    let load_balancers =
        own("", "Service").filter(|m| m.object()["spec"]["type"] == "LoadBalancer");
    for service in load_balancers {
        let api: Api<Service> = Api::namespaced(client.clone(), namespace);
        let live = api
            .get_opt(service.name())
            .await
            .map_err(|err| ReadinessError::read("Service", Some(namespace), service.name(), err))?;
        let Some(found) = live.as_ref().and_then(address::address_of) else {
            return Ok(Some(format!(
                "Service {namespace}/{} has no load-balancer address yet (is there a \
                 load-balancer implementation for it?)",
                service.name()
            )));
        };
        if !settings.load_balancer.publish_address || kubeconfig.key.is_empty() {
            continue;
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = secrets
            .get_opt(kubeconfig.name)
            .await
            .map_err(|err| ReadinessError::read("Secret", Some(namespace), kubeconfig.name, err))?;
        let data = secret.and_then(|s| s.data).unwrap_or_default();
        let data: BTreeMap<String, Vec<u8>> = data.into_iter().map(|(k, v)| (k, v.0)).collect();
        if !names_address(data.get(kubeconfig.key).map(Vec::as_slice), &found) {
            return Ok(Some(format!(
                "the off-cluster kubeconfig (Secret {namespace}/{} key {}) does not name the \
                 load balancer's address {found} yet",
                kubeconfig.name, kubeconfig.key
            )));
        }
    }
    Ok(None)
}

/// Why `route` (the live TLSRoute) is not yet accepted by its parent `parent` (a `parentRefs`
/// entry as rendered), if it is not: no status from the parent's implementation, a status for
/// an older generation, `Accepted` not True (with the parent's reason and message), or
/// `ResolvedRefs` False (the backend cannot be used).
pub fn route_problem(route: &Value, parent: &Value) -> Option<String> {
    let route_namespace = route["metadata"]["namespace"].as_str().unwrap_or_default();
    let route_name = route["metadata"]["name"].as_str().unwrap_or_default();
    let text =
        |value: &Value, field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
    let parent_name = text(parent, "name").unwrap_or_default();
    let parent_namespace = text(parent, "namespace").unwrap_or_else(|| route_namespace.to_owned());
    let section = text(parent, "sectionName");
    let gateway = format!("Gateway {parent_namespace}/{parent_name}");
    let what = format!("TLSRoute {route_namespace}/{route_name}");
    let status = route["status"]["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|status| {
            let reference = &status["parentRef"];
            text(reference, "name").as_deref() == Some(parent_name.as_str())
                && text(reference, "namespace").unwrap_or_else(|| route_namespace.to_owned())
                    == parent_namespace
                && (section.is_none() || text(reference, "sectionName") == section)
        });
    let Some(status) = status else {
        return Some(format!(
            "{what} is not accepted by {gateway}: no Gateway API implementation has reported on \
             it yet (does the Gateway exist, with a controller for its GatewayClass?)"
        ));
    };
    let generation = route["metadata"]["generation"].as_i64();
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let condition = |type_: &str| conditions.iter().find(|c| c["type"] == type_);
    let said = |c: &Value| {
        let reason = text(c, "reason").unwrap_or_default();
        match text(c, "message").filter(|m| !m.is_empty()) {
            Some(message) => format!("{reason}: {message}"),
            None => reason,
        }
    };
    match condition("Accepted") {
        None => {
            return Some(format!("{what} is not accepted by {gateway} yet"));
        }
        Some(accepted) => {
            let observed = accepted["observedGeneration"].as_i64();
            if let (Some(observed), Some(generation)) = (observed, generation)
                && observed < generation
            {
                return Some(format!(
                    "{what} is not accepted by {gateway} yet: it has seen generation {observed} \
                     of the route, not {generation}"
                ));
            }
            if accepted["status"] != "True" {
                return Some(format!(
                    "{what} is not accepted by {gateway}: {}",
                    said(accepted)
                ));
            }
        }
    }
    if let Some(resolved) = condition("ResolvedRefs")
        && resolved["status"] == "False"
    {
        return Some(format!(
            "{what} is accepted by {gateway}, but its backend is not: {}",
            said(resolved)
        ));
    }
    None
}

/// Whether the kubeconfig `bytes` names `address` as its server's host.
pub fn names_address(bytes: Option<&[u8]>, address: &str) -> bool {
    let Some(parsed) = bytes.and_then(|bytes| kubeconfig::parse(bytes).ok()) else {
        return false;
    };
    let Ok(current) = kubeconfig::current(&parsed) else {
        return false;
    };
    let Some(server) = current.server() else {
        return false;
    };
    let host = server
        .split_once("://")
        .map_or(server, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    host.trim_start_matches('[').trim_end_matches(']') == address
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn route(generation: i64, parents: Value) -> Value {
        json!({"metadata": {"name": "cp1", "namespace": "cp1-system", "generation": generation},
               "status": {"parents": parents}})
    }

    fn parent_status(conditions: Value) -> Value {
        json!([{"parentRef": {"name": "kubeflex", "namespace": "kubeflex-system"},
                "controllerName": "example.com/gateway", "conditions": conditions}])
    }

    fn parent() -> Value {
        json!({"group": GATEWAY_API, "kind": "Gateway", "name": "kubeflex", "namespace": "kubeflex-system"})
    }

    #[test]
    fn a_route_is_ready_once_its_gateway_accepted_its_generation() {
        let accepted = parent_status(json!([
            {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 2},
            {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs"}
        ]));
        assert_eq!(route_problem(&route(2, accepted.clone()), &parent()), None);
        let stale = route_problem(&route(3, accepted), &parent()).unwrap_or_default();
        assert!(
            stale.contains("seen generation 2 of the route, not 3"),
            "{stale}"
        );
    }

    #[test]
    fn why_a_route_is_not_accepted_is_the_gateway_s_message() {
        let refused = parent_status(json!([{"type": "Accepted", "status": "False",
            "reason": "NotAllowedByListeners",
            "message": "no listener admits routes from namespace cp1-system"}]));
        assert_eq!(
            route_problem(&route(1, refused), &parent()).as_deref(),
            Some(
                "TLSRoute cp1-system/cp1 is not accepted by Gateway kubeflex-system/kubeflex: \
                 NotAllowedByListeners: no listener admits routes from namespace cp1-system"
            )
        );
        let unresolved = parent_status(json!([
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "message": "no Service cp1"}
        ]));
        let problem = route_problem(&route(1, unresolved), &parent()).unwrap_or_default();
        assert!(
            problem.ends_with("its backend is not: BackendNotFound: no Service cp1"),
            "{problem}"
        );
        let silent = route_problem(&route(1, json!([])), &parent()).unwrap_or_default();
        assert!(
            silent.contains("no Gateway API implementation has reported"),
            "{silent}"
        );
        // Another Gateway's acceptance is not this one's.
        let elsewhere = json!([{"parentRef": {"name": "other", "namespace": "kubeflex-system"},
            "conditions": [{"type": "Accepted", "status": "True"}]}]);
        assert!(route_problem(&route(1, elsewhere), &parent()).is_some());
    }

    #[test]
    fn a_named_listener_must_be_the_one_that_accepted() {
        let mut with_section = parent();
        with_section["sectionName"] = json!("tls");
        let other_listener = json!([{"parentRef": {"name": "kubeflex", "namespace": "kubeflex-system", "sectionName": "https"},
            "conditions": [{"type": "Accepted", "status": "True"}]}]);
        assert!(route_problem(&route(1, other_listener), &with_section).is_some());
        let that_listener = json!([{"parentRef": {"name": "kubeflex", "namespace": "kubeflex-system", "sectionName": "tls"},
            "conditions": [{"type": "Accepted", "status": "True"}]}]);
        assert_eq!(route_problem(&route(1, that_listener), &with_section), None);
    }

    #[test]
    fn the_published_kubeconfig_names_the_address() {
        let config = |server: &str| {
            let built = kubeconfig::single(
                kubeconfig::cluster("c", server, "CA"),
                "u",
                kubeconfig::Credentials::Token("t"),
                "c",
                None,
            );
            kubeconfig::to_yaml(&built).unwrap().into_bytes()
        };
        assert!(names_address(
            Some(&config("https://203.0.113.7:9443")),
            "203.0.113.7"
        ));
        assert!(names_address(
            Some(&config("https://[2001:db8::7]:443")),
            "2001:db8::7"
        ));
        assert!(!names_address(
            Some(&config("https://cp1.example.com:9443")),
            "203.0.113.7"
        ));
        assert!(!names_address(None, "203.0.113.7"));
        assert!(!names_address(Some(b"not: [a kubeconfig"), "203.0.113.7"));
    }
}
