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
    /// Whether the built-in hooks (the k8s database in the shared PostgreSQL) apply.
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
