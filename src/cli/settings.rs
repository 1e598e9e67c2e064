//! Render settings from the command line: values files, `KFLEX_*` environment variables, `--set`
//! and dedicated flags, resolved in that order of precedence (later wins) over the defaults.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kflex_core::settings::{Layer, SettingSource, Settings};
use kflex_core::yaml;

use crate::input::describe_parse_error;
use crate::read::Reader;

/// Flags that set render settings.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(
    next_help_heading = "Settings (precedence: defaults < --values < KFLEX_* environment < --set < flags)"
)]
pub(crate) struct SettingsArgs {
    /// YAML file of settings, nested like `images: {kine: {tag: v0.14.14}}` (repeatable; later
    /// files win)
    #[arg(long = "values", visible_alias = "config", value_name = "FILE")]
    values: Vec<PathBuf>,
    /// Set one setting, e.g. --set images.kine.tag=v0.14.14 (repeatable; lists are comma-separated)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// DNS domain of control-plane endpoints (<cp>.<domain>)
    #[arg(long)]
    domain: Option<String>,
    /// Port the Ingress controller listens on outside the cluster
    #[arg(long, value_name = "PORT")]
    external_port: Option<String>,
    /// Name of the hosting cluster's node container (kind), added to certificates
    #[arg(long, value_name = "NAME")]
    host_container: Option<String>,
    /// The hosting cluster is OpenShift: expose control planes with Routes
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    openshift: Option<String>,
    /// How control planes are reached from outside: ingress, route (OpenShift), gateway (Gateway
    /// API TLSRoute) or loadBalancer [default: route on OpenShift, else ingress]
    #[arg(long, value_name = "EXPOSURE")]
    exposure: Option<String>,
    /// Kubernetes version of the hosting cluster (like helm --kube-version)
    #[arg(long, value_name = "VERSION")]
    kube_version: Option<String>,
    /// Default Kubernetes version of the control planes, e.g. v1.34.3
    #[arg(long, value_name = "VERSION")]
    kubernetes_version: Option<String>,
    /// Registry (and path) replacing the registry of every image
    #[arg(long, value_name = "REGISTRY")]
    image_registry: Option<String>,
    /// A hook kind that is namespaced (Kind.group), beyond built-in kinds (repeatable)
    #[arg(long, value_name = "KIND.GROUP")]
    namespaced_kind: Vec<String>,
    /// A hook kind that is cluster-scoped (Kind.group), beyond built-in kinds (repeatable)
    #[arg(long, value_name = "KIND.GROUP")]
    cluster_scoped_kind: Vec<String>,
}

impl SettingsArgs {
    /// Resolves the settings from the flags, the files they name (read by `reader`) and
    /// `environment`.
    pub(crate) fn resolve(
        &self,
        reader: &mut Reader,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Settings> {
        Ok(Settings::resolve(&self.layers(reader, environment)?)?)
    }

    /// The layers these flags, the files they name (read by `reader`) and `environment` set,
    /// lowest precedence first (for callers that add layers of their own around them).
    pub(crate) fn layers(
        &self,
        reader: &mut Reader,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Vec<Layer>> {
        let mut layers = Vec::new();
        for path in &self.values {
            layers.push(values_file(reader, path)?);
        }
        layers.push(Layer::from_environment(environment)?);
        let mut pairs = Vec::with_capacity(self.set.len());
        for item in &self.set {
            let (key, value) = item
                .split_once('=')
                .with_context(|| format!("--set {item:?}: expected KEY=VALUE"))?;
            pairs.push((key.trim().to_owned(), value.to_owned()));
        }
        layers.push(Layer::from_strings(|_| SettingSource::Set, pairs)?);
        let join = |kinds: &[String]| (!kinds.is_empty()).then(|| kinds.join(","));
        let flags = [
            ("domain", "domain", self.domain.clone()),
            ("externalPort", "external-port", self.external_port.clone()),
            (
                "hostContainer",
                "host-container",
                self.host_container.clone(),
            ),
            ("isOpenShift", "openshift", self.openshift.clone()),
            ("exposure", "exposure", self.exposure.clone()),
            ("kubeVersion", "kube-version", self.kube_version.clone()),
            (
                "kubernetesVersion",
                "kubernetes-version",
                self.kubernetes_version.clone(),
            ),
            (
                "imageRegistry",
                "image-registry",
                self.image_registry.clone(),
            ),
            (
                "namespacedKinds",
                "namespaced-kind",
                join(&self.namespaced_kind),
            ),
            (
                "clusterScopedKinds",
                "cluster-scoped-kind",
                join(&self.cluster_scoped_kind),
            ),
        ];
        let set: Vec<(&str, &str, String)> = flags
            .into_iter()
            .filter_map(|(key, flag, value)| value.map(|value| (key, flag, value)))
            .collect();
        let flag_of = |key: &str| {
            set.iter()
                .find(|(k, _, _)| *k == key)
                .map_or("", |(_, flag, _)| flag)
                .to_owned()
        };
        layers.push(Layer::from_strings(
            |key| SettingSource::Flag(flag_of(key)),
            set.iter().map(|(key, _, value)| (*key, value.as_str())),
        )?);
        Ok(layers)
    }
}

/// The settings in a values file (nested YAML, like `images: {kine: {tag: v0.14.14}}`).
pub(crate) fn values_file(reader: &mut Reader, path: &Path) -> anyhow::Result<Layer> {
    let text = reader
        .read_path(path)
        .with_context(|| format!("failed to read values file {}", path.display()))?;
    let parsed =
        yaml::parse_one::<serde_json::Value>(&text, reader.yaml_limits()).map_err(|error| {
            let file = format!("values file {}", path.display());
            let raise = error.cap().and_then(|cap| reader.flag(cap));
            anyhow::anyhow!(describe_parse_error(&file, &error, raise))
        })?;
    reader.charge(parsed.memory);
    let document = parsed.value;
    Ok(Layer::from_document(
        SettingSource::File(path.display().to_string()),
        &document,
    )?)
}
