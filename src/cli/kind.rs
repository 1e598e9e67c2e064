//! A kind cluster for trying kflex (`kflex init --create-kind`): one node labelled
//! `ingress-ready`, ports 80 and 443 published on the machine (443 at kflex's external port),
//! and ingress-nginx with TLS passthrough, from a manifest embedded in kflex (nothing is
//! downloaded by kflex; the cluster pulls its images).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use kflex_core::manifest::Manifest;

/// The default cluster name: context `kind-kubeflex`, node `kubeflex-control-plane`, which is
/// the default `hostContainer` (KubeFlex's `kind-kubeflex` made them disagree).
pub const DEFAULT_CLUSTER: &str = "kubeflex";

/// ingress-nginx for kind, with `--enable-ssl-passthrough` (control planes' API servers
/// terminate their own TLS).
const INGRESS_NGINX: &str = include_str!("kind/ingress-nginx.yaml");

/// The cluster to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    /// Where the machine reaches the ingress controller's port 443.
    pub external_port: u16,
}

impl Cluster {
    /// kind's name for the node's container.
    pub fn node_container(&self) -> String {
        format!("{}-control-plane", self.name)
    }

    /// kind's cluster configuration.
    pub fn config(&self) -> String {
        format!(
            "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  ipFamily: dual
nodes:
- role: control-plane
  kubeadmConfigPatches:
  - |
    kind: InitConfiguration
    nodeRegistration:
      kubeletExtraArgs:
        node-labels: \"ingress-ready=true\"
  extraPortMappings:
  - containerPort: 80
    hostPort: 9080
    protocol: TCP
  - containerPort: 443
    hostPort: {}
    protocol: TCP
",
            self.external_port
        )
    }
}

/// The context kind writes for cluster `name`.
pub fn context(name: &str) -> String {
    format!("kind-{name}")
}

/// Creates the cluster unless kind already has one of that name; kind writes its context into
/// `kubeconfig` and makes it current.
pub fn create(cluster: &Cluster, kubeconfig: &Path) -> anyhow::Result<()> {
    let listed = Command::new("kind")
        .args(["get", "clusters"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "--create-kind needs `kind` on PATH (https://kind.sigs.k8s.io/docs/user/quick-start/#installation); \
                 nothing was changed"
            ),
            _ => anyhow::Error::from(err).context("running `kind get clusters`"),
        })?;
    if !listed.status.success() {
        bail!(
            "`kind get clusters` failed ({}); nothing was changed",
            listed.status
        );
    }
    let existing = String::from_utf8_lossy(&listed.stdout);
    // Whole lines: KubeFlex's substring match took `kubeflex2` for `kubeflex`.
    if existing.lines().any(|line| line.trim() == cluster.name) {
        eprintln!("kind cluster {:?} exists already; using it", cluster.name);
        let status = Command::new("kind")
            .args([
                "export",
                "kubeconfig",
                "--name",
                &cluster.name,
                "--kubeconfig",
            ])
            .arg(kubeconfig)
            .status()
            .context("running `kind export kubeconfig`")?;
        if !status.success() {
            bail!(
                "`kind export kubeconfig --name {}` failed ({status})",
                cluster.name
            );
        }
        return Ok(());
    }
    eprintln!("creating kind cluster {:?}", cluster.name);
    let mut child = Command::new("kind")
        .args([
            "create",
            "cluster",
            "--name",
            &cluster.name,
            "--config",
            "-",
            "--kubeconfig",
        ])
        .arg(kubeconfig)
        .stdin(Stdio::piped())
        .spawn()
        .context("running `kind create cluster`")?;
    child
        .stdin
        .take()
        .context("kind's standard input")?
        .write_all(cluster.config().as_bytes())
        .context("giving kind its configuration")?;
    let status = child.wait().context("waiting for `kind create cluster`")?;
    if !status.success() {
        bail!(
            "`kind create cluster --name {}` failed ({status}); `kind delete cluster --name {}` \
             removes what it left",
            cluster.name,
            cluster.name
        );
    }
    Ok(())
}

/// Loads `image` from this machine's container engine into cluster `name`'s node, so pods run
/// an image built here without a registry.
pub fn load_image(name: &str, image: &str) -> anyhow::Result<()> {
    eprintln!("loading image {image} into kind cluster {name:?}");
    let status = Command::new("kind")
        .args(["load", "docker-image", image, "--name", name])
        .status()
        .context("running `kind load docker-image`")?;
    if !status.success() {
        bail!(
            "`kind load docker-image {image} --name {name}` failed ({status}); is the image built \
             on this machine? `podman build -f Containerfile -t {image} .` (or docker build) in \
             the repository builds it"
        );
    }
    Ok(())
}

/// The embedded ingress-nginx objects, in order.
pub fn ingress_nginx() -> anyhow::Result<Vec<Manifest>> {
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(INGRESS_NGINX)
        .context("the embedded ingress-nginx manifest")?;
    documents
        .into_iter()
        .filter(|document| !document.is_null())
        .map(|document| {
            Manifest::new("kind/ingress-nginx.yaml", document)
                .context("the embedded ingress-nginx manifest")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_config_publishes_the_external_port_and_labels_the_node() {
        let cluster = Cluster {
            name: DEFAULT_CLUSTER.into(),
            external_port: 9443,
        };
        let config: serde_json::Value = serde_saphyr::from_str(&cluster.config()).unwrap();
        let node = &config["nodes"][0];
        assert_eq!(node["extraPortMappings"][1]["containerPort"], 443);
        assert_eq!(node["extraPortMappings"][1]["hostPort"], 9443);
        assert!(
            node["kubeadmConfigPatches"][0]
                .as_str()
                .unwrap()
                .contains("ingress-ready=true")
        );
        assert_eq!(cluster.node_container(), "kubeflex-control-plane");
        assert_eq!(
            cluster.node_container(),
            kflex_core::settings::Settings::default().host_container,
            "the default kind node is the default hostContainer"
        );
    }

    #[test]
    fn the_embedded_ingress_nginx_passes_tls_through() {
        let objects = ingress_nginx().unwrap();
        let deployment = objects
            .iter()
            .find(|object| object.kind() == "Deployment")
            .unwrap();
        let args = deployment.object()["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap();
        assert!(args.iter().any(|arg| arg == "--enable-ssl-passthrough"));
        assert!(objects.iter().any(|object| object.kind() == "IngressClass"));
        assert_eq!(objects[0].kind(), "Namespace", "the namespace comes first");
    }
}
