//! The kflex API: `ControlPlane` and `PostCreateHook` in group `tenancy.kflex.kubestellar.org`,
//! wire-compatible with KubeFlex, plus the validation KubeFlex lacks.
//!
//! This module owns the Rust types, the CRDs generated from them and the checks a control plane
//! must pass before anything is rendered. It does no I/O.

pub mod conditions;
mod controlplane;
mod crd;
pub mod cron;
pub mod names;
mod postcreatehook;
mod validate;

pub use controlplane::{
    BackendDbType, BackupSpec, BootstrapSecretReference, ControlPlane, ControlPlaneCondition,
    ControlPlaneSpec, ControlPlaneStatus, ControlPlaneType, PostCreateHookUse, RestoreFrom,
    SecretReference,
};
pub use crd::{CrdError, crds};
pub use postcreatehook::{DefaultVar, PostCreateHook, PostCreateHookSpec, PostCreateHookStatus};

/// The API group of every kflex kind (KubeFlex's group, unchanged).
pub const GROUP: &str = "tenancy.kflex.kubestellar.org";
/// The only served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of ControlPlane and PostCreateHook objects.
pub const API_VERSION: &str = "tenancy.kflex.kubestellar.org/v1alpha1";
pub(crate) use validate::kubernetes_version_problem;
pub use validate::{
    MAX_BACKUP_RETENTION, MAX_CONTROL_PLANE_NAME_LEN, MAX_HOOK_USES, MAX_TOKEN_EXPIRATION_SECONDS,
    RESERVED_DATABASE_NAMES, RESERVED_DATABASE_PREFIX, RESERVED_NAMES, ValidationError,
    name_problem as control_plane_name_problem, validate_backup, validate_control_plane,
    validate_restore_source,
};
