//! Install order: namespaces, CRDs, RBAC, policy, config, services, workloads, jobs, exposure,
//! then anything else (custom resources, whose CRDs came first).

use super::Manifest;

/// The install rank of a kind; lower ranks are applied first.
fn install_rank(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        ("scheduling.k8s.io", "PriorityClass") => 2,
        ("", "ServiceAccount") => 3,
        ("rbac.authorization.k8s.io", "ClusterRole") => 4,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => 5,
        ("rbac.authorization.k8s.io", "Role") => 6,
        ("rbac.authorization.k8s.io", "RoleBinding") => 7,
        // Admission policies have no backend to wait for: in force before workloads start.
        ("networking.k8s.io", "NetworkPolicy")
        | ("", "ResourceQuota")
        | ("", "LimitRange")
        | ("policy", "PodDisruptionBudget")
        | ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy")
        | ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding")
        | ("admissionregistration.k8s.io", "MutatingAdmissionPolicy")
        | ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding") => 8,
        ("", "Secret") => 9,
        ("", "ConfigMap") => 10,
        ("storage.k8s.io", "StorageClass") | ("", "PersistentVolume") => 11,
        ("", "PersistentVolumeClaim") => 12,
        ("", "Service") => 13,
        ("apps", "DaemonSet")
        | ("", "Pod")
        | ("", "ReplicationController")
        | ("apps", "ReplicaSet")
        | ("apps", "Deployment")
        | ("apps", "StatefulSet")
        | ("autoscaling", "HorizontalPodAutoscaler") => 14,
        ("batch", "Job") | ("batch", "CronJob") => 15,
        ("networking.k8s.io", "IngressClass") => 16,
        ("networking.k8s.io", "Ingress") | ("route.openshift.io", "Route") => 17,
        // Webhooks and API services call a Service: after the workloads behind it.
        ("apiregistration.k8s.io", "APIService") | ("admissionregistration.k8s.io", _) => 18,
        _ => 19,
    }
}

/// Sorts into install order; ties break by kind, group, namespace and name, so the order never
/// depends on template file names or hook order.
pub fn sort_for_install(manifests: &mut [Manifest]) {
    manifests.sort_by(|a, b| {
        let rank = |m: &Manifest| install_rank(m.group(), m.kind());
        rank(a)
            .cmp(&rank(b))
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
