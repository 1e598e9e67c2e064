//! How control planes are reached from outside the hosting cluster: the `exposure` setting and
//! the settings of each exposure (`gateway.*`, `loadBalancer.*`), with their checks. Whatever
//! the exposure, a control plane is reached at `<cp>.<domain>` on `externalPort`, so its
//! certificates and kubeconfigs do not depend on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::{Invalid, is_cidr, is_dns_label, is_dns_subdomain, is_qualified_name};
use super::{SYSTEM_NAMESPACE, ServiceType, Settings};

/// What exposes a control plane's API outside the hosting cluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Exposure {
    /// An Ingress with TLS passthrough (ingress-nginx's annotation).
    Ingress,
    /// An OpenShift Route with TLS passthrough.
    Route,
    /// A Gateway API TLSRoute (TLS passthrough by SNI) attached to a Gateway.
    Gateway,
    /// The API Service itself, as type LoadBalancer.
    LoadBalancer,
}

impl Exposure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Route => "route",
            Self::Gateway => "gateway",
            Self::LoadBalancer => "loadBalancer",
        }
    }
}

impl std::fmt::Display for Exposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Gateway that TLSRoutes attach to (exposure `gateway`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewaySettings {
    pub name: String,
    pub namespace: String,
    /// The listener routes attach to; empty: any listener that allows them.
    pub section_name: String,
    /// `kflex render --system` renders the Gateway itself.
    pub create: bool,
    /// The GatewayClass of the Gateway kflex renders (required with `create`).
    pub class_name: String,
}

/// The API Service as a load balancer (exposure `loadBalancer`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSettings {
    /// `spec.loadBalancerClass`; empty: the cluster's default load balancer.
    pub class: String,
    /// `spec.loadBalancerSourceRanges`: the client networks allowed; empty: any.
    pub source_ranges: Vec<String>,
    /// Annotations for the cloud's load balancer (type, scheme, ...).
    pub annotations: BTreeMap<String, String>,
    /// Publish the load balancer's address as the server of the off-cluster kubeconfig (for
    /// clusters without external-dns), keeping `<cp>.<domain>` as the name the certificate is
    /// checked against.
    pub publish_address: bool,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            name: "kubeflex".to_owned(),
            namespace: SYSTEM_NAMESPACE.to_owned(),
            section_name: String::new(),
            create: false,
            class_name: String::new(),
        }
    }
}

/// The annotation external-dns publishes a Service's host from.
pub const EXTERNAL_DNS_HOSTNAME: &str = "external-dns.alpha.kubernetes.io/hostname";

/// The label kflex puts on every control plane's namespace `<cp>-system` (value `<cp>`) under
/// exposure `gateway`: kflex's Gateway accepts routes from these namespaces only. Hooks may not
/// set it and the controller's admission policy lets it set it only on `<cp>-system`.
pub const CONTROL_PLANE_NAMESPACE_LABEL: &str = "kflex.kubestellar.org/control-plane-namespace";

/// Annotation prefixes of tools kflex's output speaks to: a load-balancer annotation must not
/// change what they do with the Service.
const RESERVED_ANNOTATION_PREFIXES: [&str; 5] = [
    "kflex.kubestellar.org/",
    "applyset.kubernetes.io/",
    "argocd.argoproj.io/",
    "kustomize.toolkit.fluxcd.io/",
    "kubectl.kubernetes.io/",
];

/// The exposure checks, in the order a user would fix them.
pub(super) fn check(settings: &Settings) -> Result<(), Invalid> {
    let fail = |key: &str, reason: String| Err((key.to_owned(), reason));
    let exposure = settings.exposure();
    if exposure == Exposure::Route && !settings.is_open_shift {
        return fail(
            "exposure",
            "route needs isOpenShift: true (Routes are OpenShift's); use ingress, gateway or \
             loadBalancer elsewhere"
                .to_owned(),
        );
    }
    if exposure == Exposure::LoadBalancer
        && settings.api_server_service_type != ServiceType::ClusterIP
    {
        return fail(
            "apiServerServiceType",
            "with exposure loadBalancer the API Service is of type LoadBalancer (which has node \
             ports too); leave apiServerServiceType at ClusterIP"
                .to_owned(),
        );
    }
    let gateway = &settings.gateway;
    if !is_dns_subdomain(&gateway.name) {
        return fail(
            "gateway.name",
            format!("{:?} is not a DNS name (a Gateway's name)", gateway.name),
        );
    }
    if !is_dns_label(&gateway.namespace) {
        return fail(
            "gateway.namespace",
            format!("{:?} is not a namespace name", gateway.namespace),
        );
    }
    if !gateway.section_name.is_empty() && !is_dns_subdomain(&gateway.section_name) {
        return fail(
            "gateway.sectionName",
            format!(
                "{:?} is not a listener name (lower-case letters, digits, '-' and '.')",
                gateway.section_name
            ),
        );
    }
    if !gateway.class_name.is_empty() && !is_dns_subdomain(&gateway.class_name) {
        return fail(
            "gateway.className",
            format!(
                "{:?} is not a DNS name (a GatewayClass's name)",
                gateway.class_name
            ),
        );
    }
    if gateway.create && gateway.class_name.is_empty() {
        return fail(
            "gateway.create",
            "needs gateway.className, the GatewayClass of the Gateway kflex renders \
             (`kubectl get gatewayclasses` lists them)"
                .to_owned(),
        );
    }
    if gateway.create && gateway.namespace != SYSTEM_NAMESPACE {
        return fail(
            "gateway.namespace",
            format!(
                "kflex renders its Gateway (gateway.create: true) in {SYSTEM_NAMESPACE} only; a \
                 Gateway in {:?} is yours to create (leave gateway.create false)",
                gateway.namespace
            ),
        );
    }
    let load_balancer = &settings.load_balancer;
    if !load_balancer.class.is_empty() && !is_qualified_name(&load_balancer.class) {
        return fail(
            "loadBalancer.class",
            format!(
                "{:?} is not a load-balancer class like example.com/internal-vip",
                load_balancer.class
            ),
        );
    }
    for range in &load_balancer.source_ranges {
        if let Some(reason) = source_range_problem(range) {
            return fail("loadBalancer.sourceRanges", reason);
        }
    }
    for key in load_balancer.annotations.keys() {
        if !is_qualified_name(key) {
            return fail(
                "loadBalancer.annotations",
                format!("{key:?} is not an annotation key like example.com/name"),
            );
        }
        if key == EXTERNAL_DNS_HOSTNAME
            || RESERVED_ANNOTATION_PREFIXES
                .iter()
                .any(|prefix| key.starts_with(prefix))
        {
            return fail(
                "loadBalancer.annotations",
                format!(
                    "{key} is set by kflex or read by the tools its output is for; it cannot be \
                     given here"
                ),
            );
        }
    }
    Ok(())
}

/// Why `range` is not a network as `spec.loadBalancerSourceRanges` takes it: `address/prefix`
/// with no bits set past the prefix (the API server warns about those, and a reviewer would
/// read `10.0.0.1/8` as one address).
fn source_range_problem(range: &str) -> Option<String> {
    if !is_cidr(range) {
        return Some(format!("{range:?} is not a network like 203.0.113.0/24"));
    }
    let (address, prefix) = range.split_once('/')?;
    let prefix: u32 = prefix.parse().ok()?;
    let (canonical, bits) = match address.parse::<core::net::IpAddr>().ok()? {
        core::net::IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            (
                core::net::IpAddr::V4((u32::from(v4) & mask).into()),
                u32::from(v4) & !mask,
            )
        }
        core::net::IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            let host = u128::from(v6) & !mask;
            (
                core::net::IpAddr::V6((u128::from(v6) & mask).into()),
                u32::from(host != 0),
            )
        }
    };
    let written_canonically = canonical.to_string() == address;
    if bits != 0 || !written_canonically {
        return Some(format!(
            "{range:?} is not a network address; did you mean {canonical}/{prefix}?"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ranges_are_networks_written_as_networks() {
        for good in [
            "203.0.113.0/24",
            "0.0.0.0/0",
            "10.0.0.7/32",
            "2001:db8::/32",
            "::/0",
        ] {
            assert_eq!(source_range_problem(good), None, "{good}");
        }
        for (bad, hint) in [
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
            ("2001:DB8::/32", "did you mean 2001:db8::/32?"),
            ("203.0.113.0", "is not a network like"),
            ("example.com/24", "is not a network like"),
        ] {
            let reason = source_range_problem(bad).unwrap_or_default();
            assert!(reason.contains(hint), "{bad}: {reason}");
        }
    }

    #[test]
    fn the_default_exposure_follows_openshift() {
        let mut settings = Settings::default();
        assert_eq!(settings.exposure(), Exposure::Ingress);
        settings.is_open_shift = true;
        assert_eq!(settings.exposure(), Exposure::Route);
        settings.exposure = Some(Exposure::Gateway);
        assert_eq!(settings.exposure(), Exposure::Gateway);
        check(&settings).unwrap();
    }
}
