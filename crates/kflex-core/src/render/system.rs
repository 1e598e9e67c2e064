//! The one-time system manifests: the CRDs generated from the API types, then the `system/`
//! and `postgres/` templates, finished like a control plane's objects but with every pod
//! required to meet the restricted Pod Security Standard.

use super::context::{ExposureContext, ImagesContext, RestorePair, SystemRoot, hook_rules};
use super::evaluate::context_value;
use super::finish::{PodSecurity, finish, place};
use super::{Rendered, Renderer, SetError};
use crate::api;
use crate::manifest::Manifest;
use crate::settings::{SYSTEM_NAMESPACE, flatten_for_config_map};

/// Templates of the one-time system manifests, rendered in this order of directories.
const SYSTEM_TEMPLATE_DIRS: [&str; 2] = ["system", "postgres"];

impl Renderer {
    pub(super) fn render_system_objects(&self) -> Result<Rendered, SetError> {
        let mut manifests = Vec::new();
        for crd in api::crds().map_err(SetError::Crd)? {
            let source = "CustomResourceDefinitions (generated from the kflex API types)";
            manifests.push(Manifest::new(source, crd).map_err(SetError::CrdShape)?);
        }
        let config_data = flatten_for_config_map(&self.settings);
        let images = ImagesContext::new(&self.settings, &self.settings.kubernetes_version, None);
        let exposure = ExposureContext::new(&self.settings);
        let root = SystemRoot {
            settings: &self.settings,
            images: &images,
            system: &self.system,
            exposure: &exposure,
            config_data: &config_data,
            hook_rules: hook_rules(&self.settings.hook_resources),
            backup_claims: self
                .settings
                .backup
                .storage
                .iter()
                .filter_map(|store| store.pvc.as_ref())
                .collect(),
            allowed_restores: self
                .settings
                .backup
                .allowed_restores
                .iter()
                .filter_map(|pair| pair.split_once(':'))
                .map(|(source, target)| RestorePair { source, target })
                .collect(),
        };
        let root = serde_json::to_value(&root).map_err(SetError::Context)?;
        let root = context_value(&root);
        for dir in SYSTEM_TEMPLATE_DIRS {
            for template in self.templates.rendered_in(dir) {
                manifests.extend(self.render_template(template, &root)?);
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
            PodSecurity::Restricted,
            &self.settings,
        )?;
        Ok(Rendered {
            control_plane: None,
            manifests,
            warnings,
        })
    }
}
