//! The one-time system manifests: the CRDs generated from the API types, then the `system/`
//! and `postgres/` templates, finished like a control plane's objects but with every pod
//! required to meet the restricted Pod Security Standard.

use serde_json::Value;

use super::context::{ImagesContext, SystemRoot};
use super::evaluate::context_value;
use super::finish::{finish, place};
use super::{ControlPlaneError, Rendered, Renderer};
use crate::api;
use crate::manifest::Manifest;
use crate::settings::{SYSTEM_NAMESPACE, flatten_for_config_map};

/// Templates of the one-time system manifests, rendered in this order of directories.
const SYSTEM_TEMPLATE_DIRS: [&str; 2] = ["system", "postgres"];

impl Renderer {
    pub(super) fn render_system_objects(&self) -> Result<Rendered, ControlPlaneError> {
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
        let warnings = finish(
            &mut manifests,
            None,
            SYSTEM_NAMESPACE,
            false,
            &self.settings,
        )?;
        Ok(Rendered {
            control_plane: None,
            manifests,
            warnings,
        })
    }
}
