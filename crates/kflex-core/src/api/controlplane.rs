//! The `ControlPlane` kind: one hosted control plane, cluster-scoped, named `<cp>`, whose
//! objects live in namespace `<cp>-system`.

use std::collections::BTreeMap;

use kube_derive::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a hosted control plane. Every field KubeFlex defines keeps its name, type and
/// default; `kubernetesVersion`, `replicas`, `backup` and `restoreFrom` are kflex's additive
/// fields.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tenancy.kflex.kubestellar.org",
    version = "v1alpha1",
    kind = "ControlPlane",
    plural = "controlplanes",
    singular = "controlplane",
    shortname = "cp",
    shortname = "cps",
    status = "ControlPlaneStatus",
    doc = "A hosted Kubernetes control plane; its objects live in namespace <name>-system.",
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type=='Synced')].status"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"TYPE","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    crates(kube_core = "::kube_core"),
    derive = "PartialEq"
)]
#[x_kube(
    crates(kube_core = "::kube_core"),
    validation = Rule::new("self.type != 'external' || has(self.bootstrapSecretRef)")
        .message("spec.bootstrapSecretRef is required for type external"),
    validation = Rule::new("self.type == 'k8s' || !has(self.replicas) || self.replicas == 1")
        .field_path(".replicas")
        .message(
            "only type k8s runs more than one API server (k3s keeps its data in an \
             embedded store of one server, vcluster as kflex renders it runs one, host and \
             external run none); remove it or set 1"
        ),
    validation = Rule::new("self.type == 'k8s' || !has(self.backend) || self.backend == 'shared'")
        .field_path(".backend")
        .message(
            "only type k8s keeps its data in PostgreSQL; dedicated is for k8s \
             control planes (the other types store their data themselves)"
        ),
    validation = Rule::new(
        "(has(self.backend) ? self.backend : 'shared') == \
         (has(oldSelf.backend) ? oldSelf.backend : 'shared')"
    )
    .field_path(".backend")
    .message(
        "spec.backend is immutable: changing it would leave the control plane's data behind in \
         the old database. To move a control plane, create a new one with the backend wanted, \
         move the tenant's objects to it, then delete the old one"
    ),
    validation = Rule::new("self.type == 'k8s' || !has(self.backup)")
        .field_path(".backup")
        .message(
            "backups are for type k8s, whose data kflex keeps in PostgreSQL; k3s and vcluster \
             keep theirs in an embedded store kflex does not back up yet, and host and external \
             have no datastore of kflex's"
        ),
    validation = Rule::new("self.type == 'k8s' || !has(self.restoreFrom)")
        .field_path(".restoreFrom")
        .message(
            "restoring is for type k8s, whose data kflex keeps in PostgreSQL (and only a k8s \
             control plane's backup can be restored)"
        ),
    validation = Rule::new(
        "has(self.restoreFrom) == has(oldSelf.restoreFrom) && \
         (!has(self.restoreFrom) || self.restoreFrom == oldSelf.restoreFrom)"
    )
    .field_path(".restoreFrom")
    .message(
        "spec.restoreFrom is immutable: a control plane's database is restored once, when the \
         control plane is created. To restore again, create a new control plane (or delete this \
         one and create it again) with spec.restoreFrom"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneSpec {
    /// The kind of control plane. Immutable: changing it would orphan every object of the old type.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.type is immutable"))]
    #[serde(rename = "type")]
    pub type_: ControlPlaneType,

    /// Where a k8s control plane keeps its data: `shared` (absent means shared, as for every
    /// KubeFlex object) gives it its own role and database in the shared PostgreSQL;
    /// `dedicated` a PostgreSQL server of its own in `<name>-system`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendDbType>,

    /// For type `external`: the Secret holding the kubeconfig of the cluster to adopt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_secret_ref: Option<BootstrapSecretReference>,

    /// For type `external`: lifetime of the token minted on the adopted cluster.
    #[serde(
        default = "default_token_expiration",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(
        default = "default_token_expiration",
        range(min = 600, max = 4_294_967_296_i64)
    )]
    pub token_expiration_seconds: Option<i64>,

    /// Deprecated: a single hook. Prefer `postCreateHooks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        regex(pattern = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub post_create_hook: Option<String>,

    /// Deprecated: variables for `postCreateHook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_create_hook_vars: Option<BTreeMap<String, String>>,

    /// Hooks to apply, in order; the first occurrence of a name wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub post_create_hooks: Option<Vec<PostCreateHookUse>>,

    /// Variables shared by every hook of this control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_vars: Option<BTreeMap<String, String>>,

    /// When true, Ready also requires every hook's objects to be ready.
    #[serde(default = "default_false", skip_serializing_if = "Option::is_none")]
    #[schemars(default = "default_false")]
    pub wait_for_post_create_hooks: Option<bool>,

    /// kflex: Kubernetes version of this control plane (e.g. `v1.34.3`; at least v1.33, the
    /// oldest release kflex supports); defaults to the `kubernetesVersion` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^v1\.(3[3-9]|[4-9][0-9]|[1-9][0-9]{2})\.(0|[1-9][0-9]{0,2})$"))]
    pub kubernetes_version: Option<String>,

    /// kflex: how many kube-apiserver replicas a k8s control plane runs (at least 1; the other
    /// types run one API server at most); defaults to the `k8s.replicas` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub replicas: Option<i32>,

    /// kflex: scheduled backups of a k8s control plane's database, by a CronJob in
    /// kubeflex-system, to a storage entry of the settings (`backup.storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,

    /// kflex: create this k8s control plane's database from a backup, before its API server
    /// first starts. Acts only on creation; immutable. A backup of a control plane of the same
    /// name, or of one an administrator allows (setting `backup.allowedRestores`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<RestoreFrom>,
}

/// Scheduled backups of a control plane's database.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// When to back up, as a cron schedule in UTC: five fields (minute hour day-of-month month
    /// day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly.
    #[schemars(
        length(min = 1, max = 100),
        regex(
            pattern = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$"
        )
    )]
    pub schedule: String,
    /// How many of this control plane's backups to keep in its storage (default 7).
    #[serde(default = "default_retention", skip_serializing_if = "Option::is_none")]
    #[schemars(default = "default_retention", range(min = 1, max = 1000))]
    pub retention: Option<i32>,
    /// The name of a storage entry of the settings (`backup.storage`); default the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub storage: Option<String>,
}

/// The backup a new control plane's database is created from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFrom {
    /// The control plane the backup was taken of (this control plane's own name, unless an
    /// administrator allows another in the setting `backup.allowedRestores`).
    #[schemars(
        length(min = 1, max = 56),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub control_plane: String,
    /// The backup's name, as `kflex backup list` shows it.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub backup: String,
    /// The storage entry of the settings (`backup.storage`) that holds it; default the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub storage: Option<String>,
}

fn default_retention() -> Option<i32> {
    Some(7)
}

fn default_token_expiration() -> Option<i64> {
    Some(31_536_000)
}

fn default_false() -> Option<bool> {
    Some(false)
}

/// The control-plane types. `ocm` stays in the enum so existing objects remain readable; the
/// renderer refuses it with a migration hint.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum ControlPlaneType {
    K8s,
    Ocm,
    Vcluster,
    Host,
    External,
    K3s,
}

impl ControlPlaneType {
    /// The value as written in `spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::K8s => "k8s",
            Self::Ocm => "ocm",
            Self::Vcluster => "vcluster",
            Self::Host => "host",
            Self::External => "external",
            Self::K3s => "k3s",
        }
    }
}

impl std::fmt::Display for ControlPlaneType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// KubeFlex's backend enum: where a k8s control plane keeps its data.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendDbType {
    Shared,
    Dedicated,
}

impl BackendDbType {
    /// The value as written in `spec.backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Dedicated => "dedicated",
        }
    }
}

/// Where the kubeconfig of an adopted cluster is stored.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSecretReference {
    /// A Secret name (DNS-1123 subdomain).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// A namespace name (DNS-1123 label).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,
    /// A Secret data key: letters, digits, `-`, `_`, `.`; not starting with `..`.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$")
    )]
    pub in_cluster_key: String,
}

/// One use of a PostCreateHook, with its own variables.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PostCreateHookUse {
    /// A PostCreateHook's name (empty: this use is ignored, as in KubeFlex).
    #[schemars(
        length(max = 253),
        regex(pattern = r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub hook_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars: Option<BTreeMap<String, String>>,
}

/// Observed state, as KubeFlex writes it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneStatus {
    pub conditions: Vec<ControlPlaneCondition>,
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_create_hooks: Option<BTreeMap<String, bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_create_hook_completed: Option<bool>,
}

/// A `Ready` or `Synced` condition.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[schemars(extend("format" = "date-time"))]
    pub last_update_time: String,
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    pub reason: String,
    pub message: String,
}

/// The kubeconfig Secret of a control plane: `key` for use outside the hosting cluster,
/// `inClusterKey` for use inside it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub key: String,
    pub in_cluster_key: String,
}
