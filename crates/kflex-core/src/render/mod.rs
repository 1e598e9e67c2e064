//! The renderer: `render(control plane, hooks, settings, templates) -> manifests`.
//!
//! Pure by construction: it reads nothing but its arguments and always produces the same output
//! for the same input. It owns the order of work for one control plane — hooks, built-in hooks,
//! type templates, then placement, labels, Pod Security, config hashes and install order — and
//! the same for the one-time system manifests. Writing the result anywhere is the caller's job.

mod config_hash;
mod context;
mod hooks;
pub mod metadata;
mod placeholders;
pub mod pod_security;
mod scope;
mod skeleton;
mod templates;

use std::collections::BTreeMap;

use minijinja::Environment;
use serde_json::Value;

use crate::api::{self, ControlPlane, ControlPlaneType, PostCreateHook, ValidationError};
use crate::manifest::{Manifest, ObjectKey, sort_for_install};
use crate::settings::{SYSTEM_NAMESPACE, Settings, flatten_for_config_map};
use context::{ControlPlaneContext, ControlPlaneRoot, ImagesContext, SystemContext, SystemRoot};
use pod_security::Level;
use scope::{Scope, Scopes};

pub use hooks::{DuplicateHook, HookCatalog, HookError};
pub use templates::{TemplateError, TemplateSet};

/// Templates of the one-time system manifests, rendered in this order of directories.
const SYSTEM_TEMPLATE_DIRS: [&str; 2] = ["system", "postgres"];
/// Built-in hooks of type k8s: the per-control-plane database in the shared Postgres.
const K8S_BUILT_IN_HOOKS: &str = "postgres/hooks";

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

/// Rendering failed; nothing should be output.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("failed to load the templates")]
    Templates(#[source] TemplateError),
    #[error("failed to load built-in hook {path}: {reason}")]
    BuiltInHook { path: String, reason: String },
    #[error("failed to render ControlPlane {name:?}")]
    ControlPlane {
        name: String,
        #[source]
        source: Box<ControlPlaneError>,
    },
    #[error("failed to render the system manifests")]
    System(#[source] Box<ControlPlaneError>),
    #[error("ControlPlane {0:?} is given more than once")]
    DuplicateControlPlane(String),
    #[error("{object} is rendered for both ControlPlane {first:?} and ControlPlane {second:?}")]
    SharedObject {
        object: String,
        first: String,
        second: String,
    },
}

/// Why one control plane (or the system) could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(
        "spec.type: type ocm is deprecated and kflex does not render it; use type vcluster with a \
         PostCreateHook that installs OCM inside it"
    )]
    Ocm,
    #[error("spec.type: type {0} is not supported by this version of kflex yet")]
    Unsupported(ControlPlaneType),
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
    #[error("template {template}: {detail}")]
    Template { template: String, detail: String },
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

/// A renderer with its templates compiled once, for rendering many control planes.
#[derive(Debug)]
pub struct Renderer {
    settings: Settings,
    env: Environment<'static>,
    templates: TemplateSet,
    built_in_hooks: Vec<(String, String, PostCreateHook)>,
    scopes: Scopes,
    system: SystemContext,
    skeletons: skeleton::SkeletonCache,
    /// Whether `render_template` may use the skeleton shortcut (tests compare both paths).
    shortcut: bool,
}

/// The parts of a control plane template's context that differ between control planes.
const PER_CONTROL_PLANE: [&str; 3] = [
    "/cp",
    "/images/kubeApiserver",
    "/images/kubeControllerManager",
];

impl Renderer {
    /// Compiles `templates` and loads the built-in hooks.
    pub fn new(settings: Settings, templates: &TemplateSet) -> Result<Self, RenderError> {
        let env = templates.compile().map_err(RenderError::Templates)?;
        let mut built_in_hooks = Vec::new();
        for (path, text) in templates.files_in(K8S_BUILT_IN_HOOKS) {
            let fail = |reason: String| RenderError::BuiltInHook {
                path: path.to_owned(),
                reason,
            };
            let hook: PostCreateHook =
                serde_saphyr::from_str(text).map_err(|err| fail(err.to_string()))?;
            let name = hook
                .metadata
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| fail("metadata.name is required".to_owned()))?;
            built_in_hooks.push((path.to_owned(), name, hook));
        }
        Ok(Self {
            scopes: Scopes::from_settings(&settings),
            system: SystemContext::new(&settings),
            templates: templates.clone(),
            settings,
            env,
            built_in_hooks,
            skeletons: skeleton::SkeletonCache::default(),
            shortcut: true,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
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

    /// Renders the one-time system manifests.
    pub fn render_system(&self) -> Result<Rendered, RenderError> {
        self.render_system_objects()
            .map_err(|err| RenderError::System(Box::new(err)))
    }

    fn render_control_plane(
        &self,
        cp: &ControlPlane,
        catalog: &HookCatalog,
    ) -> Result<Rendered, ControlPlaneError> {
        api::validate_control_plane(cp)?;
        let template_dir = match cp.spec.type_ {
            ControlPlaneType::K8s => "k8s",
            ControlPlaneType::Ocm => return Err(ControlPlaneError::Ocm),
            other => return Err(ControlPlaneError::Unsupported(other)),
        };
        let ctx = ControlPlaneContext::new(cp, &self.settings);
        let images = ImagesContext::new(&self.settings, &ctx.kubernetes_version);
        let (uses, mut warnings) = hooks::uses(&cp.spec);

        let mut user_objects = Vec::new();
        for use_ in &uses {
            let hook = catalog
                .get(use_.name)
                .ok_or_else(|| ControlPlaneError::MissingHook {
                    field: use_.field.clone(),
                    hook: use_.name.to_owned(),
                    available: list_or_none(catalog.names()),
                })?;
            let vars = hooks::variables(
                hook,
                cp.spec.global_vars.as_ref(),
                use_.vars,
                &[
                    ("Namespace", &ctx.namespace),
                    ("ControlPlaneName", &ctx.name),
                    ("HookName", use_.name),
                ],
            );
            let source = format!("PostCreateHook {}", use_.name);
            for mut manifest in hooks::expand(use_.name, hook, &vars, &source).map_err(Box::new)? {
                metadata::mark_hook(&mut manifest, use_.name)
                    .map_err(|err| object_error(&manifest, err.field, err.to_string()))?;
                user_objects.push(manifest);
            }
        }

        let mut own_objects = Vec::new();
        if cp.spec.type_ == ControlPlaneType::K8s {
            let port = self.system.postgres.port.to_string();
            for (path, hook_name, hook) in &self.built_in_hooks {
                let vars = hooks::variables(
                    hook,
                    None,
                    None,
                    &[
                        ("Namespace", &ctx.namespace),
                        ("ControlPlaneName", &ctx.name),
                        ("HookName", hook_name),
                        ("SystemNamespace", SYSTEM_NAMESPACE),
                        ("KflexImage", &images.kflex),
                        ("ImagePullPolicy", pull_policy(&self.settings)),
                        ("DatabaseName", &ctx.database_name),
                        ("PostgresHost", &self.system.postgres.host),
                        ("PostgresPort", &port),
                        ("PostgresSecret", self.system.postgres.secret),
                        ("PostgresSecretKey", self.system.postgres.secret_key),
                    ],
                );
                own_objects.extend(hooks::expand(hook_name, hook, &vars, path).map_err(Box::new)?);
            }
        }
        let root = ControlPlaneRoot {
            cp: &ctx,
            settings: &self.settings,
            images: &images,
            system: &self.system,
        };
        let root = serde_json::to_value(&root).map_err(|err| ControlPlaneError::Template {
            template: template_dir.to_owned(),
            detail: format!("failed to build the template context: {err}"),
        })?;
        let abstracted = skeleton::abstract_values(&root, &PER_CONTROL_PLANE);
        let root = context_value(&root);
        for template in self.templates.rendered_in(template_dir) {
            own_objects.extend(self.render_template(template, &root, abstracted.as_ref())?);
        }

        let mut scopes = self.scopes.clone();
        scopes.learn_crds(user_objects.iter().chain(&own_objects));
        let home = ctx.namespace.as_str();
        for manifest in &mut user_objects {
            place(manifest, &scopes, home, &[home])?;
        }
        for manifest in &mut own_objects {
            place(manifest, &scopes, home, &[home, SYSTEM_NAMESPACE])?;
        }
        let mut manifests = own_objects;
        manifests.extend(user_objects);
        check_duplicates(&manifests)?;
        for manifest in &mut manifests {
            metadata::label(manifest, Some(&ctx.name))
                .map_err(|err| object_error(manifest, err.field, err.to_string()))?;
        }
        warnings.extend(apply_pod_security(
            &mut manifests,
            home,
            true,
            self.settings.kube_minor(),
        )?);
        config_hash::annotate(&mut manifests);
        sort_for_install(&mut manifests);
        Ok(Rendered {
            control_plane: Some(ctx.name),
            manifests,
            warnings,
        })
    }

    fn render_system_objects(&self) -> Result<Rendered, ControlPlaneError> {
        let crds = api::crds().map_err(|err| ControlPlaneError::Template {
            template: "(CustomResourceDefinitions)".to_owned(),
            detail: err.to_string(),
        })?;
        let crd_names: Vec<String> = crds
            .iter()
            .filter_map(|crd| {
                crd.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        let mut manifests = Vec::new();
        for crd in crds {
            let manifest = Manifest::new(
                "CustomResourceDefinitions (generated from the kflex API types)",
                crd,
            )
            .map_err(|err| ControlPlaneError::Template {
                template: "(CustomResourceDefinitions)".to_owned(),
                detail: err.to_string(),
            })?;
            manifests.push(manifest);
        }
        let config_data = flatten_for_config_map(&self.settings);
        let images = ImagesContext::new(&self.settings, &self.settings.kubernetes_version);
        let root = SystemRoot {
            settings: &self.settings,
            images: &images,
            system: &self.system,
            config_data: &config_data,
            crd_names: &crd_names,
        };
        let root = serde_json::to_value(&root).map_err(|err| ControlPlaneError::Template {
            template: "system".to_owned(),
            detail: format!("failed to build the template context: {err}"),
        })?;
        let root = context_value(&root);
        for dir in SYSTEM_TEMPLATE_DIRS {
            for template in self.templates.rendered_in(dir) {
                manifests.extend(self.render_template(template, &root, None)?);
            }
        }
        for manifest in &mut manifests {
            place(
                manifest,
                &self.scopes,
                SYSTEM_NAMESPACE,
                &[SYSTEM_NAMESPACE],
            )?;
        }
        check_duplicates(&manifests)?;
        for manifest in &mut manifests {
            metadata::label(manifest, None)
                .map_err(|err| object_error(manifest, err.field, err.to_string()))?;
        }
        let warnings = apply_pod_security(
            &mut manifests,
            SYSTEM_NAMESPACE,
            false,
            self.settings.kube_minor(),
        )?;
        config_hash::annotate(&mut manifests);
        sort_for_install(&mut manifests);
        Ok(Rendered {
            control_plane: None,
            manifests,
            warnings,
        })
    }

    /// Renders one template and parses every document it produces; with `abstracted`, through
    /// the verified skeleton shortcut when it applies (see `skeleton`).
    fn render_template(
        &self,
        name: &str,
        root: &minijinja::Value,
        abstracted: Option<&skeleton::Abstracted>,
    ) -> Result<Vec<Manifest>, ControlPlaneError> {
        let fail = |detail: String| ControlPlaneError::Template {
            template: name.to_owned(),
            detail,
        };
        let text = self.evaluate(name, root).map_err(fail)?;
        let shortcut = abstracted.filter(|_| self.shortcut).and_then(|abstracted| {
            let skeleton = self.skeletons.get_or_build(name, abstracted.key, || {
                let text = self.evaluate(name, &context_value(&abstracted.root)).ok()?;
                let documents = parse_documents(&text).ok()?;
                skeleton::Skeleton::new(text, documents)
            })?;
            skeleton.instantiate(&text, &abstracted.values)
        });
        let documents = match shortcut {
            Some(documents) => documents,
            None => parse_documents(&text)
                .map_err(|err| fail(format!("rendered invalid YAML: {err}")))?,
        };
        documents
            .into_iter()
            .filter(|doc| !doc.is_null())
            .enumerate()
            .map(|(index, doc)| {
                Manifest::new(name, doc)
                    .map_err(|err| fail(format!("rendered document {index}: {err}")))
            })
            .collect()
    }

    fn evaluate(&self, name: &str, root: &minijinja::Value) -> Result<String, String> {
        let template = self
            .env
            .get_template(name)
            .map_err(|err| templates::describe(&err))?;
        template
            .render(root)
            .map_err(|err| templates::describe(&err))
    }
}

/// A template context as minijinja's value, built once and shared by every template.
fn context_value(root: &Value) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(root))
}

/// The documents of rendered template text (comments are not needed, so not collected).
fn parse_documents(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    let mut options = serde_saphyr::options::Options::default();
    options.emit_comments = false;
    serde_saphyr::from_multiple_with_options(text, options)
}

fn pull_policy(settings: &Settings) -> &'static str {
    match settings.image_pull_policy {
        crate::settings::PullPolicy::Always => "Always",
        crate::settings::PullPolicy::IfNotPresent => "IfNotPresent",
        crate::settings::PullPolicy::Never => "Never",
    }
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn object_error(manifest: &Manifest, field: &str, reason: String) -> ControlPlaneError {
    ControlPlaneError::Object {
        object: manifest.key().to_string(),
        origin: manifest.source().to_owned(),
        field: field.to_owned(),
        reason,
    }
}

/// Puts a namespaced object in `home` unless it names one of `allowed`; refuses a namespace on a
/// cluster-scoped object and kinds of unknown scope.
fn place(
    manifest: &mut Manifest,
    scopes: &Scopes,
    home: &str,
    allowed: &[&str],
) -> Result<(), ControlPlaneError> {
    match scopes.scope(manifest.group(), manifest.kind()) {
        None => {
            let hint = scope::declare_hint(manifest.group(), manifest.kind());
            Err(object_error(manifest, "kind", hint))
        }
        Some(Scope::Cluster) => match manifest.namespace() {
            Some(namespace) if !namespace.is_empty() => Err(object_error(
                manifest,
                "metadata.namespace",
                format!(
                    "{} is cluster-scoped; remove metadata.namespace ({namespace:?})",
                    manifest.kind()
                ),
            )),
            _ => Ok(()),
        },
        Some(Scope::Namespaced) => match manifest.namespace() {
            None | Some("") => {
                manifest.set_namespace(home);
                Ok(())
            }
            Some(namespace) if allowed.contains(&namespace) => Ok(()),
            Some(namespace) => {
                let reason = format!(
                    "namespaced objects of this control plane belong in {home}; {namespace:?} is not allowed"
                );
                Err(object_error(manifest, "metadata.namespace", reason))
            }
        },
    }
}

fn check_duplicates(manifests: &[Manifest]) -> Result<(), ControlPlaneError> {
    let mut seen: BTreeMap<ObjectKey, &str> = BTreeMap::new();
    for manifest in manifests {
        if let Some(first) = seen.insert(manifest.key(), manifest.source()) {
            return Err(ControlPlaneError::Duplicate {
                object: manifest.key().to_string(),
                first: first.to_owned(),
                second: manifest.source().to_owned(),
            });
        }
    }
    Ok(())
}

/// Refuses an object that two control planes would both render (cluster-scoped objects, or
/// objects in the shared system namespace). `sets` pairs each owner with its objects' keys.
pub fn check_shared_objects<'a>(
    sets: impl IntoIterator<Item = (&'a str, &'a [ObjectKey])>,
) -> Result<(), RenderError> {
    let mut owners: BTreeMap<&ObjectKey, &str> = BTreeMap::new();
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

/// Labels `home` with the strictest Pod Security level its pods meet (explaining any exception)
/// and checks that pods elsewhere (the system namespace) meet restricted. With `may_relax`
/// false, every pod in `home` must meet restricted too.
fn apply_pod_security(
    manifests: &mut [Manifest],
    home: &str,
    may_relax: bool,
    kube_minor: u32,
) -> Result<Vec<String>, ControlPlaneError> {
    let mut level = Level::Restricted;
    let mut exceptions = Vec::new();
    let mut relaxed_by = Vec::new();
    for manifest in manifests.iter() {
        let Some((path, spec)) = pod_security::pod_spec(manifest) else {
            continue;
        };
        let violations = pod_security::check(spec);
        if violations.is_empty() {
            continue;
        }
        let pod_level = pod_security::level_of(&violations);
        let in_home = manifest.namespace() == Some(home);
        if !in_home || !may_relax {
            let first = &violations[0];
            return Err(object_error(
                manifest,
                &format!(
                    "{}.{}",
                    path.trim_start_matches('/').replace('/', "."),
                    first.field
                ),
                format!(
                    "{}; pods in {} must meet the restricted Pod Security Standard",
                    first.reason,
                    manifest.namespace().unwrap_or(home)
                ),
            ));
        }
        level = level.min(pod_level);
        let details: Vec<String> = violations
            .iter()
            .map(|v| format!("{} {}", v.field, v.reason))
            .collect();
        exceptions.push(format!(
            "{} {} ({}) needs {}: {}",
            manifest.kind(),
            manifest.name(),
            manifest.source(),
            pod_level.as_str(),
            details.join("; ")
        ));
        relaxed_by.push(format!(
            "{} {} ({})",
            manifest.kind(),
            manifest.name(),
            manifest.source()
        ));
    }
    let namespace = manifests
        .iter_mut()
        .find(|m| m.group().is_empty() && m.kind() == "Namespace" && m.name() == home)
        .ok_or_else(|| ControlPlaneError::Template {
            template: "(namespace)".to_owned(),
            detail: format!("no template renders the Namespace {home}"),
        })?;
    let version = format!("v1.{kube_minor}");
    let labels = namespace.labels_mut();
    for (mode, mode_level) in [
        ("enforce", level),
        ("audit", Level::Restricted),
        ("warn", Level::Restricted),
    ] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            Value::from(mode_level.as_str()),
        );
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            Value::from(version.clone()),
        );
    }
    if exceptions.is_empty() {
        return Ok(Vec::new());
    }
    namespace.annotations_mut().insert(
        metadata::POD_SECURITY_ANNOTATION.to_owned(),
        Value::from(exceptions.join("\n")),
    );
    Ok(vec![format!(
        "namespace {home} enforces Pod Security {} instead of restricted because of {}",
        level.as_str(),
        relaxed_by.join(", ")
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ControlPlaneSpec, PostCreateHookSpec};
    use crate::manifest::to_yaml_stream;
    use serde_json::json;

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

    /// The skeleton shortcut must never change a single byte of output, including for names a
    /// YAML 1.1 reader would take for booleans, nulls or numbers.
    #[test]
    fn the_shortcut_changes_nothing() {
        let catalog = HookCatalog::new([hook()]).unwrap();
        let names = [
            "cp1", "no", "on", "yes", "y", "n", "true", "null", "nan", "inf", "e", "x0", "a-b",
            "o12",
        ];
        for settings in [
            Settings::default(),
            Settings {
                is_open_shift: true,
                ..Settings::default()
            },
        ] {
            let fast = Renderer::new(settings.clone(), &TemplateSet::embedded()).unwrap();
            let mut slow = Renderer::new(settings, &TemplateSet::embedded()).unwrap();
            slow.shortcut = false;
            for (i, name) in names.iter().enumerate() {
                let spec = if i % 3 == 0 {
                    json!({"type": "k8s", "kubernetesVersion": "v1.33.1", "postCreateHooks": [{"hookName": "h"}]})
                } else {
                    json!({"type": "k8s", "globalVars": {"Msg": name}, "postCreateHooks": [{"hookName": "h"}]})
                };
                let cp = control_plane(name, spec);
                assert_eq!(
                    yaml(&fast, &cp, &catalog),
                    yaml(&slow, &cp, &catalog),
                    "{name}"
                );
            }
            // Every k8s template qualifies, so the comparison above exercised the shortcut.
            let templates = fast.templates.rendered_in("k8s").len();
            assert!(
                fast.skeletons.eligible() >= templates,
                "{}",
                fast.skeletons.eligible()
            );
            assert_eq!(slow.skeletons.eligible(), 0);
        }
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
}
