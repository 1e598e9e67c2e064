//! Install order: namespaces, CRDs, RBAC, policy, config, services, workloads, jobs, exposure,
//! then anything else (custom resources, whose CRDs came first). The order is a list of install
//! classes; other orderings (Argo CD sync waves) are derived from the same classes.

use super::Manifest;

/// What an object is for, as far as the order of applying it goes. Classes are applied in the
/// order they are declared here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InstallClass {
    Namespace,
    CustomResourceDefinition,
    PriorityClass,
    ServiceAccount,
    ClusterRole,
    ClusterRoleBinding,
    Role,
    RoleBinding,
    /// NetworkPolicies, quotas, disruption budgets and admission policies. Admission policies
    /// have no backend to wait for: they are in force before workloads start.
    Policy,
    Secret,
    ConfigMap,
    /// StorageClasses and PersistentVolumes.
    Storage,
    /// PersistentVolumeClaims.
    Claim,
    Service,
    /// Pods and what runs them.
    Workload,
    /// Jobs and CronJobs.
    Job,
    /// IngressClasses and GatewayClasses.
    IngressClass,
    /// Ingresses, OpenShift Routes, and Gateway API's Gateways, ListenerSets and routes.
    Exposure,
    /// Webhooks and API services: they call a Service, so they come after the workloads behind
    /// it.
    Extension,
    /// Everything else: custom resources, whose CRDs came first.
    Other,
}

/// The install class of a kind.
pub fn install_class(group: &str, kind: &str) -> InstallClass {
    use InstallClass as C;
    match (group, kind) {
        ("", "Namespace") => C::Namespace,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => C::CustomResourceDefinition,
        ("scheduling.k8s.io", "PriorityClass") => C::PriorityClass,
        ("", "ServiceAccount") => C::ServiceAccount,
        ("rbac.authorization.k8s.io", "ClusterRole") => C::ClusterRole,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => C::ClusterRoleBinding,
        ("rbac.authorization.k8s.io", "Role") => C::Role,
        ("rbac.authorization.k8s.io", "RoleBinding") => C::RoleBinding,
        ("networking.k8s.io", "NetworkPolicy")
        | ("", "ResourceQuota")
        | ("", "LimitRange")
        | ("policy", "PodDisruptionBudget")
        | ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy")
        | ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding")
        | ("admissionregistration.k8s.io", "MutatingAdmissionPolicy")
        | ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding") => C::Policy,
        ("", "Secret") => C::Secret,
        ("", "ConfigMap") => C::ConfigMap,
        ("storage.k8s.io", "StorageClass") | ("", "PersistentVolume") => C::Storage,
        ("", "PersistentVolumeClaim") => C::Claim,
        ("", "Service") => C::Service,
        ("apps", "DaemonSet")
        | ("", "Pod")
        | ("", "ReplicationController")
        | ("apps", "ReplicaSet")
        | ("apps", "Deployment")
        | ("apps", "StatefulSet")
        | ("autoscaling", "HorizontalPodAutoscaler") => C::Workload,
        ("batch", "Job") | ("batch", "CronJob") => C::Job,
        ("networking.k8s.io", "IngressClass") | ("gateway.networking.k8s.io", "GatewayClass") => {
            C::IngressClass
        }
        ("networking.k8s.io", "Ingress")
        | ("route.openshift.io", "Route")
        | (
            "gateway.networking.k8s.io",
            "Gateway" | "ListenerSet" | "HTTPRoute" | "GRPCRoute" | "TLSRoute",
        ) => C::Exposure,
        ("apiregistration.k8s.io", "APIService") | ("admissionregistration.k8s.io", _) => {
            C::Extension
        }
        _ => C::Other,
    }
}

/// Sorts into install order; ties break by kind, group, namespace and name, so the order never
/// depends on template file names or hook order.
pub fn sort_for_install(manifests: &mut [Manifest]) {
    manifests.sort_by(|a, b| {
        let class = |m: &Manifest| install_class(m.group(), m.kind());
        class(a)
            .cmp(&class(b))
            .then_with(|| a.kind().cmp(b.kind()))
            .then_with(|| a.group().cmp(b.group()))
            .then_with(|| a.namespace().cmp(&b.namespace()))
            .then_with(|| a.name().cmp(b.name()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(api_version: &str, kind: &str, name: &str) -> Manifest {
        Manifest::new(
            "t",
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}),
        )
        .unwrap()
    }

    #[test]
    fn namespaces_come_first_and_exposure_last_before_custom_resources() {
        let mut list = vec![
            manifest("example.com/v1", "Widget", "w"),
            manifest("networking.k8s.io/v1", "Ingress", "i"),
            manifest("batch/v1", "Job", "j"),
            manifest("apps/v1", "Deployment", "d"),
            manifest("v1", "Service", "s"),
            manifest("v1", "ConfigMap", "c"),
            manifest("rbac.authorization.k8s.io/v1", "RoleBinding", "rb"),
            manifest("rbac.authorization.k8s.io/v1", "Role", "r"),
            manifest("v1", "ServiceAccount", "sa"),
            manifest("apiextensions.k8s.io/v1", "CustomResourceDefinition", "crd"),
            manifest("v1", "Namespace", "ns"),
        ];
        sort_for_install(&mut list);
        let names: Vec<&str> = list.iter().map(Manifest::name).collect();
        assert_eq!(
            names,
            ["ns", "crd", "sa", "r", "rb", "c", "s", "d", "j", "i", "w"]
        );
    }

    #[test]
    fn gateway_api_objects_are_exposure() {
        let route = manifest("gateway.networking.k8s.io/v1", "TLSRoute", "r");
        let gateway = manifest("gateway.networking.k8s.io/v1", "Gateway", "g");
        for m in [&route, &gateway] {
            assert_eq!(install_class(m.group(), m.kind()), InstallClass::Exposure);
        }
        let mut list = vec![
            route,
            manifest("apps/v1", "Deployment", "d"),
            manifest("gateway.networking.k8s.io/v1", "GatewayClass", "c"),
        ];
        sort_for_install(&mut list);
        let names: Vec<&str> = list.iter().map(Manifest::name).collect();
        assert_eq!(names, ["d", "c", "r"]);
    }

    #[test]
    fn ties_break_by_name_not_by_input_order() {
        let mut a = vec![
            manifest("v1", "ConfigMap", "b"),
            manifest("v1", "ConfigMap", "a"),
        ];
        let mut b = vec![
            manifest("v1", "ConfigMap", "a"),
            manifest("v1", "ConfigMap", "b"),
        ];
        sort_for_install(&mut a);
        sort_for_install(&mut b);
        assert_eq!(a, b);
    }
}
