//! What distinguishes the control-plane types in rendering: which templates, whether kflex's
//! built-in hooks apply, and what the tenant's own pods need from the namespace.

use super::SetError;
use super::pod_security::Level;
use crate::api::ControlPlaneType;

/// Templates every type renders (its namespace, and the exposure of its API server if any).
pub(super) const SHARED_TEMPLATES: &str = "controlplane";

/// How one type renders.
#[derive(Clone, Copy, Debug)]
pub(super) struct TypeProfile {
    /// The type's template directory.
    pub templates: &'static str,
    /// Whether the built-in hooks (the k8s database in the shared PostgreSQL) apply, for the
    /// shared backend.
    pub built_in_hooks: bool,
    /// The Pod Security level pods the control plane creates in its namespace at runtime need,
    /// and why — rendered into the namespace's exception annotation.
    pub tenant_pods: Option<(Level, &'static str)>,
}

/// The profile of `type_`; ocm is refused with its replacement.
pub(super) fn profile(type_: ControlPlaneType) -> Result<TypeProfile, SetError> {
    let plain = |templates| TypeProfile {
        templates,
        built_in_hooks: false,
        tenant_pods: None,
    };
    Ok(match type_ {
        ControlPlaneType::K8s => TypeProfile {
            built_in_hooks: true,
            ..plain("k8s")
        },
        ControlPlaneType::K3s => plain("k3s"),
        ControlPlaneType::Vcluster => TypeProfile {
            // Refusing privileged pods but not ordinary workloads: the tenant's pods are synced
            // into this namespace and would otherwise all have to meet restricted.
            tenant_pods: Some((
                Level::Baseline,
                "vCluster syncs the pods of the virtual cluster into this namespace; baseline \
                 admits ordinary workloads and refuses privileged ones",
            )),
            ..plain("vcluster")
        },
        ControlPlaneType::Host => plain("host"),
        ControlPlaneType::External => plain("external"),
        ControlPlaneType::Ocm => return Err(SetError::Ocm),
    })
}

/// What a type's control plane provides at runtime, for the controller's status and
/// readiness: where its kubeconfig ends up, and which workload serves its API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeFacts {
    /// The kubeconfig Secret in `<cp>-system` (`status.secretRef`).
    pub kubeconfig: KubeconfigSecret,
    /// The workload in `<cp>-system` that must be ready before the API can answer; `None` for
    /// the types that run nothing (host, external).
    pub workload: Option<Workload>,
    /// The Secrets in `<cp>-system` that the control plane's bootstrap programs or its own
    /// components create at runtime and that are never rendered: its keys and kubeconfigs.
    /// A hook must not render one, and pruning never deletes one.
    pub generated_secrets: &'static [&'static str],
}

/// A kubeconfig Secret: its name, the key for use from outside the hosting cluster (empty when
/// there is none, as for host) and the key for use from inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KubeconfigSecret {
    pub name: &'static str,
    pub key: &'static str,
    pub in_cluster_key: &'static str,
}

/// A workload by kind (`Deployment` or `StatefulSet`, group apps) and name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    pub kind: &'static str,
    pub name: &'static str,
}

/// The runtime facts of `type_` (KubeFlex's names); `None` for ocm, which kflex does not run.
pub fn facts(type_: ControlPlaneType) -> Option<TypeFacts> {
    let secret = |name, key, in_cluster_key| KubeconfigSecret {
        name,
        key,
        in_cluster_key,
    };
    let workload = |kind, name| Some(Workload { kind, name });
    Some(match type_ {
        ControlPlaneType::K8s => TypeFacts {
            kubeconfig: secret("admin-kubeconfig", "kubeconfig", "kubeconfig-incluster"),
            workload: workload("Deployment", "kube-apiserver"),
            // A dedicated PostgreSQL's superuser password and certificate too (reserved for
            // every k8s control plane: spec.backend is immutable, so a name never changes
            // meaning).
            generated_secrets: &[
                "k8s-certs",
                "admin-kubeconfig",
                "cm-kubeconfig",
                "kine-datastore",
                "postgres",
                "postgres-tls",
            ],
        },
        ControlPlaneType::K3s => TypeFacts {
            kubeconfig: secret("k3s-config", "config", "config-incluster"),
            workload: workload("StatefulSet", "k3s-server"),
            generated_secrets: &["k3s-config"],
        },
        ControlPlaneType::Vcluster => TypeFacts {
            kubeconfig: secret("vc-vcluster", "config", "config-incluster"),
            workload: workload("StatefulSet", "vcluster"),
            // vCluster's syncer writes its PKI and kubeconfig (reference/vcluster.md).
            generated_secrets: &["vc-vcluster", "vcluster-certs"],
        },
        // The hosting cluster's in-cluster URL does not work from outside it: no off-cluster key.
        ControlPlaneType::Host => TypeFacts {
            kubeconfig: secret("admin-kubeconfig", "", "kubeconfig-incluster"),
            workload: None,
            generated_secrets: &["admin-kubeconfig"],
        },
        // The adopted cluster's own URL works from anywhere.
        ControlPlaneType::External => TypeFacts {
            kubeconfig: secret(
                "admin-kubeconfig",
                "kubeconfig-incluster",
                "kubeconfig-incluster",
            ),
            workload: None,
            generated_secrets: &["admin-kubeconfig"],
        },
        ControlPlaneType::Ocm => return None,
    })
}
