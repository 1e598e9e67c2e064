//! One control plane: its hooks, its type's built-in hooks and templates, then the shared
//! finishing steps. Type-specific knowledge (which templates, which built-in hooks and their
//! variables) lives here.

use super::context::{ControlPlaneContext, ControlPlaneRoot, ExposureContext, ImagesContext};
use super::evaluate::context_value;
use super::finish::{PodSecurity, finish, object_error, place};
use super::types::{self, SHARED_TEMPLATES};
use super::{BuiltInHook, HookCatalog, Rendered, Renderer, SetError, hook_policy, hooks, metadata};
use crate::api::{self, ControlPlane};
use crate::manifest::Manifest;
use crate::settings::SYSTEM_NAMESPACE;

impl Renderer {
    pub(super) fn render_control_plane(
        &self,
        cp: &ControlPlane,
        catalog: &HookCatalog,
    ) -> Result<Rendered, SetError> {
        let profile = types::profile(cp.spec.type_)?;
        api::validate_control_plane(cp)?;
        api::validate_backup(cp, &self.settings.backup)?;
        let images = ImagesContext::for_control_plane(&self.settings, cp);
        let ctx = ControlPlaneContext::new(cp, &self.settings, &images);
        let (uses, mut warnings) = hooks::uses(&cp.spec)?;

        let mut user_objects = Vec::new();
        let mut budget = hooks::Budget::per_control_plane();
        for use_ in &uses {
            let hook = catalog
                .get(use_.name)
                .ok_or_else(|| SetError::MissingHook {
                    field: use_.field.clone(),
                    hook: use_.name.to_owned(),
                    available: list_or_none(catalog.names()),
                })?;
            hooks::check_default_vars(use_.name, hook).map_err(Box::new)?;
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
            let expanded = hooks::expand(use_.name, hook, &vars, &source, &mut budget);
            for mut manifest in expanded.map_err(Box::new)? {
                metadata::mark_hook(&mut manifest, use_.name)
                    .map_err(|err| object_error(&manifest, err.field, err.to_string()))?;
                user_objects.push(manifest);
            }
        }

        let mut own_objects = Vec::new();
        // A dedicated PostgreSQL is in the type's templates; the built-in hooks are for the
        // shared one.
        if profile.built_in_hooks && ctx.dedicated_datastore.is_none() {
            own_objects = self.expand_built_in(self.hooks(&self.built_in_hooks)?, &ctx, &images)?;
        }
        let exposure = ExposureContext::new(&self.settings);
        let root = ControlPlaneRoot {
            hosting_minor: self.settings.kube_minor(),
            cp: &ctx,
            settings: &self.settings,
            images: &images,
            system: &self.system,
            exposure: &exposure,
        };
        let root = context_value(&serde_json::to_value(&root).map_err(SetError::Context)?);
        for dir in [SHARED_TEMPLATES, profile.templates] {
            for template in self.templates.rendered_in(dir) {
                own_objects.extend(self.render_template(template, &root)?);
            }
        }

        let mut scopes = self.scopes.clone();
        scopes
            .learn_crds(user_objects.iter().chain(&own_objects))
            .map_err(|(crd, field, reason)| object_error(crd, field, reason))?;
        let home = ctx.namespace.as_str();
        let generated_secrets = types::facts(cp.spec.type_)
            .map(|facts| facts.generated_secrets)
            .unwrap_or_default();
        for manifest in &mut user_objects {
            place(manifest, &scopes, home, &[home])?;
            if let Some(refusal) =
                hook_policy::check(manifest, home, generated_secrets, &self.settings)
            {
                return Err(object_error(manifest, &refusal.field, refusal.reason));
            }
            if manifest.namespace().is_none() {
                self.refuse_system_object(manifest)?;
            }
            if carries_secret_data(manifest) {
                warnings.push(format!(
                    "{} (from {}) holds secret data: this output is no longer safe to commit",
                    manifest.key(),
                    manifest.source()
                ));
            }
        }
        for manifest in &mut own_objects {
            place(manifest, &scopes, home, &[home, SYSTEM_NAMESPACE])?;
        }
        let mut manifests = own_objects;
        manifests.extend(user_objects);
        // Hooks' pods (and the tenant's) may need less than restricted; the namespace then
        // says why.
        warnings.extend(finish(
            &mut manifests,
            Some(&ctx.name),
            home,
            PodSecurity::ControlPlane {
                tenant_pods: profile.tenant_pods,
            },
            &self.settings,
        )?);
        Ok(Rendered {
            control_plane: Some(ctx.name),
            manifests,
            warnings,
        })
    }
}

impl Renderer {
    /// The objects of kflex's own hooks in `hooks` for the control plane of `ctx`.
    fn expand_built_in(
        &self,
        hooks: &[BuiltInHook],
        ctx: &ControlPlaneContext,
        images: &ImagesContext,
    ) -> Result<Vec<Manifest>, SetError> {
        let port = self.system.postgres.port.to_string();
        let pull_policy = serde_json::to_value(self.settings.image_pull_policy)
            .map_err(SetError::Context)?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut objects = Vec::new();
        for BuiltInHook {
            path,
            name: hook_name,
            hook,
        } in hooks
        {
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
                    ("ImagePullPolicy", &pull_policy),
                    ("DatabaseName", &ctx.database_name),
                    ("PostgresHost", &self.system.postgres.host),
                    ("PostgresPort", &port),
                    ("PostgresSecret", self.system.postgres.secret),
                    ("PostgresSecretKey", self.system.postgres.secret_key),
                    ("PostgresTlsSecret", self.system.postgres.tls_secret),
                    (
                        "PostgresExternalSecret",
                        &self.settings.postgres.external.secret_name,
                    ),
                ],
            );
            let mut budget = hooks::Budget::per_control_plane();
            objects.extend(
                hooks::expand(hook_name, hook, &vars, path, &mut budget).map_err(Box::new)?,
            );
        }
        Ok(objects)
    }

    /// What removing `cp` needs run before its objects go (type k8s with the shared backend:
    /// the Job that drops its database and role from the shared PostgreSQL). Placed and labelled like its objects; the
    /// controller creates these while deleting and never renders them otherwise.
    pub(super) fn render_cleanup_objects(
        &self,
        cp: &ControlPlane,
    ) -> Result<Vec<Manifest>, SetError> {
        let profile = types::profile(cp.spec.type_)?;
        api::validate_control_plane(cp)?;
        if !profile.built_in_hooks {
            return Ok(Vec::new());
        }
        let images = ImagesContext::for_control_plane(&self.settings, cp);
        let ctx = ControlPlaneContext::new(cp, &self.settings, &images);
        if ctx.dedicated_datastore.is_some() {
            // Nothing on the shared server; the dedicated one goes with the namespace.
            return Ok(Vec::new());
        }
        let mut objects = self.expand_built_in(self.hooks(&self.cleanup_hooks)?, &ctx, &images)?;
        let home = ctx.namespace.as_str();
        for manifest in &mut objects {
            place(manifest, &self.scopes, home, &[home, SYSTEM_NAMESPACE])?;
            metadata::label(manifest, Some(&ctx.name))
                .map_err(|err| object_error(manifest, err.field, err.to_string()))?;
        }
        crate::manifest::sort_for_install(&mut objects);
        Ok(objects)
    }
}

/// A Secret with content: a hook put secret material into the output.
fn carries_secret_data(manifest: &Manifest) -> bool {
    manifest.is::<k8s_openapi::api::core::v1::Secret>()
        && ["data", "stringData"].iter().any(|field| {
            manifest
                .object()
                .get(*field)
                .and_then(serde_json::Value::as_object)
                .is_some_and(|m| !m.is_empty())
        })
}

impl Renderer {
    /// Refuses a hook's cluster-scoped object that kflex's own system manifests also render
    /// (its CRDs, the controller's ClusterRole, the admission policy), whether or not they are
    /// rendered in this run: applying it would replace kflex's own.
    fn refuse_system_object(&self, manifest: &Manifest) -> Result<(), SetError> {
        let keys = self.system_keys.get_or_init(|| {
            self.render_system_objects()
                .map(|system| system.manifests.iter().map(Manifest::key).collect())
                .map_err(|err| err.to_string())
        });
        match keys {
            Ok(keys) if keys.contains(&manifest.key()) => Err(object_error(
                manifest,
                "metadata.name",
                "kflex's own system manifests render this object; a hook must not replace it"
                    .to_owned(),
            )),
            Ok(_) => Ok(()),
            Err(detail) => Err(SetError::Template {
                template: "(system manifests)".to_owned(),
                detail: detail.clone(),
            }),
        }
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
