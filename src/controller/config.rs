//! The controller's settings: kubeflex-system/kubeflex-config, the same keys `kflex render`
//! takes, over the defaults; and, computed once per configuration change rather than once per
//! reconcile, the settings, the compiled renderer and the catalog of PostCreateHooks.
//!
//! A missing ConfigMap is an error, not "the defaults": rendering every control plane with the
//! defaults and applying the result would reset the domain, replace Jobs and prune Routes on
//! OpenShift. Whoever renders "as the controller would" (the controller, `kflex create`,
//! `kflex diff`) goes through [`settings`] and so refuses alike.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kflex_core::api::PostCreateHook;
use kflex_core::api::conditions::reason;
use kflex_core::render::{CatalogError, HookCatalog, RenderError, Renderer, TemplateSet};
use kflex_core::settings::{Layer, SettingSource, Settings, SettingsError};
use kube::runtime::reflector::Store;

/// The ConfigMap holding the settings.
pub const CONFIG_MAP: &str = "kubeflex-config";

/// The configuration ConfigMap cannot give settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "ConfigMap {namespace}/{CONFIG_MAP} does not exist, so the hosting cluster's settings are \
         unknown and nothing is rendered (`kflex init`, or `kflex render --system | kubectl apply \
         --server-side -f -`, creates it)"
    )]
    Missing { namespace: String },
    #[error("ConfigMap {namespace}/{CONFIG_MAP}")]
    Invalid {
        namespace: String,
        #[source]
        source: SettingsError,
    },
    /// The settings are valid, yet the templates cannot be compiled with them.
    #[error("the templates do not compile with these settings")]
    Templates {
        #[source]
        source: RenderError,
    },
}

impl ConfigError {
    /// The reason a ControlPlane's `Synced` condition gives for it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing { .. } => reason::CONFIG_MISSING,
            Self::Invalid { .. } | Self::Templates { .. } => reason::CONFIG_ERROR,
        }
    }
}

/// Settings from the ConfigMap's data over the defaults; `None`: the ConfigMap does not exist.
pub fn settings(
    namespace: &str,
    data: Option<&BTreeMap<String, String>>,
) -> Result<Settings, ConfigError> {
    let Some(data) = data else {
        return Err(ConfigError::Missing {
            namespace: namespace.to_owned(),
        });
    };
    let invalid = |source| ConfigError::Invalid {
        namespace: namespace.to_owned(),
        source,
    };
    let origin = format!("{namespace}/{CONFIG_MAP}");
    let layer =
        Layer::from_strings(|_| SettingSource::ConfigMap(origin.clone()), data).map_err(invalid)?;
    Settings::resolve(&[layer]).map_err(invalid)
}

/// What every reconcile needs and no control plane changes: the settings, the renderer and the
/// hook catalog, each computed again only when what it comes from changed.
#[derive(Debug, Default)]
pub struct RendererCache {
    current: Mutex<Option<(Settings, Arc<Renderer>)>>,
    /// The ConfigMap's data and the settings it gives (valid ones only: an invalid
    /// configuration is rare and reported on every reconcile anyway).
    settings: Mutex<Option<(BTreeMap<String, String>, Settings)>>,
    /// Each hook's identity and resourceVersion, and the catalog built from them.
    catalog: Mutex<Option<HookCatalogEntry>>,
}

type HookCatalogEntry = (
    Vec<(Option<String>, Option<String>)>,
    Result<Arc<HookCatalog>, CatalogError>,
);

impl RendererCache {
    /// [`settings`], parsed again only when the ConfigMap's data changed.
    pub fn settings(
        &self,
        namespace: &str,
        data: Option<&BTreeMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut cached = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some((seen, settings)), Some(data)) = (cached.as_ref(), data)
            && seen == data
        {
            return Ok(settings.clone());
        }
        let resolved = settings(namespace, data)?;
        if let Some(data) = data {
            *cached = Some((data.clone(), resolved.clone()));
        }
        Ok(resolved)
    }

    /// The catalog of the PostCreateHooks in `hooks`, built again only when one changed.
    pub fn catalog(&self, hooks: &Store<PostCreateHook>) -> Result<Arc<HookCatalog>, CatalogError> {
        let state = hooks.state();
        let mut versions: Vec<_> = state
            .iter()
            .map(|h| (h.metadata.name.clone(), h.metadata.resource_version.clone()))
            .collect();
        versions.sort();
        let mut cached = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, catalog)) = cached.as_ref()
            && *seen == versions
        {
            return catalog.clone();
        }
        let catalog = HookCatalog::new(state.iter().map(|h| (**h).clone())).map(Arc::new);
        *cached = Some((versions, catalog.clone()));
        catalog
    }

    /// The renderer for `settings`, compiled again only when they changed.
    pub fn get(&self, settings: &Settings) -> Result<Arc<Renderer>, ConfigError> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, renderer)) = current.as_ref()
            && cached == settings
        {
            return Ok(renderer.clone());
        }
        let renderer = Arc::new(
            Renderer::new(settings.clone(), &TemplateSet::embedded())
                .map_err(|source| ConfigError::Templates { source })?,
        );
        *current = Some((settings.clone(), renderer.clone()));
        Ok(renderer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_map_overrides_the_defaults_and_bad_values_name_it() {
        let data = BTreeMap::from([
            ("domain".to_owned(), "kflex.example.com".to_owned()),
            ("isOpenShift".to_owned(), "true".to_owned()),
        ]);
        let settings = settings("kubeflex-system", Some(&data)).unwrap();
        assert_eq!(settings.domain, "kflex.example.com");
        assert!(settings.is_open_shift);
        assert_eq!(settings.external_port, Settings::default().external_port);
        let bad = BTreeMap::from([("externalPort".to_owned(), "many".to_owned())]);
        let err = super::settings("kubeflex-system", Some(&bad)).unwrap_err();
        assert_eq!(err.reason(), "ConfigError");
        let message = crate::controller::error::chain(&err);
        assert!(
            message.contains("kubeflex-system/kubeflex-config") && message.contains("externalPort"),
            "{message}"
        );
        // An empty ConfigMap is the defaults, written down.
        let empty = super::settings("kubeflex-system", Some(&BTreeMap::new())).unwrap();
        assert_eq!(empty, Settings::default());
    }

    #[test]
    fn a_missing_config_map_is_not_the_defaults() {
        let err = settings("kubeflex-system", None).unwrap_err();
        assert_eq!(err.reason(), "ConfigMissing");
        let message = err.to_string();
        assert!(
            message.contains("ConfigMap kubeflex-system/kubeflex-config does not exist")
                && message.contains("kflex init")
                && message.contains("kflex render --system"),
            "{message}"
        );
    }
}
