//! The controller's settings: kubeflex-system/kubeflex-config, the same keys `kflex render`
//! takes, over the defaults; and one compiled renderer per distinct configuration.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use kflex_core::render::{Renderer, TemplateSet};
use kflex_core::settings::{Layer, SettingSource, Settings};

/// The ConfigMap holding the settings.
pub const CONFIG_MAP: &str = "kubeflex-config";

/// Settings from the ConfigMap's data (`None`: the ConfigMap does not exist: defaults).
pub fn settings(
    namespace: &str,
    data: Option<&BTreeMap<String, String>>,
) -> anyhow::Result<Settings> {
    let Some(data) = data else {
        return Ok(Settings::default());
    };
    let origin = format!("{namespace}/{CONFIG_MAP}");
    let layer = Layer::from_strings(|_| SettingSource::ConfigMap(origin.clone()), data)
        .with_context(|| format!("ConfigMap {origin}"))?;
    Settings::resolve(&[layer]).with_context(|| format!("ConfigMap {origin}"))
}

/// The renderer for the current settings, compiled again only when they change.
#[derive(Debug, Default)]
pub struct RendererCache {
    current: Mutex<Option<(Settings, Arc<Renderer>)>>,
}

impl RendererCache {
    pub fn get(&self, settings: &Settings) -> anyhow::Result<Arc<Renderer>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, renderer)) = current.as_ref()
            && cached == settings
        {
            return Ok(renderer.clone());
        }
        let renderer = Arc::new(
            Renderer::new(settings.clone(), &TemplateSet::embedded())
                .context("compiling the templates")?,
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
        let err = format!(
            "{:#}",
            super::settings("kubeflex-system", Some(&bad)).unwrap_err()
        );
        assert!(
            err.contains("kubeflex-system/kubeflex-config") && err.contains("externalPort"),
            "{err}"
        );
    }
}
