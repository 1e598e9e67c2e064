//! Container images: repository, tag and optional digest, with a registry mirror override.

use serde::{Deserialize, Serialize};

/// One image as configured. An empty `tag` means "the default for this image" (for the
/// Kubernetes components: the control plane's Kubernetes version).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRef {
    /// Registry and path, e.g. `registry.k8s.io/kube-apiserver`.
    pub repository: String,
    pub tag: String,
    /// `sha256:...`; when set, the image is pinned to it.
    pub digest: String,
}

/// Every image kflex renders.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Images {
    /// The kflex image itself: controller, bootstrap Jobs.
    pub kflex: ImageRef,
    pub kube_apiserver: ImageRef,
    pub kube_controller_manager: ImageRef,
    pub kine: ImageRef,
    pub postgres: ImageRef,
    /// k3s; an empty tag follows the control plane's Kubernetes version (`v1.34.3-k3s1`).
    pub k3s: ImageRef,
    /// vCluster's syncer (the open-source build).
    pub vcluster: ImageRef,
    /// The Kubernetes binaries a vcluster runs; an empty tag means the control plane's
    /// `spec.kubernetesVersion`, else [`VCLUSTER_KUBERNETES_VERSION`].
    pub vcluster_kubernetes: ImageRef,
}

/// The Kubernetes version vCluster 0.36 runs by default. vcluster control planes do not follow
/// the `kubernetesVersion` setting: Loft publishes its Kubernetes image for selected patch
/// releases only.
pub const VCLUSTER_KUBERNETES_VERSION: &str = "v1.36.0";

impl Default for Images {
    fn default() -> Self {
        let image = |repository: &str, tag: &str| ImageRef {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            digest: String::new(),
        };
        Self {
            kflex: image("ghcr.io/kubestellar/kflex", env!("CARGO_PKG_VERSION")),
            kube_apiserver: image("registry.k8s.io/kube-apiserver", ""),
            kube_controller_manager: image("registry.k8s.io/kube-controller-manager", ""),
            kine: image("docker.io/rancher/kine", "v0.14.14"),
            postgres: image("docker.io/library/postgres", "17.6"),
            k3s: image("docker.io/rancher/k3s", ""),
            vcluster: image("ghcr.io/loft-sh/vcluster-oss", "0.36.1"),
            vcluster_kubernetes: image("ghcr.io/loft-sh/kubernetes", ""),
        }
    }
}

impl ImageRef {
    /// The full reference, with `mirror` (if non-empty) replacing the registry and `default_tag`
    /// used when no tag is configured.
    pub fn reference(&self, mirror: &str, default_tag: &str) -> String {
        let repository = if mirror.is_empty() {
            self.repository.clone()
        } else {
            format!(
                "{}/{}",
                mirror.trim_end_matches('/'),
                path_without_registry(&self.repository)
            )
        };
        let tag = if self.tag.is_empty() {
            default_tag
        } else {
            &self.tag
        };
        let mut reference = repository;
        if !tag.is_empty() {
            reference.push(':');
            reference.push_str(tag);
        }
        if !self.digest.is_empty() {
            reference.push('@');
            reference.push_str(&self.digest);
        }
        reference
    }
}

/// `registry.k8s.io/kube-apiserver` → `kube-apiserver`; `rancher/kine` → `rancher/kine`. The first
/// component is a registry when it looks like a host (the rule Docker uses).
fn path_without_registry(repository: &str) -> &str {
    match repository.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            rest
        }
        _ => repository,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(repository: &str, tag: &str, digest: &str) -> ImageRef {
        ImageRef {
            repository: repository.into(),
            tag: tag.into(),
            digest: digest.into(),
        }
    }

    #[test]
    fn empty_tag_takes_the_default() {
        let i = image("registry.k8s.io/kube-apiserver", "", "");
        assert_eq!(
            i.reference("", "v1.34.3"),
            "registry.k8s.io/kube-apiserver:v1.34.3"
        );
        let i = image("registry.k8s.io/kube-apiserver", "v1.33.0", "");
        assert_eq!(
            i.reference("", "v1.34.3"),
            "registry.k8s.io/kube-apiserver:v1.33.0"
        );
    }

    #[test]
    fn a_mirror_replaces_only_the_registry() {
        let mirror = "mirror.corp:5000/hub";
        assert_eq!(
            image("docker.io/rancher/kine", "v1", "").reference(mirror, ""),
            "mirror.corp:5000/hub/rancher/kine:v1"
        );
        assert_eq!(
            image("rancher/kine", "v1", "").reference(mirror, ""),
            "mirror.corp:5000/hub/rancher/kine:v1"
        );
        assert_eq!(
            image("localhost/kflex", "dev", "").reference("m.io/", ""),
            "m.io/kflex:dev"
        );
    }

    #[test]
    fn a_digest_pins_the_image() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            image("docker.io/library/postgres", "17.6", &digest).reference("", ""),
            format!("docker.io/library/postgres:17.6@{digest}")
        );
    }
}
