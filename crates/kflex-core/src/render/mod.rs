//! The renderer: `render(control plane, hooks, settings, templates) -> manifests`.
//!
//! Pure by construction: it reads nothing but its arguments and always produces the same output
//! for the same input. It owns the order of work for one control plane — hooks, built-in hooks,
//! type templates, then placement, labels, Pod Security, config hashes, GitOps annotations and
//! install order — and the same for the one-time system manifests. Writing the result anywhere
//! is the caller's job.

pub mod backup;
mod canonical;
mod config_hash;
mod context;
mod control_plane;
mod evaluate;
mod filters;
mod finish;
pub mod gitops;
mod hook_policy;
mod hooks;
pub mod metadata;
mod parse_cache;
mod placeholders;
pub mod pod_security;
mod quoted;
mod scope;
mod system;
mod templates;
mod types;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use minijinja::Environment;

use crate::api::{ControlPlane, ControlPlaneType, PostCreateHook, ValidationError};
use crate::manifest::{Manifest, ObjectKey};
use crate::settings::{PostgresMode, Settings};
use context::SystemContext;
use scope::Scopes;

pub use hooks::{CatalogError, HOOK_BYTES_PER_CONTROL_PLANE, HookCatalog, HookError, InvalidUse};
pub use templates::{TemplateError, TemplateSet};
pub use types::{KubeconfigSecret, TypeFacts, Workload, facts};

/// Built-in hooks of type k8s with the shared backend: the per-control-plane database in the
/// shared PostgreSQL kflex runs (`postgres.mode: inCluster`), or in an existing server
/// (`external`).
const K8S_BUILT_IN_HOOKS: &str = "postgres/hooks";
const K8S_BUILT_IN_HOOKS_EXTERNAL: &str = "postgres/external/hooks";
/// What deleting such a control plane runs first: dropping its database.
const K8S_CLEANUP_HOOKS: &str = "postgres/cleanup";
const K8S_CLEANUP_HOOKS_EXTERNAL: &str = "postgres/external/cleanup";

/// The objects rendered for one control plane, or for the system.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The control plane's name; `None` for the system manifests.
    pub control_plane: Option<String>,
    /// In install order.
    pub manifests: Vec<Manifest>,
    /// Things a reviewer should know that are not errors (ignored duplicate hooks, relaxed
    /// Pod Security); for stderr, never stdout.
    pub warnings: Vec<String>,
}

impl Rendered {
    /// The keys of the objects another set could also render: everything outside the control
    /// plane's own namespace, which only it can use (all of them for the system manifests).
    pub fn shareable_keys(&self) -> Vec<ObjectKey> {
        let own = self
            .control_plane
            .as_ref()
            .map(|name| format!("{name}-system"));
        self.manifests
            .iter()
            .filter(|m| own.is_none() || m.namespace() != own.as_deref())
            .map(Manifest::key)
            .collect()
    }
}

/// Rendering failed; nothing should be output.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("failed to load the templates")]
    Templates(#[source] TemplateError),
    #[error("failed to load built-in hook {path}")]
    BuiltInHook {
        path: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("built-in hook {path} has no metadata.name")]
    BuiltInHookName { path: String },
    #[error("failed to render ControlPlane {name:?}")]
    ControlPlane {
        name: String,
        #[source]
        source: Box<SetError>,
    },
    #[error("failed to render the system manifests")]
    System(#[source] Box<SetError>),
    #[error("ControlPlane {0:?} is given more than once")]
    DuplicateControlPlane(String),
    #[error(
        "ControlPlanes {first:?} and {second:?} are both of type host; a hosting cluster has one \
         host control plane"
    )]
    SecondHost { first: String, second: String },
    #[error("{object} is rendered for both {first} and {second}")]
    SharedObject {
        object: String,
        first: String,
        second: String,
    },
}

/// Why one set of objects — a control plane's, or the system manifests — could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(
        "spec.type: type ocm is deprecated and kflex does not render it; for the same result use \
         type vcluster with a PostCreateHook that installs an OCM hub inside it (example: \
         examples/hooks/ocm.yaml in the kflex repository)"
    )]
    Ocm,
    #[error(
        "{field}: PostCreateHook {hook:?} is not in the input (PostCreateHooks given: {available})"
    )]
    MissingHook {
        field: String,
        hook: String,
        available: String,
    },
    #[error(transparent)]
    Hook(#[from] Box<HookError>),
    #[error(transparent)]
    HookUse(#[from] InvalidUse),
    #[error("template {template}: {detail}")]
    Template { template: String, detail: String },
    #[error("failed to build the template context")]
    Context(#[source] serde_json::Error),
    #[error("failed to generate the CustomResourceDefinitions")]
    Crd(#[source] crate::api::CrdError),
    #[error("a generated CustomResourceDefinition is not a valid object")]
    CrdShape(#[source] crate::manifest::ShapeError),
    #[error("{object} (from {origin}), field {field}: {reason}")]
    Object {
        object: String,
        origin: String,
        field: String,
        reason: String,
    },
    #[error("{object} is rendered twice: by {first} and by {second}")]
    Duplicate {
        object: String,
        first: String,
        second: String,
    },
}

/// Renders one control plane with the embedded-or-overridden `templates`.
pub fn render(
    control_plane: &ControlPlane,
    hooks: &HookCatalog,
    settings: &Settings,
    templates: &TemplateSet,
) -> Result<Rendered, RenderError> {
    Renderer::new(settings.clone(), templates)?.render(control_plane, hooks)
}

/// Renders what the hosting cluster needs once.
pub fn render_system(
    settings: &Settings,
    templates: &TemplateSet,
) -> Result<Rendered, RenderError> {
    Renderer::new(settings.clone(), templates)?.render_system()
}

/// A hook kflex itself applies for a type (from the template set, so it can be overridden).
#[derive(Debug)]
struct BuiltInHook {
    /// Template path, which names the hook's objects in the output.
    path: String,
    name: String,
    hook: PostCreateHook,
}

/// A renderer with its templates compiled once, for rendering many control planes.
#[derive(Debug)]
pub struct Renderer {
    settings: Settings,
    env: Environment<'static>,
    templates: TemplateSet,
    /// kflex's own hooks for type k8s (the database), loaded when a k8s control plane is first
    /// rendered.
    built_in_hooks: LazyHooks,
    /// What deleting a k8s control plane runs first, loaded when first needed.
    cleanup_hooks: LazyHooks,
    scopes: Scopes,
    system: SystemContext,
    /// Templates' rendered text, parsed once per shape.
    parse_cache: parse_cache::ParseCache,
    /// What the `canonical_yaml` filter has parsed, by shape (the filter holds it; tests turn
    /// it off to compare both paths).
    #[cfg(test)]
    canonical: Arc<canonical::CanonicalCache>,
    /// The keys of the system manifests under these settings, rendered when a hook first
    /// renders a cluster-scoped object (to refuse one that would replace kflex's own).
    system_keys: OnceLock<Result<HashSet<ObjectKey>, String>>,
}

impl Renderer {
    /// Compiles `templates` and loads the built-in hooks.
    pub fn new(settings: Settings, templates: &TemplateSet) -> Result<Self, RenderError> {
        let canonical = Arc::new(canonical::CanonicalCache::default());
        let env = templates
            .compile(canonical.clone())
            .map_err(RenderError::Templates)?;
        let (hooks, cleanup) = match settings.postgres.mode {
            PostgresMode::InCluster => (K8S_BUILT_IN_HOOKS, K8S_CLEANUP_HOOKS),
            PostgresMode::External => (K8S_BUILT_IN_HOOKS_EXTERNAL, K8S_CLEANUP_HOOKS_EXTERNAL),
        };
        Ok(Self {
            scopes: Scopes::from_settings(&settings),
            system: SystemContext::new(&settings),
            templates: templates.clone(),
            settings,
            env,
            built_in_hooks: LazyHooks::new(hooks),
            cleanup_hooks: LazyHooks::new(cleanup),
            parse_cache: parse_cache::ParseCache::default(),
            #[cfg(test)]
            canonical,
            system_keys: OnceLock::new(),
        })
    }

    /// Renders one control plane.
    pub fn render(
        &self,
        cp: &ControlPlane,
        catalog: &HookCatalog,
    ) -> Result<Rendered, RenderError> {
        let name = cp.metadata.name.clone().unwrap_or_default();
        self.render_control_plane(cp, catalog)
            .map_err(|source| RenderError::ControlPlane {
                name,
                source: Box::new(source),
            })
    }

    /// What deleting `cp` runs before its objects go; empty for most types (see
    /// `render_cleanup_objects`).
    pub fn render_cleanup(&self, cp: &ControlPlane) -> Result<Vec<Manifest>, RenderError> {
        let name = cp.metadata.name.clone().unwrap_or_default();
        self.render_cleanup_objects(cp)
            .map_err(|source| RenderError::ControlPlane {
                name,
                source: Box::new(source),
            })
    }

    /// Renders the one-time system manifests.
    pub fn render_system(&self) -> Result<Rendered, RenderError> {
        self.render_system_objects()
            .map_err(|err| RenderError::System(Box::new(err)))
    }
}

/// kflex's own hooks of one directory of the templates, parsed on first use.
#[derive(Debug)]
struct LazyHooks {
    dir: &'static str,
    loaded: OnceLock<Result<Vec<BuiltInHook>, String>>,
}

impl LazyHooks {
    fn new(dir: &'static str) -> Self {
        Self {
            dir,
            loaded: OnceLock::new(),
        }
    }
}

impl Renderer {
    /// The hooks of `lazy`, parsed from the templates the first time.
    fn hooks<'a>(&self, lazy: &'a LazyHooks) -> Result<&'a [BuiltInHook], SetError> {
        lazy.loaded
            .get_or_init(|| {
                load_built_in_hooks(&self.templates, lazy.dir).map_err(|err| {
                    let mut detail = err.to_string();
                    let mut source = std::error::Error::source(&err);
                    while let Some(cause) = source {
                        detail.push_str(&format!(": {cause}"));
                        source = cause.source();
                    }
                    detail
                })
            })
            .as_deref()
            .map_err(|detail| SetError::Template {
                template: lazy.dir.to_owned(),
                detail: detail.clone(),
            })
    }
}

/// A hook file read by the fast reader; `None` leaves it to serde-saphyr, whose errors say
/// where a file is wrong.
fn read_hook(text: &str) -> Option<PostCreateHook> {
    let mut documents = crate::manifest::read_documents(text)?;
    if documents.len() != 1 {
        return None;
    }
    serde_json::from_value(documents.pop()?).ok()
}

/// The hooks in `dir` of `templates` (kflex's own, in PostCreateHook form).
fn load_built_in_hooks(
    templates: &TemplateSet,
    dir: &str,
) -> Result<Vec<BuiltInHook>, RenderError> {
    let mut hooks = Vec::new();
    for (path, text) in templates.files_in(dir) {
        let hook = match read_hook(text) {
            Some(hook) => hook,
            None => serde_saphyr::from_str(text).map_err(|source| RenderError::BuiltInHook {
                path: path.to_owned(),
                source: Box::new(source),
            })?,
        };
        let name = hook
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| RenderError::BuiltInHookName {
                path: path.to_owned(),
            })?;
        hooks.push(BuiltInHook {
            path: path.to_owned(),
            name,
            hook,
        });
    }
    Ok(hooks)
}

/// Refuses a second control plane of type host among `control_planes` (there is one hosting
/// cluster to stand for).
pub fn check_single_host<'a>(
    control_planes: impl IntoIterator<Item = &'a ControlPlane>,
) -> Result<(), RenderError> {
    let mut hosts = control_planes
        .into_iter()
        .filter(|cp| cp.spec.type_ == ControlPlaneType::Host)
        .map(|cp| cp.metadata.name.clone().unwrap_or_default());
    match (hosts.next(), hosts.next()) {
        (Some(first), Some(second)) => Err(RenderError::SecondHost { first, second }),
        _ => Ok(()),
    }
}

/// Refuses a control plane among `control_planes` whose `spec.restoreFrom` names another of
/// them of a different type.
pub fn check_restore_sources<'a>(
    control_planes: impl IntoIterator<Item = &'a ControlPlane> + Clone,
) -> Result<(), RenderError> {
    let by_name: HashMap<&str, &ControlPlane> = control_planes
        .clone()
        .into_iter()
        .filter_map(|cp| cp.metadata.name.as_deref().map(|name| (name, cp)))
        .collect();
    for cp in control_planes {
        let source = cp
            .spec
            .restore_from
            .as_ref()
            .and_then(|restore| by_name.get(restore.control_plane.as_str()).copied());
        crate::api::validate_restore_source(cp, source).map_err(|err| {
            RenderError::ControlPlane {
                name: err.name.clone(),
                source: Box::new(SetError::Invalid(err)),
            }
        })?;
    }
    Ok(())
}

/// Refuses an object that two control planes would both render (cluster-scoped objects, or
/// objects in the shared system namespace). `sets` pairs each owner, as the message should name
/// it (`ControlPlane "cp1"`, `the system manifests`), with its objects' keys — all of them, or
/// just [`Rendered::shareable_keys`].
pub fn check_shared_objects<'a>(
    sets: impl IntoIterator<Item = (&'a str, &'a [ObjectKey])>,
) -> Result<(), RenderError> {
    let mut owners: HashMap<&ObjectKey, &str> = HashMap::new();
    for (owner, keys) in sets {
        for key in keys {
            if let Some(first) = owners.insert(key, owner)
                && first != owner
            {
                return Err(RenderError::SharedObject {
                    object: key.to_string(),
                    first: first.to_owned(),
                    second: owner.to_owned(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ControlPlaneSpec, PostCreateHookSpec};
    use crate::manifest::to_yaml_stream;
    use serde_json::{Value, json};

    fn control_plane(name: &str, spec: Value) -> ControlPlane {
        let spec: ControlPlaneSpec = serde_json::from_value(spec).unwrap();
        ControlPlane::new(name, spec)
    }

    fn hook() -> PostCreateHook {
        let spec: PostCreateHookSpec = serde_json::from_value(json!({
            "defaultVars": [{"name": "Msg", "value": "on"}],
            "templates": [{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "{{.ControlPlaneName}}-cm"},
                "data": {"msg": "{{.Msg}}", "ns": "{{.Namespace}}"}}]
        }))
        .unwrap();
        PostCreateHook::new("h", spec)
    }

    fn yaml(renderer: &Renderer, cp: &ControlPlane, catalog: &HookCatalog) -> String {
        to_yaml_stream(&renderer.render(cp, catalog).unwrap().manifests).unwrap()
    }

    /// The parse cache and the canonical_yaml cache must never change a single byte of output,
    /// including for names a YAML 1.1 reader would take for booleans, nulls or numbers.
    #[test]
    fn the_caches_change_nothing() {
        let catalog = HookCatalog::new([hook()]).unwrap();
        let names = [
            "cp1", "no", "on", "yes", "y", "n", "true", "null", "nan", "inf", "e", "x0", "a-b",
            "o12",
        ];
        let mut load_balancer = Settings {
            exposure: Some(crate::settings::Exposure::LoadBalancer),
            ..Settings::default()
        };
        load_balancer.load_balancer.publish_address = true;
        load_balancer.load_balancer.annotations =
            [("example.com/tags".to_owned(), "team=a,cost=42".to_owned())].into();
        for settings in [
            Settings::default(),
            Settings {
                is_open_shift: true,
                ..Settings::default()
            },
            Settings {
                exposure: Some(crate::settings::Exposure::Gateway),
                ..Settings::default()
            },
            load_balancer,
        ] {
            let fast = Renderer::new(settings.clone(), &TemplateSet::embedded()).unwrap();
            let slow = Renderer::new(settings, &TemplateSet::embedded()).unwrap();
            slow.parse_cache.disable();
            slow.canonical.disable();
            for (i, name) in names.iter().enumerate() {
                let spec = match i % 8 {
                    6 => json!({"type": "k8s", "replicas": 3, "backup": {"schedule": "@daily"}}),
                    7 => json!({"type": "k8s", "backend": "dedicated",
                        "backup": {"schedule": "17 3 * * *", "retention": 2},
                        "restoreFrom": {"controlPlane": name, "backup": "20261203-021700-k3x9qa"}}),
                    0 => {
                        json!({"type": "k8s", "kubernetesVersion": "v1.33.1", "postCreateHooks": [{"hookName": "h"}]})
                    }
                    1 => json!({"type": "k3s", "postCreateHooks": [{"hookName": "h"}]}),
                    2 => json!({"type": "vcluster", "kubernetesVersion": "v1.35.9"}),
                    3 => json!({"type": "host", "tokenExpirationSeconds": 3600}),
                    4 => json!({"type": "external", "bootstrapSecretRef": {
                        "name": format!("{name}-bootstrap"),
                        "namespace": "kubeflex-system",
                        "inClusterKey": "k",
                    }}),
                    _ => {
                        json!({"type": "k8s", "globalVars": {"Msg": name}, "postCreateHooks": [{"hookName": "h"}]})
                    }
                };
                let cp = control_plane(name, spec);
                assert_eq!(
                    yaml(&fast, &cp, &catalog),
                    yaml(&slow, &cp, &catalog),
                    "{name}"
                );
            }
            // The comparison above exercised the caches: a shape per template.
            assert!(fast.parse_cache.shapes() >= fast.templates.rendered_in("k8s").len());
            assert_eq!(slow.parse_cache.shapes(), 0);
            // And every embedded template's text was read by the fast reader.
            assert_eq!(
                fast.parse_cache.slow_parses(),
                0,
                "texts left to serde-saphyr"
            );
            assert_eq!(
                fast.canonical.slow_parses(),
                0,
                "canonical_yaml left to serde-saphyr"
            );
        }
    }

    /// kflex's own hooks are read by the fast reader (their parse was a tenth of a
    /// `render cp1`), into what serde-saphyr reads.
    #[test]
    fn built_in_hooks_take_the_fast_reader() {
        let templates = TemplateSet::embedded();
        let mut files = 0;
        for dir in [
            K8S_BUILT_IN_HOOKS,
            K8S_BUILT_IN_HOOKS_EXTERNAL,
            K8S_CLEANUP_HOOKS,
            K8S_CLEANUP_HOOKS_EXTERNAL,
        ] {
            for (path, text) in templates.files_in(dir) {
                let fast = read_hook(text).unwrap_or_else(|| panic!("{path} left to serde-saphyr"));
                let slow: PostCreateHook = serde_saphyr::from_str(text).unwrap();
                assert_eq!(
                    serde_json::to_value(&fast).unwrap(),
                    serde_json::to_value(&slow).unwrap(),
                    "{path}"
                );
                files += 1;
            }
        }
        assert!(files >= 2, "hooks found: {files}");
    }

    #[test]
    fn deleting_a_k8s_control_plane_first_drops_its_database() {
        let renderer = Renderer::new(Settings::default(), &TemplateSet::embedded()).unwrap();
        let cleanup = renderer
            .render_cleanup(&control_plane("cp-1", json!({"type": "k8s"})))
            .unwrap();
        assert_eq!(cleanup.len(), 1);
        let job = &cleanup[0];
        assert_eq!((job.kind(), job.name()), ("Job", "db-drop-cp-1"));
        assert_eq!(job.namespace(), Some("kubeflex-system"));
        assert_eq!(job.label(metadata::CONTROL_PLANE_LABEL), Some("cp-1"));
        let (_, spec) = pod_security::pod_spec(job).unwrap();
        assert!(pod_security::check(spec).is_empty(), "restricted");
        let args = &job.object()["spec"]["template"]["spec"]["containers"][0]["args"];
        assert!(args.as_array().unwrap().iter().any(|a| a == "--drop"));
        assert!(
            args.as_array()
                .unwrap()
                .iter()
                .any(|a| a == "--database=cp_1")
        );
        for other in ["k3s", "vcluster", "host"] {
            let cp = control_plane("x", json!({"type": other}));
            assert!(renderer.render_cleanup(&cp).unwrap().is_empty(), "{other}");
        }
    }

    #[test]
    fn several_api_servers_are_spread_budgeted_and_rolled_one_at_a_time() {
        let renderer = Renderer::new(Settings::default(), &TemplateSet::embedded()).unwrap();
        let catalog = HookCatalog::default();
        let find = |manifests: &[Manifest], kind: &str, name: &str| {
            manifests
                .iter()
                .find(|m| m.kind() == kind && m.name() == name)
                .map(|m| Value::Object(m.object().clone()))
        };
        let ha = renderer
            .render(
                &control_plane("cp1", json!({"type": "k8s", "replicas": 3})),
                &catalog,
            )
            .unwrap()
            .manifests;
        let api = find(&ha, "Deployment", "kube-apiserver").unwrap();
        assert_eq!(api["spec"]["replicas"], 3);
        assert_eq!(
            api["spec"]["strategy"]["rollingUpdate"],
            json!({"maxSurge": 1, "maxUnavailable": 1})
        );
        let spread = &api["spec"]["template"]["spec"]["topologySpreadConstraints"];
        assert_eq!(spread[0]["topologyKey"], "kubernetes.io/hostname");
        assert_eq!(spread[0]["whenUnsatisfiable"], "DoNotSchedule");
        assert_eq!(spread[1]["topologyKey"], "topology.kubernetes.io/zone");
        assert_eq!(spread[1]["whenUnsatisfiable"], "ScheduleAnyway");
        let manager = find(&ha, "Deployment", "kube-controller-manager").unwrap();
        assert_eq!(manager["spec"]["replicas"], 2);
        let command = manager["spec"]["template"]["spec"]["containers"][0]["command"].clone();
        assert!(
            command
                .as_array()
                .unwrap()
                .contains(&json!("--leader-elect=true"))
        );
        for name in ["kube-apiserver", "kube-controller-manager"] {
            let budget = find(&ha, "PodDisruptionBudget", name).unwrap();
            assert_eq!(budget["spec"]["maxUnavailable"], 1, "{name}");
            assert_eq!(budget["spec"]["selector"]["matchLabels"]["app"], name);
        }
        // The k8s.replicas setting is the default; spec.replicas wins; one replica renders none
        // of it.
        let settings = Settings {
            k8s: crate::settings::K8sSettings { replicas: 2 },
            ..Settings::default()
        };
        let by_setting = Renderer::new(settings, &TemplateSet::embedded()).unwrap();
        let defaulted = by_setting
            .render(&control_plane("cp1", json!({"type": "k8s"})), &catalog)
            .unwrap()
            .manifests;
        assert_eq!(
            find(&defaulted, "Deployment", "kube-apiserver").unwrap()["spec"]["replicas"],
            2
        );
        let single = by_setting
            .render(
                &control_plane("cp1", json!({"type": "k8s", "replicas": 1})),
                &catalog,
            )
            .unwrap()
            .manifests;
        let api = find(&single, "Deployment", "kube-apiserver").unwrap();
        assert_eq!(api["spec"]["replicas"], 1);
        assert!(api["spec"].get("strategy").is_none());
        assert!(
            api["spec"]["template"]["spec"]
                .get("topologySpreadConstraints")
                .is_none()
        );
        assert!(!single.iter().any(|m| m.kind() == "PodDisruptionBudget"));
        // Other types are not affected by the setting.
        let k3s = by_setting
            .render(&control_plane("edge", json!({"type": "k3s"})), &catalog)
            .unwrap()
            .manifests;
        assert!(!k3s.iter().any(|m| m.kind() == "PodDisruptionBudget"));
    }

    #[test]
    fn an_external_shared_datastore_is_reached_through_the_administrators_secret() {
        let mut settings = Settings::default();
        settings.postgres.mode = PostgresMode::External;
        settings.postgres.external.secret_name = "pg-admin".into();
        let renderer = Renderer::new(settings, &TemplateSet::embedded()).unwrap();
        let system = renderer.render_system().unwrap().manifests;
        assert!(
            !system.iter().any(|m| m.source().starts_with("postgres/")),
            "no PostgreSQL of kflex's: {:?}",
            system.iter().map(Manifest::key).collect::<Vec<_>>()
        );
        let cp = control_plane("cp-1", json!({"type": "k8s"}));
        let uses_the_secret = |job: &Manifest| {
            let pod = &job.object()["spec"]["template"]["spec"];
            assert!(
                pod["containers"][0]["args"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("--server-dir=/var/run/secrets/kflex/postgres")),
                "{}",
                job.key()
            );
            assert_eq!(pod["volumes"][0]["secret"]["secretName"], "pg-admin");
            assert_eq!(job.namespace(), Some("kubeflex-system"));
        };
        let manifests = renderer
            .render(&cp, &HookCatalog::default())
            .unwrap()
            .manifests;
        let job = manifests
            .iter()
            .find(|m| m.kind() == "Job" && m.name() == "db-cp-1")
            .unwrap();
        uses_the_secret(job);
        let cleanup = renderer.render_cleanup(&cp).unwrap();
        assert_eq!(cleanup[0].name(), "db-drop-cp-1");
        uses_the_secret(&cleanup[0]);
        let api = manifests
            .iter()
            .find(|m| m.kind() == "Deployment" && m.name() == "kube-apiserver")
            .unwrap();
        let env = &api.object()["spec"]["template"]["spec"]["containers"][0]["env"];
        let mode = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "PGSSLMODE")
            .unwrap();
        assert_eq!(
            mode["valueFrom"]["secretKeyRef"],
            json!({"name": "kine-datastore", "key": "sslmode"}),
            "the server's own mode, which kine-datastore carries"
        );
    }

    #[test]
    fn a_dedicated_backend_is_a_postgresql_of_its_own_and_nothing_on_the_shared_one() {
        let mut settings = Settings::default();
        settings.postgres.dedicated.storage_class_name = "fast".into();
        let renderer = Renderer::new(settings, &TemplateSet::embedded()).unwrap();
        let cp = control_plane("cp-1", json!({"type": "k8s", "backend": "dedicated"}));
        let manifests = renderer
            .render(&cp, &HookCatalog::default())
            .unwrap()
            .manifests;
        assert!(
            manifests
                .iter()
                .all(|m| m.namespace().is_none_or(|ns| ns == "cp-1-system")),
            "nothing in kubeflex-system"
        );
        assert!(
            renderer.render_cleanup(&cp).unwrap().is_empty(),
            "nothing to drop on the shared server"
        );
        let find = |kind: &str, name: &str| {
            manifests
                .iter()
                .find(|m| m.kind() == kind && m.name() == name)
                .map(|m| Value::Object(m.object().clone()))
                .unwrap_or_else(|| panic!("{kind} {name}"))
        };
        let server = find("StatefulSet", "postgres");
        let claim = &server["spec"]["volumeClaimTemplates"][0]["spec"];
        assert_eq!(claim["resources"]["requests"]["storage"], "2Gi");
        assert_eq!(claim["storageClassName"], "fast");
        let (_, pod) = pod_security::pod_spec(
            manifests
                .iter()
                .find(|m| m.kind() == "StatefulSet")
                .unwrap(),
        )
        .unwrap();
        assert!(pod_security::check(pod).is_empty(), "restricted");
        // Only this control plane's API servers and database Job: no other namespace.
        let policy = find("NetworkPolicy", "postgres");
        for peer in policy["spec"]["ingress"][0]["from"].as_array().unwrap() {
            assert!(peer.get("namespaceSelector").is_none(), "{peer}");
        }
        let job = find("Job", "kflex-database");
        let args = job["spec"]["template"]["spec"]["containers"][0]["args"].clone();
        for wanted in [
            "--host=postgres.cp-1-system.svc.cluster.local",
            "--admin-user=postgres",
            "--database=cp_1",
            "--role=cp_1",
            "--secret-namespace=cp-1-system",
        ] {
            assert!(
                args.as_array().unwrap().contains(&json!(wanted)),
                "{wanted}"
            );
        }
        let bootstrap = find("Job", "postgres-bootstrap");
        let tls = &bootstrap["spec"]["template"]["spec"]["containers"][1]["args"];
        assert!(
            tls.as_array()
                .unwrap()
                .contains(&json!("--dns-name=postgres.cp-1-system.svc.cluster.local"))
        );
        // Its superuser password and certificate are the control plane's own Secrets: a hook
        // may not render them, pruning never deletes them.
        let generated = facts(ControlPlaneType::K8s).unwrap().generated_secrets;
        assert!(generated.contains(&"postgres") && generated.contains(&"postgres-tls"));
        let hook: PostCreateHook = PostCreateHook::new(
            "h",
            serde_json::from_value(json!({"templates": [{"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "postgres"}, "stringData": {"postgres-password": "x"}}]}))
            .unwrap(),
        );
        let with_hook = control_plane(
            "cp-1",
            json!({"type": "k8s", "backend": "dedicated", "postCreateHooks": [{"hookName": "h"}]}),
        );
        let err = renderer
            .render(&with_hook, &HookCatalog::new([hook]).unwrap())
            .unwrap_err();
        let message = format!("{:#}", anyhow_like(&err));
        assert!(
            message.contains("created by the control plane itself"),
            "{message}"
        );
    }

    /// The error and its causes, one after another.
    fn anyhow_like(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    #[test]
    fn rendering_is_deterministic() {
        let renderer = Renderer::new(Settings::default(), &TemplateSet::embedded()).unwrap();
        let cp = control_plane("cp1", json!({"type": "k8s"}));
        let catalog = HookCatalog::default();
        assert_eq!(
            yaml(&renderer, &cp, &catalog),
            yaml(&renderer, &cp, &catalog)
        );
        let system = |r: &Renderer| to_yaml_stream(&r.render_system().unwrap().manifests).unwrap();
        assert_eq!(system(&renderer), system(&renderer));
    }

    /// Switching the exposure replaces the exposure object (and, for a load balancer, changes
    /// the API Service and gives up vCluster's kubelet port) and labels the namespace for a
    /// Gateway; no certificate, kubeconfig, Job, workload or Secret changes, so nothing is issued
    /// again and nothing restarts.
    #[test]
    fn switching_exposure_changes_only_exposure_objects() {
        use crate::settings::Exposure;
        let catalog = HookCatalog::default();
        let render = |exposure: Exposure, cp: &ControlPlane| {
            let settings = Settings {
                exposure: Some(exposure),
                ..Settings::default()
            };
            let renderer = Renderer::new(settings, &TemplateSet::embedded()).unwrap();
            renderer.render(cp, &catalog).unwrap().manifests
        };
        let exposure_kind = |m: &Manifest| {
            matches!(
                (m.group(), m.kind()),
                ("networking.k8s.io", "Ingress") | ("gateway.networking.k8s.io", "TLSRoute")
            )
        };
        for type_ in ["k8s", "k3s", "vcluster", "host"] {
            let cp = control_plane("cp1", json!({"type": type_}));
            let ingress = render(Exposure::Ingress, &cp);
            for exposure in [Exposure::Gateway, Exposure::LoadBalancer] {
                let other = render(exposure, &cp);
                let unchanged = |list: &[Manifest]| -> Vec<Manifest> {
                    list.iter()
                        .filter(|m| {
                            !exposure_kind(m) && !matches!(m.kind(), "Namespace" | "Service")
                        })
                        .cloned()
                        .collect()
                };
                assert_eq!(
                    unchanged(&ingress),
                    unchanged(&other),
                    "{type_}: {exposure} changed more than its exposure"
                );
                let kinds = |list: &[Manifest]| -> Vec<String> {
                    list.iter()
                        .filter(|m| exposure_kind(m))
                        .map(|m| m.key().to_string())
                        .collect()
                };
                let serves_api = type_ != "host";
                match exposure {
                    Exposure::Gateway => assert_eq!(
                        kinds(&other),
                        if serves_api {
                            vec!["TLSRoute cp1-system/cp1".to_owned()]
                        } else {
                            Vec::new()
                        },
                        "{type_}"
                    ),
                    _ => assert!(kinds(&other).is_empty(), "{type_}: {:?}", kinds(&other)),
                }
            }
        }
    }
}
