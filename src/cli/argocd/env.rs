//! What Argo CD tells a config-management plugin through its environment, turned into settings
//! layers: `KUBE_VERSION` (the destination cluster's version), the Application's plugin env
//! (`ARGOCD_ENV_<NAME>`, Argo CD adds the prefix) and its plugin parameters (`PARAM_<NAME>`,
//! `PARAM_<NAME>_<i>` for array items, `PARAM_<NAME>_<KEY>` for map entries).
//!
//! `<NAME>` is a setting's name as in `KFLEX_<NAME>` (`DOMAIN`, `EXTERNAL_PORT`,
//! `IMAGES_KINE_TAG`), matched ignoring case and the separators `_`, `-` and `.`, so a parameter
//! named `externalPort`, `external-port` or `images.kine.tag` works too. The names come from the
//! settings registry, so every setting has one. Every `ARGOCD_ENV_` and `PARAM_` variable must
//! name a setting (or the plugin option `SYSTEM`): only kflex reads them, so one that names
//! nothing is a typo, and a typo must not silently render something else. For the same reason
//! two variables of one prefix that name the same setting (`PARAM_DOMAIN` and `PARAM_domain`,
//! a list's items and its plain form, items under two spellings of its name or one index
//! twice) are refused, naming both, rather than one silently winning. Reads no process state:
//! the variables are handed in.

use std::collections::BTreeMap;

use kflex_core::settings::{Layer, SettingSource, SettingsError, is_list_key, known_keys};

/// Prefix Argo CD puts on the Application's `spec.source.plugin.env` names.
pub(crate) const ENV_PREFIX: &str = "ARGOCD_ENV_";
/// Prefix of the variables Argo CD makes of `spec.source.plugin.parameters`.
pub(crate) const PARAM_PREFIX: &str = "PARAM_";
/// The destination cluster's Kubernetes version.
pub(crate) const KUBE_VERSION: &str = "KUBE_VERSION";
/// The one plugin option that is not a setting: also render the system manifests.
const SYSTEM_OPTION: &str = "SYSTEM";

/// Settings and options from Argo CD's variables.
#[derive(Debug)]
pub(crate) struct ArgoInput {
    /// `KUBE_VERSION` as the `kubeVersion` setting; empty if Argo CD gave none.
    pub kube_version: Layer,
    /// The Application's plugin env.
    pub env: Layer,
    /// The Application's plugin parameters.
    pub parameters: Layer,
    /// Whether `SYSTEM` asked for the system manifests too.
    pub system: bool,
}

/// A variable Argo CD handed over is wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArgoEnvError {
    #[error(
        "{variable}: not a kflex setting{hint}; every {prefix} variable must name one (or {prefix}{SYSTEM_OPTION}): {known}"
    )]
    Unknown {
        variable: String,
        prefix: &'static str,
        hint: String,
        known: String,
    },
    #[error("{second}: sets {key} again, already set by {first}")]
    Twice {
        key: String,
        first: String,
        second: String,
    },
    #[error("{variable}: {reason}")]
    Invalid { variable: String, reason: String },
    #[error(transparent)]
    Setting(#[from] SettingsError),
}

/// A setting as the variables name it.
#[derive(Debug)]
struct Known {
    key: String,
    /// Upper snake case: `EXTERNAL_PORT`.
    name: String,
}

/// The settings by squashed name (`EXTERNALPORT`), plus the plugin option.
fn registry() -> BTreeMap<String, Known> {
    known_keys()
        .into_iter()
        .map(|(key, env)| {
            let name = env.strip_prefix("KFLEX_").unwrap_or(&env).to_owned();
            (squash(&name), Known { key, name })
        })
        .collect()
}

/// Upper case without separators: how names are compared.
fn squash(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Reads Argo CD's variables among `vars`; others are ignored.
pub(crate) fn read(vars: &[(String, String)]) -> Result<ArgoInput, ArgoEnvError> {
    let registry = registry();
    let mut env = Collected::default();
    let mut parameters = Collected::default();
    let mut kube_version = Layer::default();
    // The plugin option as each prefix gives it, with the variable that did.
    let mut system_env: Option<(String, bool)> = None;
    let mut system_param: Option<(String, bool)> = None;
    for (variable, value) in vars {
        if variable == KUBE_VERSION && !value.is_empty() {
            let version = hosting_version(value).map_err(|reason| ArgoEnvError::Invalid {
                variable: variable.clone(),
                reason,
            })?;
            let source = |_: &str| SettingSource::Env(KUBE_VERSION.to_owned());
            kube_version = Layer::from_strings(source, [("kubeVersion", version)])?;
            continue;
        }
        let (prefix, name, collected, system) =
            if let Some(name) = variable.strip_prefix(ENV_PREFIX) {
                (ENV_PREFIX, name, &mut env, &mut system_env)
            } else if let Some(name) = variable.strip_prefix(PARAM_PREFIX) {
                (PARAM_PREFIX, name, &mut parameters, &mut system_param)
            } else {
                continue;
            };
        if squash(name) == SYSTEM_OPTION {
            if let Some((first, _)) = system {
                return Err(twice(SYSTEM_OPTION, first, variable));
            }
            *system = Some((variable.clone(), parse_option(variable, value)?));
        } else if let Some(known) = registry.get(&squash(name)) {
            collected.set(&known.key, variable, value)?;
        } else if let Some((known, index, base)) = array_item(&registry, prefix, name) {
            collected.push(&known.key, index, base, variable, value)?;
        } else {
            return Err(unknown(&registry, prefix, variable, name));
        }
    }
    Ok(ArgoInput {
        kube_version,
        env: env.into_layer()?,
        parameters: parameters.into_layer()?,
        // Parameters win over env, as for settings.
        system: system_param.or(system_env).is_some_and(|(_, on)| on),
    })
}

/// `NAME_<i>` of a list setting, given as a plugin parameter of type array: the setting, the
/// index and `NAME` as spelt.
fn array_item<'a, 'n>(
    registry: &'a BTreeMap<String, Known>,
    prefix: &str,
    name: &'n str,
) -> Option<(&'a Known, usize, &'n str)> {
    if prefix != PARAM_PREFIX {
        return None;
    }
    let (base, index) = name.rsplit_once('_')?;
    // Digits only: `usize` would also read `+1`.
    if index.is_empty() || !index.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let index = index.parse().ok()?;
    let known = registry.get(&squash(base))?;
    is_list_key(&known.key).then_some((known, index, base))
}

fn parse_option(variable: &str, value: &str) -> Result<bool, ArgoEnvError> {
    match value.trim() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        other => Err(ArgoEnvError::Invalid {
            variable: variable.to_owned(),
            reason: format!("must be true or false, got {other:?}"),
        }),
    }
}

fn unknown(
    registry: &BTreeMap<String, Known>,
    prefix: &'static str,
    variable: &str,
    name: &str,
) -> ArgoEnvError {
    let wanted = squash(name);
    let nearest = registry
        .iter()
        .map(|(squashed, known)| (kflex_core::text::edit_distance(&wanted, squashed), known))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= 2.max(wanted.len() / 5));
    let hint = nearest.map_or_else(String::new, |(_, known)| {
        format!(" (did you mean {prefix}{}?)", known.name)
    });
    let known = registry
        .values()
        .map(|known| known.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    ArgoEnvError::Unknown {
        variable: variable.to_owned(),
        prefix,
        hint,
        known,
    }
}

/// The hosting cluster's version as the `kubeVersion` setting (`1.33`) from what Argo CD gives:
/// `1.33` (major.minor; Argo CD before 3.4), `v1.33.4` (3.4 on), and vendor forms with
/// pre-release or build text (`v1.33.4-eks-3025e55`, `v1.33.4+k3s1`, which Argo CD passes
/// with the `+` removed). Only the minor version matters to kflex, so a patch upgrade of the
/// hosting cluster does not change the output.
pub(crate) fn hosting_version(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
    let core = bare.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.');
    let number = |part: Option<&str>, digits_only: bool| -> Option<u32> {
        let part = part?;
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        (!digits.is_empty() && (!digits_only || digits.len() == part.len()))
            .then(|| digits.parse().ok())
            .flatten()
    };
    let major = number(parts.next(), true);
    let minor = number(parts.next(), true);
    // A patch may carry vendor text that lost its `+` ("4k3s1").
    let patch_ok = parts
        .next()
        .is_none_or(|patch| number(Some(patch), false).is_some());
    match (major, minor) {
        (Some(major), Some(minor)) if patch_ok && parts.next().is_none() => {
            Ok(format!("{major}.{minor}"))
        }
        _ => Err(format!(
            "{text:?} is not a Kubernetes version like v1.33.4 or 1.33"
        )),
    }
}

/// Values for one layer, each with the variable that gave it.
#[derive(Debug, Default)]
struct Collected {
    values: BTreeMap<String, (String, String)>,
    /// Items of array parameters by key, in index order.
    items: BTreeMap<String, BTreeMap<usize, (String, String)>>,
}

/// The variable of the first of `items` spelt with list name `base`: `PARAM_<base>_<i>`.
fn other_spelling<'a>(items: &'a BTreeMap<usize, (String, String)>, base: &str) -> Option<&'a str> {
    let expected = format!("{PARAM_PREFIX}{base}_");
    items
        .values()
        .map(|(variable, _)| variable.as_str())
        .find(|variable| {
            !variable
                .strip_prefix(&expected)
                .is_some_and(|index| index.chars().all(|c| c.is_ascii_digit()))
        })
}

impl Collected {
    fn set(&mut self, key: &str, variable: &str, value: &str) -> Result<(), ArgoEnvError> {
        if let Some(first) = self.first_variable(key) {
            return Err(twice(key, first, variable));
        }
        self.values
            .insert(key.to_owned(), (variable.to_owned(), value.to_owned()));
        Ok(())
    }

    fn push(
        &mut self,
        key: &str,
        index: usize,
        base: &str,
        variable: &str,
        value: &str,
    ) -> Result<(), ArgoEnvError> {
        if let Some((first, _)) = self.values.get(key) {
            return Err(twice(key, first, variable));
        }
        if let Some(items) = self.items.get(key) {
            // One list, one spelling of its name; one item per index (`_1` and `_01` collide).
            if let Some(first) = other_spelling(items, base) {
                return Err(twice(key, first, variable));
            }
            if let Some((first, _)) = items.get(&index) {
                return Err(twice(key, first, variable));
            }
        }
        if value.contains(',') {
            return Err(ArgoEnvError::Invalid {
                variable: variable.to_owned(),
                reason: format!("an item of {key} cannot contain a comma, got {value:?}"),
            });
        }
        self.items
            .entry(key.to_owned())
            .or_default()
            .insert(index, (variable.to_owned(), value.to_owned()));
        Ok(())
    }

    fn first_variable(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|(variable, _)| variable.as_str())
            .or_else(|| {
                let items = self.items.get(key)?;
                items.values().next().map(|(variable, _)| variable.as_str())
            })
    }

    fn into_layer(mut self) -> Result<Layer, ArgoEnvError> {
        for (key, items) in std::mem::take(&mut self.items) {
            let variable = items
                .values()
                .next()
                .map(|(variable, _)| variable.clone())
                .unwrap_or_default();
            let joined: Vec<String> = items.into_values().map(|(_, value)| value).collect();
            self.values.insert(key, (variable, joined.join(",")));
        }
        let variables: BTreeMap<String, String> = self
            .values
            .iter()
            .map(|(key, (variable, _))| (key.clone(), variable.clone()))
            .collect();
        let source =
            |key: &str| SettingSource::Env(variables.get(key).cloned().unwrap_or_default());
        let pairs = self
            .values
            .iter()
            .map(|(key, (_, value))| (key.as_str(), value.as_str()));
        Ok(Layer::from_strings(source, pairs)?)
    }
}

fn twice(key: &str, first: &str, second: &str) -> ArgoEnvError {
    ArgoEnvError::Twice {
        key: key.to_owned(),
        first: first.to_owned(),
        second: second.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kflex_core::settings::Settings;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let input = read(&vars(pairs)).map_err(|e| e.to_string())?;
        Settings::resolve(&[input.kube_version, input.env, input.parameters])
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_has_a_distinct_name_and_the_option_is_none_of_them() {
        let registry = registry();
        assert_eq!(registry.len(), known_keys().len(), "squashed names collide");
        assert!(!registry.contains_key(SYSTEM_OPTION));
        assert_eq!(registry["EXTERNALPORT"].name, "EXTERNAL_PORT");
        assert_eq!(registry["ISOPENSHIFT"].name, "IS_OPENSHIFT");
    }

    #[test]
    fn env_and_parameters_set_settings_by_any_spelling_of_their_name() {
        let s = settings(&[
            ("ARGOCD_ENV_DOMAIN", "env.example"),
            ("ARGOCD_ENV_IS_OPENSHIFT", "true"),
            ("ARGOCD_ENV_externalPort", "443"),
            ("PARAM_IMAGES_KINE_TAG", "v0.14.99"),
            ("PARAM_NAMESPACED_KINDS_1", "B.y"),
            ("PARAM_NAMESPACED_KINDS_0", "A.x"),
            ("ARGOCD_APP_NAME", "ignored"),
            ("HOME", "ignored"),
        ])
        .unwrap();
        assert_eq!(s.domain, "env.example");
        assert!(s.is_open_shift);
        assert_eq!(s.external_port, 443);
        assert_eq!(s.images.kine.tag, "v0.14.99");
        assert_eq!(s.namespaced_kinds, ["A.x", "B.y"]);
    }

    #[test]
    fn parameters_override_env_and_env_overrides_kube_version() {
        let input = read(&vars(&[
            ("KUBE_VERSION", "v1.34.2"),
            ("ARGOCD_ENV_KUBE_VERSION", "1.35"),
            ("ARGOCD_ENV_DOMAIN", "env.example"),
            ("PARAM_DOMAIN", "param.example"),
        ]))
        .unwrap();
        let s = Settings::resolve(&[input.kube_version, input.env, input.parameters]).unwrap();
        assert_eq!(
            (s.domain.as_str(), s.kube_version.as_str()),
            ("param.example", "1.35")
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = settings(&[("ARGOCD_ENV_IS_OPENSHIFT", "maybe")]).unwrap_err();
        assert_eq!(
            err,
            "setting isOpenShift (from environment variable ARGOCD_ENV_IS_OPENSHIFT): must be true or false, got \"maybe\""
        );
        let err = settings(&[("PARAM_EXTERNAL_PORT", "https")]).unwrap_err();
        assert!(err.contains("PARAM_EXTERNAL_PORT"), "{err}");
        let err = settings(&[("KUBE_VERSION", "1.31")]).unwrap_err();
        assert!(err.contains("environment variable KUBE_VERSION"), "{err}");
    }

    #[test]
    fn unknown_variables_are_refused_with_the_nearest_setting() {
        let err = read(&vars(&[("ARGOCD_ENV_DOMIAN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "ARGOCD_ENV_DOMIAN: not a kflex setting (did you mean ARGOCD_ENV_DOMAIN?)"
            ),
            "{err}"
        );
        let err = read(&vars(&[("PARAM_COLOUR", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("PARAM_COLOUR: not a kflex setting; every PARAM_"),
            "{err}"
        );
        assert!(err.contains("IMAGES_KINE_TAG"), "lists the settings: {err}");
        // An index only makes sense for a list setting.
        let err = read(&vars(&[("PARAM_DOMAIN_0", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("PARAM_DOMAIN_0: not a kflex setting"),
            "{err}"
        );
    }

    #[test]
    fn a_setting_given_twice_in_one_place_is_refused() {
        let err = read(&vars(&[
            ("ARGOCD_ENV_DOMAIN", "a"),
            ("ARGOCD_ENV_domain", "b"),
        ]))
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "ARGOCD_ENV_domain: sets domain again, already set by ARGOCD_ENV_DOMAIN"
        );
        let err = read(&vars(&[
            ("PARAM_NAMESPACED_KINDS_0", "A.x"),
            ("PARAM_NAMESPACED_KINDS", "B.y"),
        ]))
        .unwrap_err();
        assert!(matches!(err, ArgoEnvError::Twice { .. }), "{err}");
    }

    #[test]
    fn variables_that_collapse_into_one_setting_are_refused_naming_both() {
        for pair in [
            // Case and separators.
            [("PARAM_EXTERNAL_PORT", "1"), ("PARAM_externalPort", "2")],
            [
                ("PARAM_IMAGES_KINE_TAG", "a"),
                ("PARAM_IMAGESKINE_TAG", "b"),
            ],
            [
                ("ARGOCD_ENV_IS_OPENSHIFT", "true"),
                ("ARGOCD_ENV_is_openshift", "false"),
            ],
            // A list's plain form and its items, either way round.
            [
                ("PARAM_NAMESPACED_KINDS", "A.x"),
                ("PARAM_NAMESPACED_KINDS_0", "B.y"),
            ],
            [
                ("PARAM_NAMESPACED_KINDS_0", "A.x"),
                ("PARAM_namespacedKinds", "B.y"),
            ],
            // Items under two spellings of the list's name.
            [
                ("PARAM_NAMESPACED_KINDS_0", "A.x"),
                ("PARAM_NAMESPACEDKINDS_1", "B.y"),
            ],
            // One index twice.
            [
                ("PARAM_NAMESPACED_KINDS_1", "A.x"),
                ("PARAM_NAMESPACED_KINDS_01", "B.y"),
            ],
            // The plugin option.
            [("PARAM_SYSTEM", "true"), ("PARAM_system", "false")],
            [("ARGOCD_ENV_SYSTEM", "true"), ("ARGOCD_ENV_System", "true")],
        ] {
            let err = read(&vars(&pair)).unwrap_err();
            let ArgoEnvError::Twice { first, second, .. } = &err else {
                panic!("{pair:?}: {err}")
            };
            assert_eq!(
                (first.as_str(), second.as_str()),
                (pair[0].0, pair[1].0),
                "{err}"
            );
        }
        // An index is digits only.
        let err = read(&vars(&[("PARAM_NAMESPACED_KINDS_+1", "A.x")])).unwrap_err();
        assert!(matches!(err, ArgoEnvError::Unknown { .. }), "{err}");
    }

    #[test]
    fn parameters_win_over_env_for_the_system_option_in_any_order() {
        for order in [
            [("ARGOCD_ENV_SYSTEM", "true"), ("PARAM_SYSTEM", "false")],
            [("PARAM_SYSTEM", "false"), ("ARGOCD_ENV_SYSTEM", "true")],
        ] {
            assert!(!read(&vars(&order)).unwrap().system);
        }
    }

    #[test]
    fn the_system_option() {
        assert!(!read(&[]).unwrap().system);
        assert!(read(&vars(&[("PARAM_SYSTEM", "true")])).unwrap().system);
        assert!(
            read(&vars(&[("ARGOCD_ENV_system", "true")]))
                .unwrap()
                .system
        );
        let err = read(&vars(&[("PARAM_SYSTEM", "yes")]))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "PARAM_SYSTEM: must be true or false, got \"yes\"");
    }

    #[test]
    fn kube_version_forms_argo_cd_gives() {
        for (given, expected) in [
            ("1.33", "1.33"),
            ("v1.33.4", "1.33"),
            ("1.34.0", "1.34"),
            ("v1.33.4-eks-3025e55", "1.33"),
            ("v1.35.1+k3s1", "1.35"),
            ("v1.35.1k3s1", "1.35"),
            (" v1.36.0 ", "1.36"),
        ] {
            assert_eq!(hosting_version(given).as_deref(), Ok(expected), "{given}");
        }
        for bad in ["", "v", "1", "one.33", "1.x", "1.33.4.5", "1.33a"] {
            assert!(hosting_version(bad).is_err(), "{bad}");
        }
        // Unset or empty: no opinion.
        assert!(
            read(&vars(&[("KUBE_VERSION", "")]))
                .unwrap()
                .kube_version
                .is_empty()
        );
    }
}
