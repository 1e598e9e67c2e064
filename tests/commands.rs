//! The people-facing commands (init up to its waits, and for switching the datastore; the rest
//! of it in tests/e2e) run as a user runs them (the `kflex` binary, its own process) against
//! kflex-testkit's fake API over HTTP. The test plays the cluster's side: it answers
//! for the controller where a command waits for one (status, the kubeconfig Secret), or runs
//! the real controller in-process where the command's answer depends on what it applies
//! (`diff`). Against a real cluster, tests/e2e runs them too.

#[path = "support/within.rs"]
mod time_limit;
use time_limit::within;

#[path = "commands/init.rs"]
mod init;

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use kflex::controller::context::Options;
use kflex::controller::metrics::Metrics;
use kflex::controller::run::{Running, run_controller};
use kflex_testkit::{FakeApi, eventually};
use serde_json::{Value, json};

const GROUP: &str = "tenancy.kflex.kubestellar.org";

struct Cluster {
    fake: FakeApi,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let fake = FakeApi::new();
        // kflex is installed there: its configuration exists (every setting at its default).
        fake.put_kflex_config(json!({}));
        let address = fake.serve_http().await.expect("test setup");
        let dir = tempfile::tempdir().expect("test setup");
        std::fs::write(dir.path().join("config"), FakeApi::kubeconfig(address))
            .expect("test setup");
        Self { fake, dir }
    }

    fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn kubeconfig(&self) -> Value {
        serde_saphyr::from_str(
            &std::fs::read_to_string(self.kubeconfig_path()).expect("test setup"),
        )
        .expect("test setup")
    }

    /// Runs `kflex ARGS` in its own process, off the runtime serving the fake.
    async fn kflex(&self, args: &[&str]) -> Output {
        let mut command = Command::cargo_bin("kflex").expect("test setup");
        command
            .env_clear()
            .env("KUBECONFIG", self.kubeconfig_path())
            .current_dir(self.dir.path())
            .args(args)
            .timeout(Duration::from_secs(60));
        tokio::task::spawn_blocking(move || command.output().expect("test setup"))
            .await
            .expect("the command ran")
    }

    fn control_plane(&self, name: &str) -> Option<Value> {
        self.fake.get(GROUP, "controlplanes", None, name)
    }

    /// What the controller would write once `name` is up: its status and kubeconfig Secret.
    fn make_ready(&self, name: &str, secret: Option<(&str, &str, &str)>) {
        let generation =
            self.control_plane(name).expect("test setup")["metadata"]["generation"].clone();
        let (secret_name, key, kubeconfig) = secret.unwrap_or(("admin-kubeconfig", "", ""));
        if !key.is_empty() {
            self.fake.put(
                "",
                "secrets",
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": secret_name, "namespace": format!("{name}-system")},
                       "data": {key: base64(kubeconfig)}}),
            );
        }
        self.fake.edit(
            GROUP,
            "controlplanes",
            None,
            name,
            &json!({"status": {
                "observedGeneration": generation,
                "conditions": [condition("Synced", "True", "ReconcileSuccess", ""),
                               condition("Ready", "True", "Available", "")],
                "secretRef": {"namespace": format!("{name}-system"), "name": secret_name,
                              "key": key, "inClusterKey": "kubeconfig-incluster"}
            }}),
        );
    }

    /// Runs `kflex create ARGS` and, once the ControlPlane exists, answers as the controller
    /// would when it is up (see [`Cluster::make_ready`]).
    async fn create_and_make_ready(
        &self,
        args: &[&str],
        name: &str,
        secret: Option<(&str, &str, &str)>,
    ) -> Output {
        let answer = async {
            self.created(name).await;
            self.make_ready(name, secret);
        };
        let (output, ()) = tokio::join!(self.kflex(args), answer);
        output
    }

    /// Waits until ControlPlane `name` exists (created by a running command).
    async fn created(&self, name: &str) {
        eventually(&format!("ControlPlane {name} created"), || {
            self.control_plane(name).is_some()
        })
        .await;
    }
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-11-21T00:00:00Z", "lastUpdateTime": "2026-11-21T00:00:00Z"})
}

fn named<'a>(document: &'a Value, section: &str, name: &str) -> Option<&'a Value> {
    document[section]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == name)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const SERVED_KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: cp1-cluster
  cluster:
    server: https://cp1.localtest.me:9443
    certificate-authority-data: Y2E=
users:
- name: cp1-admin
  user:
    token: cp1-token
contexts:
- name: cp1
  context:
    cluster: cp1-cluster
    user: cp1-admin
current-context: cp1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_prints_a_table_and_stable_json() {
    within(async move {
        let cluster = Cluster::start().await;
        let empty = cluster.kflex(&["list"]).await;
        assert!(empty.status.success(), "{}", stderr(&empty));
        assert!(stderr(&empty).contains("No control planes found."));
        for (name, type_) in [("zeta", "k3s"), ("alpha", "host")] {
            cluster.fake.put(
                GROUP,
                "controlplanes",
                json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
                   "metadata": {"name": name}, "spec": {"type": type_}}),
            );
        }
        cluster.fake.edit(
            GROUP,
            "controlplanes",
            None,
            "zeta",
            &json!({"status": {"observedGeneration": 1, "conditions": [
                condition("Synced", "True", "ReconcileSuccess", ""),
                condition("Ready", "False", "Unavailable", "StatefulSet k3s-server is not ready"),
            ]}}),
        );
        let table = cluster.kflex(&["list"]).await;
        let table = String::from_utf8(table.stdout).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        let columns = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            columns(lines[0]),
            ["NAME", "SYNCED", "READY", "TYPE", "AGE"],
            "{table}"
        );
        assert_eq!(
            columns(lines[1]),
            ["alpha", "Unknown", "Unknown", "host", "-"],
            "{table}"
        );
        assert_eq!(
            columns(lines[2]),
            ["zeta", "True", "False", "k3s", "-"],
            "{table}"
        );
        let json_output = cluster.kflex(&["list", "-o", "json"]).await;
        let rows: Value = serde_json::from_slice(&json_output.stdout).unwrap();
        assert_eq!(rows[1]["name"], "zeta");
        assert_eq!(rows[1]["ready"], "False");
        assert_eq!(
            rows[1]["message"],
            "Unavailable: StatefulSet k3s-server is not ready"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_a_missing_hook_fails_and_creates_nothing() {
    within(async move {
        let cluster = Cluster::start().await;
        let before = std::fs::read(cluster.kubeconfig_path()).unwrap();
        let output = cluster
            .kflex(&["create", "cp1", "-p", "nonexistent", "--set", "a=b"])
            .await;
        assert_eq!(output.status.code(), Some(1), "KubeFlex #235: not 0");
        assert!(
            stderr(&output).contains("PostCreateHook nonexistent does not exist"),
            "{}",
            stderr(&output)
        );
        assert!(cluster.control_plane("cp1").is_none());
        assert_eq!(std::fs::read(cluster.kubeconfig_path()).unwrap(), before);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_an_invalid_name_before_talking_to_the_cluster() {
    within(async move {
        let cluster = Cluster::start().await;
        let output = cluster.kflex(&["create", "kube"]).await;
        assert!(!output.status.success());
        assert!(
            stderr(&output).contains("metadata.name"),
            "{}",
            stderr(&output)
        );
        assert!(cluster.fake.log().is_empty(), "no request was made");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_waits_for_ready_merges_the_kubeconfig_and_switches_to_it() {
    within(async move {
        let cluster = Cluster::start().await;
        let command = cluster.kflex(&["create", "cp1", "--timeout", "50s"]);
        let answer = async {
            cluster.created("cp1").await;
            // Still waiting: it looked at the ControlPlane twice and found it not Ready yet.
            eventually("create looking at cp1 twice", || {
                cluster
                    .fake
                    .log()
                    .iter()
                    .filter(|r| {
                        r.method == http::Method::GET && r.path.ends_with("/controlplanes/cp1")
                    })
                    .count()
                    >= 2
            })
            .await;
            cluster.make_ready(
                "cp1",
                Some(("admin-kubeconfig", "kubeconfig", SERVED_KUBECONFIG)),
            );
        };
        let (output, ()) = tokio::join!(command, answer);
        assert!(output.status.success(), "{}", stderr(&output));
        let created = cluster.control_plane("cp1").unwrap();
        assert_eq!(created["spec"]["type"], "k8s");
        assert_eq!(created["spec"]["backend"], "shared");
        let kubeconfig = cluster.kubeconfig();
        assert_eq!(kubeconfig["current-context"], "cp1");
        let context = named(&kubeconfig, "contexts", "cp1").unwrap();
        assert_eq!(context["context"]["cluster"], "cp1-cluster");
        assert_eq!(context["context"]["user"], "cp1-admin");
        assert_eq!(
            named(&kubeconfig, "clusters", "cp1-cluster").unwrap()["cluster"]["server"],
            "https://cp1.localtest.me:9443"
        );
        assert_eq!(
            named(&kubeconfig, "users", "cp1-admin").unwrap()["user"]["token"],
            "cp1-token"
        );
        let extension = &context["context"]["extensions"][0]["extension"]["data"];
        assert_eq!(extension["controlplane-name"], "cp1");
        let global = &kubeconfig["extensions"][0]["extension"]["data"];
        assert_eq!(global["hosting-cluster-ctx-name"], "fake");

        // `kflex ctx` goes back to the hosting cluster; `kflex ctx cp1` comes again.
        assert!(cluster.kflex(&["ctx"]).await.status.success());
        assert_eq!(cluster.kubeconfig()["current-context"], "fake");
        assert!(cluster.kflex(&["ctx", "cp1"]).await.status.success());
        assert_eq!(cluster.kubeconfig()["current-context"], "cp1");

        // A stale entry stays on a plain switch; `-o` fetches the kubeconfig again.
        let server = |kubeconfig: &Value| {
            named(kubeconfig, "clusters", "cp1-cluster").unwrap()["cluster"]["server"].clone()
        };
        let text = std::fs::read_to_string(cluster.kubeconfig_path()).unwrap();
        let stale = text.replace(
            "https://cp1.localtest.me:9443",
            "https://stale.example:6443",
        );
        assert_ne!(stale, text);
        std::fs::write(cluster.kubeconfig_path(), stale).unwrap();
        assert!(cluster.kflex(&["ctx", "cp1"]).await.status.success());
        assert_eq!(server(&cluster.kubeconfig()), "https://stale.example:6443");
        let refetched = cluster.kflex(&["ctx", "cp1", "-o"]).await;
        assert!(refetched.status.success(), "{}", stderr(&refetched));
        let kubeconfig = cluster.kubeconfig();
        assert_eq!(server(&kubeconfig), "https://cp1.localtest.me:9443");
        assert_eq!(kubeconfig["current-context"], "cp1");
        assert_eq!(
            kubeconfig["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["name"] == "cp1-cluster")
                .count(),
            1
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_reports_the_controllers_refusal_and_exits_non_zero() {
    within(async move {
    let cluster = Cluster::start().await;
    let command = cluster.kflex(&["create", "cp1", "--type", "vcluster"]);
    let answer = async {
        cluster.created("cp1").await;
        cluster.fake.edit(
            GROUP,
            "controlplanes",
            None,
            "cp1",
            &json!({"status": {"observedGeneration": 1, "conditions": [
                condition("Synced", "False", "ReconcileError", "hook hello: template line 3: undefined variable"),
            ]}}),
        );
    };
    let (output, ()) = tokio::join!(command, answer);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("ReconcileError: hook hello: template line 3: undefined variable"),
        "{message}"
    );
    assert!(message.contains("kflex delete cp1"), "{message}");
    assert_ne!(cluster.kubeconfig()["current-context"], "cp1");
    })
    .await;
}

/// Without the hosting cluster's configuration, rendering "as the controller would" would
/// silently use the defaults; the controller refuses (ConfigMissing), and so do the commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_diff_refuse_without_the_configuration() {
    within(async move {
        let body = async {
            let cluster = Cluster::start().await;
            let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                kube::Api::namespaced(cluster.fake.client(), "kubeflex-system");
            config_maps
                .delete("kubeflex-config", &Default::default())
                .await
                .expect("deleted");
            let says_why = |output: &Output| {
                let message = stderr(output);
                assert!(
                    message.contains("ConfigMap kubeflex-system/kubeflex-config does not exist")
                        && message.contains("kflex init"),
                    "{message}"
                );
            };
            let created = cluster.kflex(&["create", "cp1", "--wait=false"]).await;
            assert_eq!(created.status.code(), Some(1));
            says_why(&created);
            assert!(cluster.control_plane("cp1").is_none(), "nothing created");

            cluster.fake.put(
                GROUP,
                "controlplanes",
                json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
                   "metadata": {"name": "cp1"}, "spec": {"type": "k8s"}}),
            );
            let diffed = cluster.kflex(&["diff", "cp1"]).await;
            assert_eq!(diffed.status.code(), Some(2), "an error, not a difference");
            assert!(diffed.stdout.is_empty());
            says_why(&diffed);
        };
        tokio::time::timeout(Duration::from_secs(120), body)
            .await
            .expect("the test finished within two minutes");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_host_gives_a_context_that_reaches_the_hosting_cluster() {
    within(async move {
        let cluster = Cluster::start().await;
        let output = cluster
            .create_and_make_ready(&["create", "edge", "--type", "host"], "edge", None)
            .await;
        assert!(output.status.success(), "{}", stderr(&output));
        let kubeconfig = cluster.kubeconfig();
        assert_eq!(kubeconfig["current-context"], "edge");
        let hosting_server =
            named(&kubeconfig, "clusters", "fake").unwrap()["cluster"]["server"].clone();
        assert_eq!(
            named(&kubeconfig, "clusters", "edge-cluster").unwrap()["cluster"]["server"],
            hosting_server
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_without_waiting_returns_once_created() {
    within(async move {
        let cluster = Cluster::start().await;
        let output = cluster.kflex(&["create", "cp1", "--wait=false"]).await;
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(cluster.control_plane("cp1").is_some());
        assert_eq!(cluster.kubeconfig()["current-context"], "fake");
        let again = cluster.kflex(&["create", "cp1", "--wait=false"]).await;
        assert!(!again.status.success());
        assert!(
            stderr(&again).contains("exists already"),
            "{}",
            stderr(&again)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_control_plane_and_its_context() {
    within(async move {
        let cluster = Cluster::start().await;
        let served = Some(("admin-kubeconfig", "kubeconfig", SERVED_KUBECONFIG));
        let output = cluster
            .create_and_make_ready(&["create", "cp1"], "cp1", served)
            .await;
        assert!(output.status.success(), "{}", stderr(&output));
        let output = cluster.kflex(&["delete", "cp1"]).await;
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(cluster.control_plane("cp1").is_none());
        let kubeconfig = cluster.kubeconfig();
        assert!(named(&kubeconfig, "contexts", "cp1").is_none());
        assert!(named(&kubeconfig, "clusters", "cp1-cluster").is_none());
        assert!(named(&kubeconfig, "users", "cp1-admin").is_none());
        assert_eq!(
            kubeconfig["current-context"], "fake",
            "back on the hosting cluster"
        );

        let missing = cluster.kflex(&["delete", "cp1"]).await;
        assert!(!missing.status.success());
        assert!(
            stderr(&missing).contains("no ControlPlane cp1"),
            "{}",
            stderr(&missing)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_stores_a_self_contained_kubeconfig_and_creates_the_control_plane() {
    within(async move {
    let cluster = Cluster::start().await;
    let dir = cluster.dir.path();
    std::fs::create_dir(dir.join("certs")).unwrap();
    std::fs::write(dir.join("certs/ca.crt"), "CA PEM").unwrap();
    std::fs::write(
        dir.join("edge.yaml"),
        "clusters:\n- name: kind-edge\n  cluster:\n    server: https://127.0.0.1:40123\n    certificate-authority: certs/ca.crt\n\
         users:\n- name: kind-edge\n  user:\n    token: edge-admin-token\n\
         contexts:\n- name: kind-edge\n  context:\n    cluster: kind-edge\n    user: kind-edge\n",
    )
    .unwrap();
    let loopback = cluster
        .kflex(&[
            "adopt",
            "edge",
            "-a",
            "edge.yaml",
            "-c",
            "kind-edge",
            "--wait=false",
        ])
        .await;
    assert!(!loopback.status.success());
    assert!(
        stderr(&loopback).contains("--url-override"),
        "{}",
        stderr(&loopback)
    );
    assert!(cluster.control_plane("edge").is_none());
    assert!(
        cluster
            .fake
            .get("", "secrets", Some("kubeflex-system"), "edge-bootstrap")
            .is_none(),
        "nothing half-done"
    );

    let output = cluster
        .kflex(&[
            "adopt",
            "edge",
            "-a",
            "edge.yaml",
            "-c",
            "kind-edge",
            "--url-override",
            "https://edge-control-plane:6443",
            "--wait=false",
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let cp = cluster.control_plane("edge").unwrap();
    assert_eq!(cp["spec"]["type"], "external");
    assert_eq!(
        cp["spec"]["bootstrapSecretRef"],
        json!({"name": "edge-bootstrap", "namespace": "kubeflex-system", "inClusterKey": "kubeconfig-incluster"})
    );
    let secret = cluster
        .fake
        .get("", "secrets", Some("kubeflex-system"), "edge-bootstrap")
        .unwrap();
    let stored: Value = serde_saphyr::from_str(
        secret["stringData"]["kubeconfig-incluster"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let stored_cluster = &stored["clusters"][0]["cluster"];
    assert_eq!(stored_cluster["server"], "https://edge-control-plane:6443");
    assert_eq!(
        stored_cluster["certificate-authority-data"],
        base64("CA PEM")
    );
    assert!(stored_cluster.get("certificate-authority").is_none());
    assert_eq!(stored["users"][0]["user"]["token"], "edge-admin-token");
    assert_eq!(stored["current-context"], "kind-edge");
    // The adopted cluster's credentials go when the ControlPlane goes (garbage collection).
    let owners = secret["metadata"]["ownerReferences"].as_array().unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0]["kind"], "ControlPlane");
    assert_eq!(owners[0]["name"], "edge");
    assert_eq!(owners[0]["uid"], cp["metadata"]["uid"]);
    assert!(
        !cp["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_is_empty_once_the_controller_applied_and_shows_drift() {
    within(async move {
    let cluster = Cluster::start().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(run_controller(
        cluster.fake.client(),
        Running {
            system_namespace: "kubeflex-system".into(),
            concurrency: 2,
            options: Options::default(),
            identity: "test".into(),
        },
        Arc::new(Metrics::default()),
        async move {
            let _ = stopped.await;
        },
    ));
    let output = cluster.kflex(&["create", "cp1", "--wait=false"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    eventually("ControlPlane cp1 Synced", || {
        cluster.control_plane("cp1").is_some_and(|cp| {
            cp["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Synced" && c["status"] == "True")
            })
        })
    })
    .await;
    let _ = stop.send(());
    let _ = controller.await;

    let clean = cluster.kflex(&["diff", "cp1"]).await;
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&clean.stdout),
        stderr(&clean)
    );
    assert!(clean.stdout.is_empty());
    let stored_writes = |fake: &FakeApi| {
        fake.writes()
            .iter()
            .filter(|write| !write.query.contains("dryRun"))
            .count()
    };
    let writes = stored_writes(&cluster.fake);

    cluster.fake.edit(
        "apps",
        "deployments",
        Some("cp1-system"),
        "kube-apiserver",
        &json!({"spec": {"replicas": 3}}),
    );
    // A Job's template the API cannot change in place: the controller would replace the Job.
    cluster.fake.edit(
        "batch",
        "jobs",
        Some("cp1-system"),
        "kflex-bootstrap",
        &json!({"spec": {"template": {"metadata": {"annotations": {"edited": "by hand"}}}}}),
    );
    let drifted = cluster.kflex(&["diff", "cp1"]).await;
    assert_eq!(drifted.status.code(), Some(1), "{}", stderr(&drifted));
    let text = String::from_utf8(drifted.stdout).unwrap();
    assert!(
        text.contains("--- live/Deployment.apps/cp1-system/kube-apiserver"),
        "{text}"
    );
    assert!(
        text.contains("-  replicas: 3") && text.contains("+  replicas: 1"),
        "{text}"
    );
    assert!(
        text.contains("--- live/Job.batch/cp1-system/kflex-bootstrap (deleted and created again)")
            && text.contains("-        edited: by hand"),
        "{text}"
    );
    assert!(!text.contains("\x1b["), "no colour off a terminal");
    assert_eq!(
        stored_writes(&cluster.fake),
        writes,
        "diff wrote nothing (dry runs only)"
    );

    // A member of the ApplySet the rendered set no longer holds is shown as removed.
    cluster.fake.put(
        "",
        "serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "stray", "namespace": "cp1-system", "labels": {
                   "applyset.kubernetes.io/part-of": kflex::cluster::ownership::applyset_id("cp1")}}}),
    );
    // What the controller would not delete, whatever the ControlPlane's annotations list, is
    // not shown as removed but named on stderr: a labelled object in another namespace, and a
    // Secret of the system namespace named by a forged annotation.
    cluster.fake.put(
        "",
        "serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "elsewhere", "namespace": "default", "labels": {
                   "applyset.kubernetes.io/part-of": kflex::cluster::ownership::applyset_id("cp1")}}}),
    );
    cluster.fake.put(
        "",
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "postgres-postgresql", "namespace": "kubeflex-system"}}),
    );
    let kinds = cluster.control_plane("cp1").unwrap()["metadata"]["annotations"]
        ["applyset.kubernetes.io/contains-group-kinds"]
        .as_str()
        .unwrap()
        .to_owned();
    cluster.fake.edit(
        GROUP,
        "controlplanes",
        None,
        "cp1",
        &json!({"metadata": {"annotations": {
            "applyset.kubernetes.io/contains-group-kinds": format!("{kinds},Secret"),
            "kflex.kubestellar.org/secrets": "kubeflex-system/postgres-postgresql"}}}),
    );
    let pruned = cluster.kflex(&["diff", "cp1"]).await;
    let warnings = stderr(&pruned);
    let text = String::from_utf8(pruned.stdout).unwrap();
    assert!(
        text.contains("--- live/ServiceAccount/cp1-system/stray")
            && text.contains("-  name: stray"),
        "{text}"
    );
    assert!(
        !text.contains("elsewhere") && !text.contains("postgres-postgresql"),
        "{text}"
    );
    assert!(
        warnings.contains("ServiceAccount default/elsewhere is listed as a member of ControlPlane cp1 but is not deleted")
            && warnings.contains("Secret kubeflex-system/postgres-postgresql is listed"),
        "{warnings}"
    );

    let missing = cluster.kflex(&["diff", "nope"]).await;
    assert_eq!(
        missing.status.code(),
        Some(2),
        "errors exit 2, like kubectl diff"
    );
    })
    .await;
}

#[test]
fn every_command_for_people_has_help_with_examples() {
    for command in [
        "init",
        "create",
        "adopt",
        "list",
        "ctx",
        "diff",
        "delete",
        "backup",
        "restore",
        "render",
        "config",
        "version",
        "completion",
    ] {
        let output = Command::cargo_bin("kflex")
            .unwrap()
            .env_clear()
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{command}");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(
            help.contains("Examples:") && help.contains(&format!("kflex {command}")),
            "{command}: {help}"
        );
        assert!(
            !help.contains("\x1b["),
            "{command}: no colour off a terminal"
        );
    }
}

/// The PostCreateHooks the repository ships (examples/), by name.
fn shipped_hooks() -> Vec<String> {
    fn walk(dir: &std::path::Path, names: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("readable") {
            let path = entry.expect("readable").path();
            if path.is_dir() {
                walk(&path, names);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).expect("readable");
                for document in serde_saphyr::from_multiple::<Value>(&text).expect("YAML") {
                    if document["kind"] == "PostCreateHook" {
                        names.push(document["metadata"]["name"].as_str().expect("named").into());
                    }
                }
            }
        }
    }
    let mut names = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"),
        &mut names,
    );
    names
}

/// Every example in the commands' help is a command line kflex accepts, and a hook it names
/// (`-p`) is one the repository ships, so copying an example never fails on a missing hook.
#[test]
fn help_examples_are_accepted_and_name_shipped_hooks() {
    let hooks = shipped_hooks();
    assert!(hooks.iter().any(|h| h == "tenant-namespaces"), "{hooks:?}");
    let mut checked = 0;
    for command in [
        "init",
        "create",
        "adopt",
        "list",
        "ctx",
        "diff",
        "delete",
        "backup",
        "restore",
        "render",
        "config",
        "version",
        "completion",
    ] {
        let output = Command::cargo_bin("kflex")
            .unwrap()
            .env_clear()
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8(output.stdout).unwrap();
        let examples = help.split_once("Examples:").map_or("", |(_, rest)| rest);
        for line in examples.lines() {
            let Some(example) = line.trim().strip_prefix("kflex ") else {
                continue;
            };
            // The command alone: no comment, no pipe or redirection after it.
            let example = example.split("  #").next().unwrap_or_default();
            let example = example.split(['|', '>']).next().unwrap_or_default();
            let words: Vec<&str> = example.split_whitespace().collect();
            kflex::cli::accepts(&words).unwrap_or_else(|e| panic!("kflex {example}: {e}"));
            for pair in words.windows(2) {
                if matches!(pair[0], "-p" | "--postcreate-hook") {
                    assert!(
                        hooks.iter().any(|h| h == pair[1]),
                        "kflex {example}: kflex ships no hook {:?} ({hooks:?})",
                        pair[1]
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked} examples");
}

#[test]
fn completion_scripts_cover_the_commands() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef kflex"),
        ("fish", "complete -c kflex"),
    ] {
        let output = Command::cargo_bin("kflex")
            .unwrap()
            .env_clear()
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains(marker), "{shell}");
        assert!(
            script.contains("adopt") && script.contains("set-hosting"),
            "{shell}"
        );
    }
}

#[test]
fn version_without_a_cluster_says_so_and_succeeds() {
    let output = Command::cargo_bin("kflex")
        .unwrap()
        .env_clear()
        .env("KUBECONFIG", "/nonexistent/config")
        .arg("version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(
        stdout,
        format!("kflex version: {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        stderr(&output).contains("not reachable"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn init_create_kind_without_kind_fails_clearly_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("kflex")
        .unwrap()
        .env_clear()
        .env("PATH", dir.path())
        .env("KUBECONFIG", dir.path().join("config"))
        .args(["init", "--create-kind"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("needs `kind` on PATH"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("config").exists(), "no kubeconfig written");
}

/// A `kind` that records its command lines in `log` and does what kflex needs: lists no
/// clusters, "creates" one by writing a kubeconfig whose server refuses connections, and loads
/// images with exit status `KIND_LOAD_STATUS`. Only shell builtins: PATH holds this alone.
#[cfg(unix)]
fn fake_kind(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let script = r#"#!/bin/sh
echo "$*" >> "$KIND_LOG"
case "$1 $2" in
  "get clusters") exit 0 ;;
  "create cluster")
    while read -r _; do :; done
    while [ $# -gt 0 ]; do [ "$1" = --kubeconfig ] && out="$2"; shift; done
    printf 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: kind-kubeflex, context: {cluster: c, user: u}}]\ncurrent-context: kind-kubeflex\n' > "$out"
    exit 0 ;;
  "load docker-image") exit "${KIND_LOAD_STATUS:-0}" ;;
esac
exit 3
"#;
    let path = dir.join("kind");
    std::fs::write(&path, script).expect("test setup");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("test setup");
}

#[cfg(unix)]
#[test]
fn init_create_kind_loads_the_kflex_image_it_renders() {
    let run = |load_status: &str, args: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        fake_kind(dir.path());
        let output = Command::cargo_bin("kflex")
            .unwrap()
            .env_clear()
            .env("PATH", dir.path())
            .env("KIND_LOG", dir.path().join("log"))
            .env("KIND_LOAD_STATUS", load_status)
            .env("KUBECONFIG", dir.path().join("config"))
            .args(["init", "--create-kind", "--load-image"])
            .args(args)
            .output()
            .unwrap();
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        (output, log)
    };
    let version = env!("CARGO_PKG_VERSION");
    let (output, log) = run("0", &[]);
    // After the image is loaded kflex goes on to install, and finds no API server (the fake's).
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("127.0.0.1:1"),
        "{}",
        stderr(&output)
    );
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[1].starts_with("create cluster --name kubeflex"),
        "{log}"
    );
    assert_eq!(
        lines[2],
        format!("load docker-image ghcr.io/kubestellar/kflex:{version} --name kubeflex")
    );
    // The image the pods would run, mirror included; a failed load says how to build it.
    let (output, log) = run("1", &["--set", "imageRegistry=mirror.example.com"]);
    assert_eq!(output.status.code(), Some(1));
    let image = format!("mirror.example.com/kubestellar/kflex:{version}");
    assert!(
        log.ends_with(&format!("load docker-image {image} --name kubeflex\n")),
        "{log}"
    );
    assert!(
        stderr(&output).contains(&format!(
            "failed (exit status: 1); is the image built on this machine? `podman build -f \
             Containerfile -t {image} .`"
        )),
        "{}",
        stderr(&output)
    );
    // A digest cannot be loaded: refused before kind is run.
    let digest = format!("images.kflex.digest=sha256:{}", "a".repeat(64));
    let (output, log) = run("0", &["--set", &digest]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--load-image loads a tag"),
        "{}",
        stderr(&output)
    );
    assert_eq!(log, "", "kind was not run");
    let (output, log) = run("0", &["--set", "imagePullPolicy=Always"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("imagePullPolicy Always"),
        "{}",
        stderr(&output)
    );
    assert_eq!(log, "", "kind was not run");
}

#[test]
fn load_image_needs_create_kind() {
    let output = Command::cargo_bin("kflex")
        .unwrap()
        .env_clear()
        .args(["init", "--load-image"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--create-kind"),
        "{}",
        stderr(&output)
    );
}

/// The Gateway API objects a cluster with Gateway API has: the TLSRoute CRD serving v1 and a
/// GatewayClass.
fn install_gateway_api(fake: &FakeApi) {
    fake.put(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "tlsroutes.gateway.networking.k8s.io"},
               "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
                        "names": {"kind": "TLSRoute", "plural": "tlsroutes"},
                        "versions": [{"name": "v1", "served": true, "storage": true}]},
               "status": {"conditions": [{"type": "Established", "status": "True"}]}}),
    );
    fake.put(
        "gateway.networking.k8s.io",
        "gatewayclasses",
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "eg"}, "spec": {"controllerName": "example.com/gateway"}}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_an_exposure_the_hosting_cluster_cannot_serve() {
    within(async move {
        let cluster = Cluster::start().await;
        cluster
            .fake
            .put_kflex_config(json!({"exposure": "gateway"}));
        let refused = |output: &Output, why: &str| {
            assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
            assert!(
                stderr(output).contains(why) && stderr(output).contains("nothing was created"),
                "{}",
                stderr(output)
            );
            assert!(cluster.control_plane("cp1").is_none());
            assert!(
                !cluster
                    .fake
                    .writes()
                    .iter()
                    .any(|w| w.path.contains("/controlplanes")),
                "no ControlPlane is written"
            );
        };
        let output = cluster.kflex(&["create", "cp1", "--wait=false"]).await;
        refused(&output, "does not serve Gateway API's TLSRoute v1");
        install_gateway_api(&cluster.fake);
        let output = cluster.kflex(&["create", "cp1", "--wait=false"]).await;
        refused(&output, "Gateway kubeflex-system/kubeflex does not exist");
        // A host control plane serves no API of its own: nothing to expose.
        let host = cluster
            .kflex(&["create", "edge", "--type", "host", "--wait=false"])
            .await;
        assert!(host.status.success(), "{}", stderr(&host));
        cluster.fake.put(
            "gateway.networking.k8s.io",
            "gateways",
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "kubeflex", "namespace": "kubeflex-system"},
               "spec": {"gatewayClassName": "eg", "listeners": []}}),
        );
        let output = cluster.kflex(&["create", "cp1", "--wait=false"]).await;
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(cluster.control_plane("cp1").is_some());
    })
    .await;
}

/// Answers as the API server does once a CRD is applied: established.
async fn establish_crds(fake: FakeApi, stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        for crd in fake.objects("apiextensions.k8s.io", "customresourcedefinitions") {
            if crd["status"].is_null() {
                let name = crd["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                fake.edit(
                    "apiextensions.k8s.io",
                    "customresourcedefinitions",
                    None,
                    &name,
                    &json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}}),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_says_which_exposures_the_cluster_serves_and_refuses_one_it_cannot() {
    within(async move {
        let cluster = Cluster::start().await;
        cluster.fake.clear_log();
        let output = cluster
            .kflex(&["init", "--exposure", "gateway", "--wait=false"])
            .await;
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let text = stderr(&output);
        assert!(
            text.contains("gateway       no: no TLSRoute v1 CustomResourceDefinition")
                && text.contains("route         no: not OpenShift")
                && text.contains("exposure gateway needs Gateway API's TLSRoute v1")
                && text.contains("nothing was installed"),
            "{text}"
        );
        assert!(
            cluster.fake.writes().is_empty(),
            "{:#?}",
            cluster.fake.writes()
        );

        // With Gateway API, init installs kflex with the exposure, and the Gateway it renders.
        install_gateway_api(&cluster.fake);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let establishing = tokio::spawn(establish_crds(cluster.fake.clone(), stopped));
        let output = cluster
            .kflex(&[
                "init",
                "--exposure",
                "gateway",
                "--set",
                "gateway.create=true",
                "--set",
                "gateway.className=eg",
                "--wait=false",
            ])
            .await;
        let _ = stop.send(true);
        establishing.await.expect("joined");
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("gateway       yes: TLSRoute v1 and GatewayClasses eg"),
            "{}",
            stderr(&output)
        );
        let config = cluster
            .fake
            .get("", "configmaps", Some("kubeflex-system"), "kubeflex-config")
            .expect("the configuration");
        assert_eq!(config["data"]["exposure"], "gateway");
        let gateway = cluster
            .fake
            .get(
                "gateway.networking.k8s.io",
                "gateways",
                Some("kubeflex-system"),
                "kubeflex",
            )
            .expect("the Gateway kflex renders");
        assert_eq!(gateway["spec"]["gatewayClassName"], "eg");
        assert_eq!(
            gateway["spec"]["listeners"][0]["tls"]["mode"],
            "Passthrough"
        );
    })
    .await;
}

/// `kflex diff` knows TLSRoutes: nothing to show once the controller applied a control plane
/// exposed through a Gateway, and a switch of the hosting cluster's exposure shows the route
/// going and the Ingress coming, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_shows_a_switch_of_exposure() {
    within(async move {
        let cluster = Cluster::start().await;
        install_gateway_api(&cluster.fake);
        let config = |exposure: &str| json!({"exposure": exposure});
        cluster.fake.put_kflex_config(config("gateway"));
        cluster.fake.put(
            "gateway.networking.k8s.io",
            "gateways",
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "kubeflex", "namespace": "kubeflex-system"},
               "spec": {"gatewayClassName": "eg", "listeners": []}}),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controller = tokio::spawn(run_controller(
            cluster.fake.client(),
            Running {
                system_namespace: "kubeflex-system".into(),
                concurrency: 2,
                options: Options::default(),
                identity: "test".into(),
            },
            Arc::new(Metrics::default()),
            async move {
                let _ = stopped.await;
            },
        ));
        let output = cluster.kflex(&["create", "cp1", "--wait=false"]).await;
        assert!(output.status.success(), "{}", stderr(&output));
        eventually("TLSRoute cp1-system/cp1 applied", || {
            cluster
                .fake
                .get(
                    "gateway.networking.k8s.io",
                    "tlsroutes",
                    Some("cp1-system"),
                    "cp1",
                )
                .is_some()
        })
        .await;
        let _ = stop.send(());
        let _ = controller.await;
        let clean = cluster.kflex(&["diff", "cp1"]).await;
        assert_eq!(
            clean.status.code(),
            Some(0),
            "{}{}",
            String::from_utf8_lossy(&clean.stdout),
            stderr(&clean)
        );
        cluster.fake.put_kflex_config(config("ingress"));
        let switched = cluster.kflex(&["diff", "cp1"]).await;
        assert_eq!(switched.status.code(), Some(1), "{}", stderr(&switched));
        let text = String::from_utf8(switched.stdout).expect("UTF-8");
        let files: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("+++ rendered/"))
            .collect();
        assert_eq!(
            files,
            [
                "Namespace/cp1-system",
                "Ingress.networking.k8s.io/cp1-system/cp1",
                "TLSRoute.gateway.networking.k8s.io/cp1-system/cp1"
            ],
            "{text}"
        );
        assert!(
            text.contains("-    kflex.kubestellar.org/control-plane-namespace: cp1"),
            "{text}"
        );
    })
    .await;
}

/// `kflex init` again with another `postgres.mode`: the system manifests as rendered for it are
/// applied and the in-cluster PostgreSQL, which the external mode does not render, is removed —
/// but not its data volume claim or its Secrets (never rendered), nor anything kflex does not
/// manage; going back renders it again over the same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_with_another_postgres_mode_applies_and_prunes_the_shared_postgresql() {
    within(async move {
        let cluster = Cluster::start().await;
        let installed = cluster.kflex(&["init", "--wait=false"]).await;
        assert!(installed.status.success(), "{}", stderr(&installed));
        let present = |group: &str, plural: &str, name: &str| {
            cluster
                .fake
                .get(group, plural, Some("kubeflex-system"), name)
                .is_some()
        };
        let server_objects = [
            ("apps", "statefulsets", "postgres-postgresql"),
            ("", "services", "postgres-postgresql"),
            ("", "services", "postgres-postgresql-hl"),
            ("", "configmaps", "postgres-postgresql-configuration"),
            ("", "serviceaccounts", "postgres-postgresql"),
            (
                "networking.k8s.io",
                "networkpolicies",
                "postgres-postgresql",
            ),
            ("batch", "jobs", "postgres-bootstrap"),
            ("", "serviceaccounts", "kflex-postgres-bootstrap"),
            (
                "rbac.authorization.k8s.io",
                "roles",
                "kflex-postgres-bootstrap",
            ),
            (
                "rbac.authorization.k8s.io",
                "rolebindings",
                "kflex-postgres-bootstrap",
            ),
        ];
        for (group, plural, name) in server_objects {
            assert!(present(group, plural, name), "{plural}/{name} installed");
        }
        // What the cluster made of it: the data, the password, and an object of the same kind that
        // is not kflex's.
        for (plural, kind, name) in [
            (
                "persistentvolumeclaims",
                "PersistentVolumeClaim",
                "data-postgres-postgresql-0",
            ),
            ("secrets", "Secret", "postgres-postgresql"),
            ("configmaps", "ConfigMap", "postgres-notes"),
        ] {
            cluster.fake.put(
                "",
                plural,
                json!({"apiVersion": "v1", "kind": kind,
                   "metadata": {"name": name, "namespace": "kubeflex-system"}}),
            );
        }

        let external = cluster
            .kflex(&[
                "init",
                "--wait=false",
                "--set",
                "postgres.mode=external",
                "--set",
                "postgres.external.secretName=pg-admin",
            ])
            .await;
        assert!(external.status.success(), "{}", stderr(&external));
        assert!(
            stderr(&external)
                .contains("removed 10 objects that postgres.mode external does not use"),
            "{}",
            stderr(&external)
        );
        for (group, plural, name) in server_objects {
            assert!(!present(group, plural, name), "{plural}/{name} removed");
        }
        for (plural, name) in [
            ("persistentvolumeclaims", "data-postgres-postgresql-0"),
            ("secrets", "postgres-postgresql"),
            ("configmaps", "postgres-notes"),
        ] {
            assert!(present("", plural, name), "{plural}/{name} kept");
        }
        assert!(present(
            "apps",
            "deployments",
            "kubeflex-controller-manager"
        ));
        let config = cluster
            .fake
            .get("", "configmaps", Some("kubeflex-system"), "kubeflex-config")
            .expect("the configuration");
        assert_eq!(config["data"]["postgres.mode"], "external");
        assert_eq!(config["data"]["postgres.external.secretName"], "pg-admin");

        // Back: the server is rendered again, over the claim that kept the data.
        let back = cluster.kflex(&["init", "--wait=false"]).await;
        assert!(back.status.success(), "{}", stderr(&back));
        assert!(!stderr(&back).contains("removed"), "{}", stderr(&back));
        for (group, plural, name) in server_objects {
            assert!(present(group, plural, name), "{plural}/{name} back");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_sets_the_backend_and_replicas_and_list_wide_shows_them() {
    within(async move {
        let cluster = Cluster::start().await;
        let output = cluster
            .kflex(&[
                "create",
                "own",
                "--backend",
                "dedicated",
                "--replicas",
                "3",
                "--wait=false",
            ])
            .await;
        assert!(output.status.success(), "{}", stderr(&output));
        let created = cluster.control_plane("own").expect("created");
        assert_eq!(created["spec"]["backend"], "dedicated");
        assert_eq!(created["spec"]["replicas"], 3);
        // KubeFlex's flag name still works.
        let output = cluster
            .kflex(&["create", "kf", "--backend-type", "shared", "--wait=false"])
            .await;
        assert!(output.status.success(), "{}", stderr(&output));
        cluster.fake.put(
            GROUP,
            "controlplanes",
            json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
               "metadata": {"name": "plain"}, "spec": {"type": "k8s"}}),
        );
        cluster.fake.put(
            GROUP,
            "controlplanes",
            json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
               "metadata": {"name": "vc"}, "spec": {"type": "vcluster", "backend": "shared"}}),
        );

        let wide = cluster.kflex(&["list", "-o", "wide"]).await;
        assert!(wide.status.success(), "{}", stderr(&wide));
        let table = String::from_utf8(wide.stdout).unwrap();
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0],
            [
                "NAME", "SYNCED", "READY", "TYPE", "BACKEND", "REPLICAS", "AGE"
            ],
            "{table}"
        );
        let row = |name: &str| {
            rows.iter()
                .find(|row| row[0] == name)
                .unwrap_or_else(|| panic!("{name} in {table}"))
                .clone()
        };
        assert_eq!(&row("own")[3..6], ["k8s", "dedicated", "3"], "{table}");
        assert_eq!(&row("kf")[3..6], ["k8s", "shared", "default"], "{table}");
        // A KubeFlex object without backend is on the shared server.
        assert_eq!(&row("plain")[3..6], ["k8s", "shared", "default"], "{table}");
        assert_eq!(&row("vc")[3..6], ["vcluster", "-", "-"], "{table}");
        let plain = cluster.kflex(&["list"]).await;
        let plain = String::from_utf8(plain.stdout).unwrap();
        assert!(!plain.contains("BACKEND"), "{plain}");

        let json_output = cluster.kflex(&["list", "-o", "json"]).await;
        let listed: Value = serde_json::from_slice(&json_output.stdout).unwrap();
        let own = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "own")
            .unwrap();
        assert_eq!(
            (&own["backend"], &own["replicas"]),
            (&json!("dedicated"), &json!(3))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_a_backend_or_replicas_the_type_cannot_have() {
    within(async move {
        let cluster = Cluster::start().await;
        for (args, field, says) in [
            (
                &[
                    "create",
                    "vc",
                    "--type",
                    "vcluster",
                    "--backend",
                    "dedicated",
                ][..],
                "spec.backend",
                "dedicated is for type k8s",
            ),
            (
                &["create", "edge", "--type", "k3s", "--replicas", "2"][..],
                "spec.replicas",
                "type k3s cannot run 2 API servers",
            ),
            (
                &["create", "cp1", "--replicas", "0"][..],
                "spec.replicas",
                "must be at least 1",
            ),
        ] {
            let output = cluster.kflex(args).await;
            assert_eq!(output.status.code(), Some(1), "{args:?}");
            let text = stderr(&output);
            assert!(
                text.contains(&format!("ControlPlane {:?}", args[1])),
                "{args:?}: the object is named: {text}"
            );
            assert!(
                text.contains(field) && text.contains(says),
                "{args:?}: {text}"
            );
            assert!(
                cluster.fake.log().is_empty(),
                "{args:?}: no request was made"
            );
        }
    })
    .await;
}

/// The cluster's side of a command's Job in kubeflex-system whose name starts with `prefix` (one
/// not answered yet): once it is created, its pod runs and logs `log`, and the Job succeeds (or
/// fails). Returns the Job as the command created it.
async fn answer_job(fake: &FakeApi, prefix: &str, log: &str, succeed: bool) -> Value {
    for _ in 0..400 {
        let job = fake.objects("batch", "jobs").into_iter().find(|job| {
            job["metadata"]["namespace"] == "kubeflex-system"
                && job.get("status").is_none_or(Value::is_null)
                && job["metadata"]["name"]
                    .as_str()
                    .is_some_and(|name| name.starts_with(prefix))
        });
        if let Some(job) = job {
            let name = job["metadata"]["name"].as_str().expect("a name").to_owned();
            let pod = format!("{name}-x7k2p");
            fake.put(
                "",
                "pods",
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": pod, "namespace": "kubeflex-system",
                                    "labels": {"job-name": name}},
                       "spec": job["spec"]["template"]["spec"].clone()}),
            );
            fake.set_pod_log("kubeflex-system", &pod, log);
            let status = if succeed {
                json!({"status": {"succeeded": 1,
                    "conditions": [{"type": "Complete", "status": "True"}]}})
            } else {
                json!({"status": {"failed": 1,
                    "conditions": [{"type": "Failed", "status": "True"}]}})
            };
            fake.edit("batch", "jobs", Some("kubeflex-system"), &name, &status);
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no Job {prefix}* was created");
}

/// What kflex's renderer puts in kubeflex-system for `cp` (its backup CronJob, …), applied as
/// the controller would have.
fn apply_rendered(fake: &FakeApi, cp: &Value, settings: kflex_core::settings::Settings) {
    let cp: kflex_core::api::ControlPlane =
        serde_json::from_value(cp.clone()).expect("a ControlPlane");
    let renderer =
        kflex_core::render::Renderer::new(settings, &kflex_core::render::TemplateSet::embedded())
            .expect("a renderer");
    let rendered = renderer
        .render(&cp, &kflex_core::render::HookCatalog::default())
        .expect("rendered");
    for manifest in rendered.manifests {
        if manifest.kind() == "CronJob" {
            fake.put(
                "batch",
                "cronjobs",
                Value::Object(manifest.object().clone()),
            );
        }
    }
}

fn control_plane_object(name: &str, spec: Value) -> Value {
    json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
           "metadata": {"name": name, "uid": format!("uid-{name}")}, "spec": spec})
}

const CREATED_LOG: &str = "backup 20261203-041700-k3x9qa of cp1: 812 rows (revision 4130), 1048576 bytes, sha256 ab, to backup store local (directory /var/lib/kflex/backups)
{\"name\":\"20261203-041700-k3x9qa\",\"time\":\"2026-12-03T04:17:00Z\",\"bytes\":1048576,\"rows\":812,\"revision\":4130,\"kflexVersion\":\"0.1.0\",\"controlPlane\":\"cp1\",\"store\":\"local\",\"removed\":[\"20261125-041700-aaaaaa\"]}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_create_runs_the_cronjob_now_and_prints_the_backups_name() {
    within(async move {
        let cluster = Cluster::start().await;
        let cp = control_plane_object(
            "cp1",
            json!({"type": "k8s", "backup": {"schedule": "@daily"}}),
        );
        cluster.fake.put(GROUP, "controlplanes", cp.clone());
        apply_rendered(&cluster.fake, &cp, Default::default());
        let cron = cluster
            .fake
            .get("batch", "cronjobs", Some("kubeflex-system"), "backup-cp1")
            .expect("the rendered CronJob");

        let (output, job) = tokio::join!(
            cluster.kflex(&["backup", "create", "cp1"]),
            answer_job(&cluster.fake, "backup-cp1-m", CREATED_LOG, true)
        );
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "20261203-041700-k3x9qa\n"
        );
        let said = stderr(&output);
        assert!(
            said.contains("812 rows") && said.contains("retention removed 20261125-041700-aaaaaa"),
            "{said}"
        );
        // Exactly the CronJob's Job, owned by it (as `kubectl create job --from` makes it).
        assert_eq!(
            job["spec"]["template"],
            cron["spec"]["jobTemplate"]["spec"]["template"]
        );
        assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        assert_eq!(job["metadata"]["ownerReferences"][0]["name"], "backup-cp1");
        assert!(job["metadata"]["name"].as_str().unwrap().len() <= 63);

        let (output, _) = tokio::join!(
            cluster.kflex(&["backup", "create", "cp1", "-o", "json"]),
            answer_job(&cluster.fake, "backup-cp1-m", CREATED_LOG, true)
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let created: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(created["name"], "20261203-041700-k3x9qa");
        assert_eq!(created["bytes"], 1_048_576);
        assert_eq!(created["controlPlane"], "cp1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_create_says_why_it_cannot_and_reports_a_failed_backup() {
    within(async move {
    let cluster = Cluster::start().await;
    cluster.fake.put(
        GROUP,
        "controlplanes",
        control_plane_object("plain", json!({"type": "k8s"})),
    );
    let output = cluster.kflex(&["backup", "create", "plain"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("has no spec.backup"),
        "{}",
        stderr(&output)
    );
    let output = cluster.kflex(&["backup", "create", "nope"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("ControlPlane nope does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(cluster.fake.objects("batch", "jobs").is_empty());

    let cp = control_plane_object(
        "cp1",
        json!({"type": "k8s", "backup": {"schedule": "@daily"}}),
    );
    cluster.fake.put(GROUP, "controlplanes", cp.clone());
    apply_rendered(&cluster.fake, &cp, Default::default());
    let log = "error: backup 20261203-041700-k3x9qa of cp1\n  caused by: the database has no table kine: kine has not started on it yet, so there is nothing to back up\n";
    let (output, _) = tokio::join!(
        cluster.kflex(&["backup", "create", "cp1"]),
        answer_job(&cluster.fake, "backup-cp1-m", log, false)
    );
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert!(
        said.contains("failed") && said.contains("kine has not started"),
        "{said}"
    );
    assert!(output.stdout.is_empty());
    })
    .await;
}

const LISTING_LOG: &str = "2 backups of cp1 in backup store offsite (bucket b at https://s3.example.com)
{\"controlPlane\":\"cp1\",\"store\":\"offsite\",\"backups\":[{\"name\":\"20261202-021700-aaaaaa\",\"time\":\"2026-12-02T02:17:00Z\",\"bytes\":2048,\"rows\":10,\"revision\":20,\"kflexVersion\":\"0.1.0\"},{\"name\":\"20261203-021700-bbbbbb\",\"time\":\"2026-12-03T02:17:00Z\",\"bytes\":3145728,\"rows\":12,\"revision\":25,\"kflexVersion\":\"0.1.0\"}]}
";

fn with_settings(cluster: &Cluster, data: Value) {
    cluster.fake.put_kflex_config(json!(data));
}

const TWO_STORES: &str = r#"[{"name":"local","pvc":{}},{"name":"offsite","s3":{"endpoint":"https://s3.example.com","bucket":"acme-backups","region":"eu-west-1","secretName":"backup-s3"}}]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_list_reads_the_storage_in_a_job_and_prints_a_table_or_json() {
    within(async move {
        let cluster = Cluster::start().await;
        with_settings(&cluster, json!({"backup.storage": TWO_STORES}));
        cluster.fake.put(
            GROUP,
            "controlplanes",
            control_plane_object(
                "cp1",
                json!({"type": "k8s", "backup": {"schedule": "@daily", "storage": "offsite"}}),
            ),
        );
        let (output, job) = tokio::join!(
            cluster.kflex(&["backup", "list", "cp1"]),
            answer_job(&cluster.fake, "kflex-backup-list-", LISTING_LOG, true)
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let table = String::from_utf8(output.stdout).unwrap();
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0], ["NAME", "TIME", "SIZE", "ROWS"], "{table}");
        assert_eq!(
            rows[2],
            [
                "20261203-021700-bbbbbb",
                "2026-12-03T02:17:00Z",
                "3.0MiB",
                "12"
            ],
            "{table}"
        );
        // The control plane's own storage, mounted read-only; no API access, no datastore.
        let pod = &job["spec"]["template"]["spec"];
        let args: Vec<&str> = pod["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            &args[..4],
            ["bootstrap", "backup", "list", "--control-plane=cp1"]
        );
        assert!(
            args.contains(&"--store=offsite") && args.contains(&"--s3-bucket=acme-backups"),
            "{args:?}"
        );
        assert_eq!(pod["volumes"][0]["secret"]["secretName"], "backup-s3");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["containers"][0]["volumeMounts"][0]["readOnly"], true);
        assert!(
            cluster.fake.objects("batch", "jobs").is_empty(),
            "the listing Job is removed once read"
        );

        // A control plane that is gone, another entry, JSON.
        let (output, job) = tokio::join!(
            cluster.kflex(&["backup", "list", "gone", "--storage", "local", "-o", "json"]),
            answer_job(
                &cluster.fake,
                "kflex-backup-list-",
                "{\"controlPlane\":\"gone\",\"store\":\"local\",\"backups\":[]}\n",
                true
            )
        );
        assert!(output.status.success(), "{}", stderr(&output));
        let listing: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(listing["backups"], json!([]));
        assert_eq!(
            job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "kflex-backups"
        );
        let output = cluster
            .kflex(&["backup", "list", "cp1", "--storage", "tape"])
            .await;
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).contains("no entry \"tape\" (it has: local, offsite)"),
            "{}",
            stderr(&output)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_checks_the_backup_and_creates_the_control_plane_with_restore_from() {
    within(async move {
    let cluster = Cluster::start().await;
    let listing = "{\"controlPlane\":\"cp1\",\"store\":\"local\",\"backups\":[{\"name\":\"20261203-021700-bbbbbb\",\"time\":\"2026-12-03T02:17:00Z\",\"bytes\":2048,\"rows\":10,\"revision\":20,\"kflexVersion\":\"0.1.0\"}]}\n";
    // cp1 was lost: it is created again, type k8s, from its backup.
    let (output, _) = tokio::join!(
        cluster.kflex(&[
            "restore",
            "cp1",
            "--backup",
            "20261203-021700-bbbbbb",
            "--wait=false",
            "-o",
            "json"
        ]),
        answer_job(&cluster.fake, "kflex-backup-list-", listing, true)
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let created = cluster.control_plane("cp1").expect("created");
    assert_eq!(created["spec"]["type"], "k8s");
    assert_eq!(
        created["spec"]["restoreFrom"],
        json!({"controlPlane": "cp1", "backup": "20261203-021700-bbbbbb", "storage": "local"})
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["controlPlane"], "cp1");

    // Again: it exists now, and a restore only creates.
    let output = cluster
        .kflex(&["restore", "cp1", "--backup", "20261203-021700-bbbbbb"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("ControlPlane cp1 exists"),
        "{}",
        stderr(&output)
    );

    // A backup that is not in the store: nothing is created.
    let (output, _) = tokio::join!(
        cluster.kflex(&[
            "restore",
            "cp2",
            "--backup",
            "20261201-000000-zzzzzz",
            "--wait=false"
        ]),
        answer_job(
            &cluster.fake,
            "kflex-backup-list-",
            "{\"controlPlane\":\"cp2\",\"store\":\"local\",\"backups\":[]}\n",
            true
        )
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("there is no backup 20261201-000000-zzzzzz of cp2"),
        "{}",
        stderr(&output)
    );
    assert!(cluster.control_plane("cp2").is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_under_another_name_needs_the_administrators_permission_and_the_same_type() {
    within(async move {
    let cluster = Cluster::start().await;
    cluster.fake.put(
        GROUP,
        "controlplanes",
        control_plane_object(
            "prod",
            json!({"type": "k8s", "backend": "dedicated", "replicas": 3,
                                            "backup": {"schedule": "@daily"}}),
        ),
    );
    cluster.fake.put(
        GROUP,
        "controlplanes",
        control_plane_object("edge", json!({"type": "k3s"})),
    );
    let output = cluster
        .kflex(&[
            "restore",
            "prod",
            "--backup",
            "20261203-021700-bbbbbb",
            "--as",
            "staging",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert!(
        said.contains("spec.restoreFrom.controlPlane")
            && said.contains("backup.allowedRestores (prod:staging)"),
        "{said}"
    );
    let output = cluster
        .kflex(&[
            "restore",
            "edge",
            "--backup",
            "20261203-021700-bbbbbb",
            "--as",
            "edge2",
        ])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("of type k3s"),
        "{}",
        stderr(&output)
    );
    assert!(
        cluster.fake.objects("batch", "jobs").is_empty(),
        "no Job ran"
    );

    with_settings(&cluster, json!({"backup.allowedRestores": "prod:staging"}));
    let listing = "{\"controlPlane\":\"prod\",\"store\":\"local\",\"backups\":[{\"name\":\"20261203-021700-bbbbbb\",\"time\":\"2026-12-03T02:17:00Z\",\"bytes\":2048,\"rows\":10,\"revision\":20,\"kflexVersion\":\"0.1.0\"}]}\n";
    let (output, _) = tokio::join!(
        cluster.kflex(&[
            "restore",
            "prod",
            "--backup",
            "20261203-021700-bbbbbb",
            "--as",
            "staging",
            "--wait=false"
        ]),
        answer_job(&cluster.fake, "kflex-backup-list-", listing, true)
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let staging = cluster.control_plane("staging").expect("created");
    // prod's spec, without its backups; from prod's backup.
    assert_eq!(staging["spec"]["backend"], "dedicated");
    assert_eq!(staging["spec"]["replicas"], 3);
    assert!(staging["spec"].get("backup").is_none());
    assert_eq!(staging["spec"]["restoreFrom"]["controlPlane"], "prod");
    })
    .await;
}

/// Runs `kflex ARGS` with a stdout whose reader is already gone, as `kflex … | head` ends up.
async fn with_closed_stdout(cluster: &Cluster, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("test setup");
    drop(reader);
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("kflex"));
    command
        .env_clear()
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    tokio::task::spawn_blocking(move || command.output().expect("test setup"))
        .await
        .expect("the command ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_diff_end_quietly_when_the_reader_goes_away() {
    within(async move {
        tokio::time::timeout(Duration::from_secs(120), async {
            let cluster = Cluster::start().await;
            cluster.fake.put(
                GROUP,
                "controlplanes",
                control_plane_object("cp1", json!({"type": "k8s"})),
            );
            for (args, code) in [
                (&["list"][..], 0),
                (&["list", "-o", "json"][..], 0),
                (&["ctx", "list"][..], 0),
                // Nothing is applied yet: everything is a difference (exit 1, like kubectl diff).
                (&["diff", "cp1"][..], 1),
            ] {
                let output = with_closed_stdout(&cluster, args).await;
                assert_eq!(
                    output.status.code(),
                    Some(code),
                    "{args:?}: {}",
                    stderr(&output)
                );
                assert!(
                    !stderr(&output).contains("panicked"),
                    "{args:?}: {}",
                    stderr(&output)
                );
            }
        })
        .await
        .expect("within the timeout");
    })
    .await;
}

/// A kubeconfig whose one context `x` talks to `server` (cluster `c`), with `extra` lines in the
/// cluster entry (a CA).
fn kubeconfig_for(dir: &std::path::Path, server: &str, extra: &str) -> PathBuf {
    let path = dir.join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n{extra}\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n\
             current-context: x\n"
        ),
    )
    .expect("test setup");
    path
}

/// `kflex list` against `server`: it fails with one line (no chain of library messages) that
/// names the server; returns that line.
async fn one_line_failure(server: &str, extra: &str) -> String {
    let dir = tempfile::tempdir().expect("test setup");
    let kubeconfig = kubeconfig_for(dir.path(), server, extra);
    let mut command = Command::cargo_bin("kflex").expect("test setup");
    command
        .env_clear()
        .args(["list", "--kubeconfig"])
        .arg(&kubeconfig)
        .timeout(Duration::from_secs(60));
    let output = tokio::task::spawn_blocking(move || command.output().expect("test setup"))
        .await
        .expect("the command ran");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    assert!(
        text.starts_with(&format!(
            "error: cannot use the Kubernetes API server {server} (context \"x\"): "
        )),
        "{text}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_cluster_is_named_with_the_reason_in_one_line() {
    within(async move {
    tokio::time::timeout(Duration::from_secs(120), async {
        // Nothing listens: the port of a listener that was closed again.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("test setup");
        let port = closed.local_addr().expect("test setup").port();
        drop(closed);
        let refused = one_line_failure(&format!("https://127.0.0.1:{port}"), "").await;
        assert!(refused.contains("connection refused"), "{refused}");

        // A web server that is not a Kubernetes API: 404 with a page.
        let web = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test setup");
        let web_address = web.local_addr().expect("test setup");
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            while let Ok((mut stream, _)) = web.accept().await {
                let mut request = [0_u8; 4096];
                let _ = stream.read(&mut request).await;
                let page = "<html><body>Not Found</body></html>";
                let response = format!(
                    "HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        let not_kubernetes = one_line_failure(&format!("http://{web_address}"), "").await;
        assert!(
            not_kubernetes.contains("answered 404")
                && not_kubernetes.contains("not a Kubernetes API server"),
            "{not_kubernetes}"
        );

        // A server that takes the connection and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test setup");
        let silent_address = silent.local_addr().expect("test setup");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let started = std::time::Instant::now();
        let hangs = one_line_failure(&format!("https://{silent_address}"), "").await;
        assert!(hangs.contains("no answer"), "{hangs}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "it gave up in seconds, not minutes"
        );
    })
    .await
    .expect("within the timeout");
    })
    .await;
}

/// A TLS server presenting an API server certificate kflex's PKI made for `names` (no IP
/// address), which answers nothing after the handshake; returns its address and the CA.
async fn tls_server(names: &[&str]) -> (std::net::SocketAddr, String) {
    use kflex::bootstrap::certificates::{ApiServerNames, k8s_certs};
    use kflex::bootstrap::pki::{Lifetimes, text};
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let lifetimes = Lifetimes {
        authority: Duration::from_secs(86_400),
        leaf: Duration::from_secs(86_400),
    };
    let names = ApiServerNames {
        dns_names: names.iter().map(|name| (*name).to_owned()).collect(),
        ip_addresses: Vec::new(),
    };
    let certs = k8s_certs(None, &names, lifetimes, time::OffsetDateTime::now_utc())
        .expect("test setup")
        .expect("test setup");
    let pem = |key: &str| text(&certs, key).expect("test setup").to_owned();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pem("apiserver.crt").as_bytes())
            .collect::<Result<_, _>>()
            .expect("test setup");
    let key = PrivateKeyDer::from_pem_slice(pem("apiserver.key").as_bytes()).expect("test setup");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("test setup")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("test setup");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("test setup");
    let address = listener.local_addr().expect("test setup");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            // The client gives up during the handshake; nothing else happens.
            tokio::spawn(async move {
                let _ = acceptor.accept(stream).await;
            });
        }
    });
    (address, pem("ca.crt"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_say_which_name_and_which_ca() {
    within(async move {
        tokio::time::timeout(Duration::from_secs(120), async {
            let (address, ca) = tls_server(&["cp1.localtest.me"]).await;
            let ca_data = format!("    certificate-authority-data: {}\n", base64(&ca));
            let server = format!("https://{address}");
            // The right CA, but a certificate for another name than the address used.
            let wrong_name = one_line_failure(&server, &ca_data).await;
            assert!(
                wrong_name.contains("TLS: the server's certificate is not valid for \"127.0.0.1\"")
                    && wrong_name.contains("cp1.localtest.me"),
                "{wrong_name}"
            );
            // A CA that did not sign it: another cluster's.
            let (_, other_ca) = tls_server(&["other.localtest.me"]).await;
            let other_data = format!("    certificate-authority-data: {}\n", base64(&other_ca));
            let wrong_ca = one_line_failure(&server, &other_data).await;
            assert!(
                wrong_ca.contains(
                    "TLS: the server's certificate is not signed by the CA in \
                 certificate-authority-data of cluster \"c\""
                ),
                "{wrong_ca}"
            );
        })
        .await
        .expect("within the timeout");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_kflex_installed_is_asked_only_when_its_api_is_missing() {
    within(async move {
        tokio::time::timeout(Duration::from_secs(120), async {
            let cluster = Cluster::start().await;
            let controlplanes = format!("/apis/{GROUP}/v1alpha1/controlplanes");
            cluster
                .fake
                .fail(http::Method::GET, &controlplanes, 404, "NotFound", 1);
            let missing = cluster.kflex(&["list"]).await;
            assert_eq!(missing.status.code(), Some(1));
            assert!(
                stderr(&missing)
                    .contains("(its CRD is missing); is kflex installed? (`kflex init`)"),
                "{}",
                stderr(&missing)
            );
            cluster
                .fake
                .fail(http::Method::GET, &controlplanes, 500, "InternalError", 1);
            let failing = cluster.kflex(&["list"]).await;
            assert_eq!(failing.status.code(), Some(1));
            let text = stderr(&failing);
            assert!(
                !text.contains("is kflex installed") && text.contains("500 InternalError"),
                "{text}"
            );
            assert!(
                !text.contains("Status {"),
                "no library debug output: {text}"
            );
        })
        .await
        .expect("within the timeout");
    })
    .await;
}

#[test]
fn a_kubeconfig_that_does_not_exist_says_so() {
    for (flag, env) in [(true, false), (false, true)] {
        let mut command = Command::cargo_bin("kflex").unwrap();
        command.env_clear().arg("list");
        if flag {
            command.args(["--kubeconfig", "/nonexistent/config"]);
        }
        if env {
            command.env("KUBECONFIG", "/nonexistent/config");
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(
            stderr(&output),
            "error: the kubeconfig /nonexistent/config does not exist; create a cluster \
             (`kflex init --create-kind`), or name another file with --kubeconfig or \
             $KUBECONFIG\n"
        );
    }
}
