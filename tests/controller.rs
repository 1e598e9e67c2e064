//! The controller's reconcile against an in-process fake API server (kflex-testkit), request
//! by request: what it writes on creation, that a resync of an unchanged control plane writes
//! nothing, drift, pruning, Job replacement, missing hooks, failures and deletion. The
//! controller's own watches fill its caches from the fake, as they would from a cluster.

#[path = "support/within.rs"]
mod time_limit;
use time_limit::within;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use futures::future::BoxFuture;
use http::Method;
use kflex::cluster::resources::Resources;
use kflex::controller::config::RendererCache;
use kflex::controller::context::{Context, Options};
use kflex::controller::error::chain;
use kflex::controller::metrics::Metrics;
use kflex::controller::readiness::ApiProbe;
use kflex::controller::reconcile::{error_policy, reconcile};
use kflex::controller::run::{Running, run_controller};
use kflex::controller::watches::Watches;
use kflex_core::api::ControlPlane;
use kflex_core::render::{HookCatalog, Renderer, TemplateSet};
use kflex_core::settings::Settings;
use kflex_testkit::{FakeApi, Logged, eventually};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};

const GROUP: &str = "tenancy.kflex.kubestellar.org";
const NOW: i64 = 1_800_000_000;
/// When the fake stamps deletions: 2026-11-21T00:00:00Z.
const DELETED_AT: i64 = 1_795_219_200;

struct Probe(bool);

impl ApiProbe for Probe {
    fn serving<'a>(&'a self, _: &'a [u8]) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.0 })
    }
}

/// The configuration ConfigMap as `kflex render --system` renders it (every setting at its
/// default).
fn config_map() -> Value {
    config_map_for(&Settings::default())
}

/// A fake hosting cluster with kflex installed: its configuration ConfigMap exists.
fn installed() -> FakeApi {
    let fake = FakeApi::new();
    fake.put("", "configmaps", config_map());
    fake
}

/// Runs a test's body, failing it after a minute instead of hanging.
async fn timed<F: std::future::Future>(body: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(60), body)
        .await
        .expect("the test finished within a minute")
}

struct Harness {
    fake: FakeApi,
    ctx: Arc<Context>,
    clock: Arc<AtomicI64>,
    /// The watches, until they are started.
    watches: std::sync::Mutex<Option<Watches>>,
}

impl Harness {
    async fn new(serving: bool) -> Self {
        Self::over(installed(), serving).await
    }

    /// A controller (nothing remembered) over an existing fake, its caches filled.
    async fn over(fake: FakeApi, serving: bool) -> Self {
        let harness = Self::starting(fake, serving);
        harness.start_watches();
        harness.settle().await;
        harness
    }

    /// A controller over an existing fake whose watches have not started: its caches are empty
    /// until [`Harness::start_watches`].
    fn starting(fake: FakeApi, serving: bool) -> Self {
        let client = fake.client();
        let watches = Watches::new(&client, "kubeflex-system", &[]);
        let clock = Arc::new(AtomicI64::new(NOW));
        let time = clock.clone();
        let ctx = Arc::new(Context {
            resources: Resources::new(client.clone()),
            system_namespace: "kubeflex-system".into(),
            config: watches.config.clone(),
            hooks: watches.hooks.clone(),
            caches: watches.caches.clone(),
            renderers: RendererCache::default(),
            records: Default::default(),
            failures: Default::default(),
            reported: Default::default(),
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: "kflex".into(),
                    instance: None,
                },
            ),
            metrics: Arc::new(Metrics::default()),
            probe: Arc::new(Probe(serving)),
            options: Options::default(),
            clock: Arc::new(move || time.load(Ordering::SeqCst)),
            client,
        });
        Self {
            fake,
            ctx,
            clock,
            watches: std::sync::Mutex::new(Some(watches)),
        }
    }

    fn start_watches(&self) {
        let taken = self.watches.lock().ok().and_then(|mut w| w.take());
        if let Some(mut watches) = taken {
            watches.drive();
        }
    }

    /// Lets the watches catch up with the fake.
    async fn settle(&self) {
        for _ in 0..200 {
            tokio::task::yield_now().await;
        }
    }

    fn create_control_plane(&self, name: &str, spec: Value) {
        self.fake.put(
            GROUP,
            "controlplanes",
            json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
                   "metadata": {"name": name}, "spec": spec}),
        );
    }

    fn control_plane(&self, name: &str) -> Arc<ControlPlane> {
        let value = self
            .fake
            .get(GROUP, "controlplanes", None, name)
            .expect("the ControlPlane exists");
        Arc::new(serde_json::from_value(value).expect("a ControlPlane"))
    }

    async fn reconcile(&self, name: &str) -> Result<Action, kflex::controller::reconcile::Error> {
        let result = reconcile(self.control_plane(name), self.ctx.clone()).await;
        self.settle().await;
        result
    }

    /// The reasons of the Events published so far, in the order the fake stored them.
    fn event_reasons(&self) -> Vec<String> {
        self.fake
            .objects("events.k8s.io", "events")
            .iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect()
    }

    fn annotation(&self, name: &str, key: &str) -> Option<String> {
        self.fake
            .get(GROUP, "controlplanes", None, name)
            .and_then(|cp| {
                cp["metadata"]["annotations"][key]
                    .as_str()
                    .map(str::to_owned)
            })
    }

    fn condition(&self, name: &str, type_: &str) -> Value {
        let cp = self
            .fake
            .get(GROUP, "controlplanes", None, name)
            .expect("exists");
        cp["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
            .unwrap_or(Value::Null)
    }
}

fn applies(writes: &[Logged]) -> Vec<&Logged> {
    writes
        .iter()
        .filter(|w| {
            w.method == Method::PATCH
                && !w.path.contains("/controlplanes/")
                && !w.path.contains("/events")
        })
        .collect()
}

fn control_plane_writes(writes: &[Logged]) -> Vec<&Logged> {
    writes
        .iter()
        .filter(|w| w.path.contains("/controlplanes/"))
        .collect()
}

fn events(writes: &[Logged]) -> Vec<&Logged> {
    writes
        .iter()
        .filter(|w| w.path.contains("/events"))
        .collect()
}

fn rendered_count(spec: Value) -> usize {
    let cp = ControlPlane::new("cp1", serde_json::from_value(spec).expect("spec"));
    Renderer::new(Settings::default(), &TemplateSet::embedded())
        .expect("renderer")
        .render(&cp, &HookCatalog::default())
        .expect("rendered")
        .manifests
        .len()
}

#[tokio::test]
async fn creating_a_control_plane_applies_each_object_once() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.fake.clear_log();
        let action = h.reconcile("cp1").await.expect("reconciled");
        assert_eq!(
            action,
            Action::requeue(Options::default().not_ready_requeue)
        );
        let writes = h.fake.writes();
        let expected = rendered_count(json!({"type": "k8s"}));
        assert_eq!(
            applies(&writes).len(),
            expected,
            "one apply per object: {writes:#?}"
        );
        let cp_writes = control_plane_writes(&writes);
        assert_eq!(
            cp_writes.len(),
            2,
            "finalizer and ApplySet metadata, then status: {cp_writes:#?}"
        );
        assert!(cp_writes[1].path.ends_with("/status"));
        assert_eq!(events(&writes).len(), 2, "Synced and Ready appeared");
        assert_eq!(
            writes.len(),
            expected + 4,
            "nothing else is written: {writes:#?}"
        );

        // What was applied carries the ownership metadata.
        let deployment = h
            .fake
            .get("apps", "deployments", Some("cp1-system"), "kube-apiserver")
            .expect("applied");
        assert_eq!(deployment["metadata"]["ownerReferences"][0]["name"], "cp1");
        assert_eq!(
            deployment["metadata"]["ownerReferences"][0]["kind"],
            "ControlPlane"
        );
        let cp = h
            .fake
            .get(GROUP, "controlplanes", None, "cp1")
            .expect("exists");
        let id = cp["metadata"]["labels"]["applyset.kubernetes.io/id"]
            .as_str()
            .expect("an ApplySet id");
        assert_eq!(
            deployment["metadata"]["labels"]["applyset.kubernetes.io/part-of"],
            id
        );
        assert_eq!(
            cp["metadata"]["finalizers"][0],
            "kflex.kubestellar.org/finalizer"
        );
        assert!(
            cp["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"]
                .as_str()
                .is_some_and(|k| k.contains("Deployment.apps") && k.contains("Namespace"))
        );
        // Status as the spec promises.
        assert_eq!(h.condition("cp1", "Synced")["status"], "True");
        assert_eq!(h.condition("cp1", "Ready")["reason"], "Unavailable");
        assert_eq!(cp["status"]["secretRef"]["name"], "admin-kubeconfig");
        assert_eq!(
            cp["status"]["secretRef"]["inClusterKey"],
            "kubeconfig-incluster"
        );
        assert_eq!(
            cp["status"]["postCreateHookCompleted"], true,
            "no hooks: complete"
        );
    })
    .await;
}

#[tokio::test]
async fn a_resync_of_an_unchanged_control_plane_writes_nothing() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.reconcile("cp1").await.expect("first");
        h.fake.clear_log();
        h.reconcile("cp1").await.expect("resync");
        assert_eq!(
            h.fake.writes(),
            Vec::<Logged>::new(),
            "no apply, no status, no Event"
        );

        // Right after a restart — nothing remembered, the caches still listing — the reconcile
        // waits for the caches, reads, and still writes nothing.
        let restarted = Harness::starting(h.fake.clone(), false);
        restarted.fake.clear_log();
        let reconciling = tokio::spawn(reconcile(
            restarted.control_plane("cp1"),
            restarted.ctx.clone(),
        ));
        restarted.settle().await;
        assert!(!reconciling.is_finished(), "waiting for the caches");
        restarted.start_watches();
        reconciling.await.expect("joined").expect("after a restart");
        assert_eq!(restarted.fake.writes(), Vec::<Logged>::new());
    })
    .await;
}

#[tokio::test]
async fn drift_is_corrected_with_one_apply() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.reconcile("cp1").await.expect("first");
        h.fake
            .edit(
                "apps",
                "deployments",
                Some("cp1-system"),
                "kube-apiserver",
                &json!({"spec": {"replicas": 3}}),
            )
            .expect("edited");
        h.settle().await;
        h.fake.clear_log();
        h.reconcile("cp1").await.expect("reconciled");
        let writes = h.fake.writes();
        let applied = applies(&writes);
        assert_eq!(applied.len(), 1, "{writes:#?}");
        assert!(applied[0].path.ends_with("/deployments/kube-apiserver"));
        let deployment = h
            .fake
            .get("apps", "deployments", Some("cp1-system"), "kube-apiserver")
            .expect("there");
        assert_eq!(deployment["spec"]["replicas"], 1);
    })
    .await;
}

#[tokio::test]
async fn a_deleted_object_is_created_again() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.reconcile("cp1").await.expect("first");
        let services: kube::Api<k8s_openapi::api::core::v1::Service> =
            kube::Api::namespaced(h.fake.client(), "cp1-system");
        services
            .delete("cp1", &Default::default())
            .await
            .expect("deleted");
        h.settle().await;
        h.fake.clear_log();
        h.reconcile("cp1").await.expect("reconciled");
        let writes = h.fake.writes();
        assert_eq!(applies(&writes).len(), 1, "{writes:#?}");
        assert!(
            h.fake
                .get("", "services", Some("cp1-system"), "cp1")
                .is_some()
        );
    })
    .await;
}

fn hello_hook() -> Value {
    json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "PostCreateHook",
           "metadata": {"name": "hello"},
           "spec": {"templates": [{"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "hello-{{.ControlPlaneName}}"},
                                   "data": {"greeting": "hi"}}]}})
}

#[tokio::test]
async fn a_hook_removed_from_the_spec_is_pruned() {
    within(async move {
        let h = Harness::new(false).await;
        h.fake.put(GROUP, "postcreatehooks", hello_hook());
        h.settle().await;
        h.create_control_plane(
            "cp1",
            json!({"type": "host", "postCreateHooks": [{"hookName": "hello"}]}),
        );
        h.reconcile("cp1").await.expect("first");
        assert!(
            h.fake
                .get("", "configmaps", Some("cp1-system"), "hello-cp1")
                .is_some()
        );
        h.fake
            .edit(
                GROUP,
                "controlplanes",
                None,
                "cp1",
                &json!({"spec": {"postCreateHooks": null}}),
            )
            .expect("edited");
        h.settle().await;
        h.fake.clear_log();
        h.reconcile("cp1").await.expect("reconciled");
        let deletes: Vec<Logged> = h
            .fake
            .writes()
            .into_iter()
            .filter(|w| w.method == Method::DELETE)
            .collect();
        assert_eq!(deletes.len(), 1, "{deletes:#?}");
        assert!(deletes[0].path.ends_with("/configmaps/hello-cp1"));
        assert!(
            h.fake
                .get("", "configmaps", Some("cp1-system"), "hello-cp1")
                .is_none()
        );
        assert!(
            h.fake
                .get("", "serviceaccounts", Some("cp1-system"), "cp1")
                .is_some(),
            "the rest stays"
        );
        let cp = h
            .fake
            .get(GROUP, "controlplanes", None, "cp1")
            .expect("exists");
        assert!(
            cp["status"]["postCreateHooks"].get("hello").is_none(),
            "its status entry goes too"
        );
    })
    .await;
}

#[tokio::test]
async fn a_missing_hook_blocks_until_it_is_created() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane(
            "cp1",
            json!({"type": "host", "postCreateHooks": [{"hookName": "hello"}]}),
        );
        h.fake.clear_log();
        let action = h.reconcile("cp1").await.expect("reconciled");
        assert_eq!(action, Action::await_change());
        let synced = h.condition("cp1", "Synced");
        assert_eq!(synced["status"], "False");
        assert_eq!(synced["reason"], "PostCreateHookNotFound");
        assert!(
            synced["message"]
                .as_str()
                .is_some_and(|m| m.contains("\"hello\"")),
            "{synced}"
        );
        assert!(applies(&h.fake.writes()).is_empty(), "nothing is applied");

        // Once the hook exists, the next reconcile applies it (that creating it wakes the
        // ControlPlane is shown with the running controller, below).
        h.fake.put(GROUP, "postcreatehooks", hello_hook());
        h.settle().await;
        h.reconcile("cp1").await.expect("reconciled");
        assert_eq!(h.condition("cp1", "Synced")["status"], "True");
        assert!(
            h.fake
                .get("", "configmaps", Some("cp1-system"), "hello-cp1")
                .is_some()
        );
    })
    .await;
}

#[tokio::test]
async fn a_changed_job_is_replaced_and_reported() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.reconcile("cp1").await.expect("first");
        h.fake
            .put_kflex_config(json!({"images.kflex.tag": "0.2.0"}));
        h.settle().await;
        h.fake.clear_log();
        h.reconcile("cp1").await.expect("reconciled");
        let log = h.fake.writes();
        let job = "/apis/batch/v1/namespaces/cp1-system/jobs/kflex-bootstrap";
        let on_job: Vec<&Logged> = log.iter().filter(|w| w.path == job).collect();
        assert_eq!(
            on_job.iter().map(|w| w.method.clone()).collect::<Vec<_>>(),
            [Method::PATCH, Method::DELETE, Method::PATCH],
            "refused, deleted, created again"
        );
        let job = h
            .fake
            .get("batch", "jobs", Some("cp1-system"), "kflex-bootstrap")
            .expect("there");
        let image = job["spec"]["template"]["spec"]["initContainers"][0]["image"]
            .as_str()
            .unwrap_or_default();
        assert!(image.ends_with(":0.2.0"), "{image}");
        assert!(
            h.event_reasons().contains(&"JobReplaced".to_owned()),
            "{:?}",
            h.event_reasons()
        );
    })
    .await;
}

/// A StatefulSet's volumes hold data: one the API refuses to change in place is never deleted,
/// and Synced says which object, why, and what the administrator can do.
#[tokio::test]
async fn a_refused_statefulset_is_not_replaced_and_synced_says_what_to_do() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k3s"}));
        h.reconcile("cp1").await.expect("first");
        // Drift, so the next reconcile writes it again; the API refuses that write.
        h.fake.edit(
            "apps",
            "statefulsets",
            Some("cp1-system"),
            "k3s-server",
            &json!({"spec": {"replicas": 3}}),
        );
        h.settle().await;
        h.fake
            .fail(Method::PATCH, "/statefulsets/k3s-server", 422, "Invalid", 1);
        h.fake.clear_log();
        h.reconcile("cp1").await.expect_err("the apply was refused");

        let synced = h.condition("cp1", "Synced");
        assert_eq!(synced["status"], "False");
        let message = synced["message"].as_str().unwrap_or_default();
        for part in [
            "failed to apply StatefulSet cp1-system/k3s-server",
            "kflex does not replace StatefulSets",
            "kubectl delete --cascade=orphan",
            "injected by the test (422)",
        ] {
            assert!(message.contains(part), "{part:?} in {message}");
        }
        assert!(
            !h.fake.writes().iter().any(|w| w.method == Method::DELETE),
            "{:#?}",
            h.fake.writes()
        );
    })
    .await;
}

#[tokio::test]
async fn failed_applies_are_retried_with_backoff_and_nothing_is_lost() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.fake.fail(
            Method::PATCH,
            "/deployments/kube-apiserver",
            500,
            "InternalError",
            1,
        );
        let err = h.reconcile("cp1").await.expect_err("the API failed");
        // As the log says it: the operation, the ControlPlane, then the object and the cause.
        let said = chain(&err);
        assert!(
            said.starts_with("failed to apply 1 of the objects of ControlPlane cp1: ")
                && said.contains("Deployment cp1-system/kube-apiserver")
                && said.contains("(500)"),
            "{said}"
        );
        assert_eq!(h.ctx.metrics.errors_counted("apply"), 1);
        let first = error_policy(h.control_plane("cp1"), &err, h.ctx.clone());
        assert_eq!(first, Action::requeue(std::time::Duration::from_secs(5)));
        h.fake.fail(
            Method::PATCH,
            "/deployments/kube-apiserver",
            503,
            "ServiceUnavailable",
            1,
        );
        let err = h.reconcile("cp1").await.expect_err("unavailable");
        let second = error_policy(h.control_plane("cp1"), &err, h.ctx.clone());
        assert_eq!(
            second,
            Action::requeue(std::time::Duration::from_secs(10)),
            "backing off"
        );
        h.reconcile("cp1").await.expect("third time");
        assert!(
            h.fake
                .get("apps", "deployments", Some("cp1-system"), "kube-apiserver")
                .is_some()
        );
        assert_eq!(
            h.fake.count("apps", "deployments"),
            2,
            "kube-apiserver and kube-controller-manager"
        );
    })
    .await;
}

#[tokio::test]
async fn an_ocm_control_plane_is_refused_for_good_with_its_replacement() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("old", json!({"type": "ocm"}));
        h.fake.clear_log();
        assert_eq!(
            h.reconcile("old").await.expect("reconciled"),
            Action::await_change()
        );
        let writes = h.fake.writes();
        assert!(applies(&writes).is_empty(), "{writes:#?}");
        for type_ in ["Synced", "Ready"] {
            let condition = h.condition("old", type_);
            assert_eq!(
                (condition["status"].as_str(), condition["reason"].as_str()),
                (Some("False"), Some("Unsupported"))
            );
            assert!(
                condition["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("type vcluster")),
                "{condition}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_paused_control_plane_is_left_alone() {
    within(async move {
        let h = Harness::new(false).await;
        h.fake.put(
            GROUP,
            "controlplanes",
            json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
               "metadata": {"name": "new", "annotations": {"kflex.kubestellar.org/paused": "true"}},
               "spec": {"type": "k8s"}}),
        );
        h.fake.clear_log();
        h.reconcile("new").await.expect("reconciled");
        assert!(applies(&h.fake.writes()).is_empty());
        assert_eq!(h.condition("new", "Synced")["reason"], "ReconcilePaused");

        // A synced control plane, paused: drift stays until it is resumed.
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.reconcile("cp1").await.expect("synced");
        let pause = |value: Value| {
            h.fake
                .edit(
                    GROUP,
                    "controlplanes",
                    None,
                    "cp1",
                    &json!({"metadata": {"annotations": {"kflex.kubestellar.org/paused": value}}}),
                )
                .expect("annotated");
        };
        pause(json!("true"));
        h.fake
            .edit(
                "apps",
                "deployments",
                Some("cp1-system"),
                "kube-apiserver",
                &json!({"spec": {"replicas": 3}}),
            )
            .expect("edited");
        h.settle().await;
        h.fake.clear_log();
        h.reconcile("cp1").await.expect("paused");
        assert!(
            applies(&h.fake.writes()).is_empty(),
            "{:#?}",
            h.fake.writes()
        );
        assert_eq!(h.condition("cp1", "Synced")["reason"], "ReconcilePaused");
        pause(Value::Null);
        h.settle().await;
        h.reconcile("cp1").await.expect("resumed");
        let deployment = h
            .fake
            .get("apps", "deployments", Some("cp1-system"), "kube-apiserver")
            .expect("there");
        assert_eq!(deployment["spec"]["replicas"], 1, "the drift is corrected");
        assert_eq!(h.condition("cp1", "Synced")["status"], "True");
    })
    .await;
}

#[tokio::test]
async fn a_ready_control_plane_says_so() {
    within(async move {
    let h = Harness::new(true).await;
    h.create_control_plane("cp1", json!({"type": "k3s"}));
    h.reconcile("cp1").await.expect("first");
    h.fake
        .edit(
            "apps",
            "statefulsets",
            Some("cp1-system"),
            "k3s-server",
            &json!({"status": {"readyReplicas": 1}}),
        )
        .expect("ready");
    h.fake.put(
        "",
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k3s-config", "namespace": "cp1-system"},
               "data": {"config-incluster": "a3ViZWNvbmZpZw=="}}),
    );
    h.settle().await;
    let action = h.reconcile("cp1").await.expect("reconciled");
    assert_eq!(action, Action::requeue(Options::default().resync));
    let ready = h.condition("cp1", "Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("True"), Some("Available"))
    );
    })
    .await;
}

#[tokio::test]
async fn deletion_drops_the_database_then_releases_the_control_plane() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.reconcile("cp1").await.expect("created");
        let api: kube::Api<ControlPlane> = kube::Api::all(h.fake.client());
        api.delete("cp1", &Default::default())
            .await
            .expect("deleted");
        h.settle().await;
        h.clock.store(DELETED_AT + 10, Ordering::SeqCst);
        let action = h.reconcile("cp1").await.expect("cleanup started");
        assert_eq!(
            action,
            Action::requeue(std::time::Duration::from_secs(5)),
            "waiting for the Job"
        );
        let job = "db-drop-cp1";
        assert!(
            h.fake
                .get("batch", "jobs", Some("kubeflex-system"), job)
                .is_some(),
            "the drop Job runs"
        );
        assert_eq!(h.condition("cp1", "Ready")["reason"], "Deleting");
        // The account the Job runs as has no owner reference (a foreground deletion would remove
        // it first) and is still there.
        let account = h
            .fake
            .get("", "serviceaccounts", Some("kubeflex-system"), "db-cp1")
            .expect("the drop Job's ServiceAccount is there while it runs");
        assert!(
            account["metadata"].get("ownerReferences").is_none(),
            "{account}"
        );
        h.fake
            .edit(
                "batch",
                "jobs",
                Some("kubeflex-system"),
                job,
                &json!({"status": {"succeeded": 1}}),
            )
            .expect("done");
        h.settle().await;
        h.reconcile("cp1").await.expect("released");
        assert!(
            h.fake.get(GROUP, "controlplanes", None, "cp1").is_none(),
            "the finalizer is gone"
        );
        assert!(
            h.fake
                .get("batch", "jobs", Some("kubeflex-system"), job)
                .is_none(),
            "the Job is removed"
        );
        assert!(
            h.fake.get("", "namespaces", None, "cp1-system").is_none(),
            "cluster-scoped members go"
        );
        assert!(
            h.fake
                .get("", "serviceaccounts", Some("kubeflex-system"), "db-cp1")
                .is_none(),
            "members in the system namespace go"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_cleanup_is_reported_and_given_up_after_the_timeout() {
    within(async move {
    let h = Harness::new(false).await;
    h.create_control_plane("cp1", json!({"type": "k8s"}));
    h.reconcile("cp1").await.expect("created");
    let api: kube::Api<ControlPlane> = kube::Api::all(h.fake.client());
    api.delete("cp1", &Default::default())
        .await
        .expect("deleted");
    h.settle().await;
    h.clock.store(DELETED_AT + 10, Ordering::SeqCst);
    h.reconcile("cp1").await.expect("cleanup started");
    h.fake
        .edit("batch", "jobs", Some("kubeflex-system"), "db-drop-cp1",
              &json!({"status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}}))
        .expect("failed");
    h.settle().await;
    h.reconcile("cp1").await.expect("reported");
    let synced = h.condition("cp1", "Synced");
    assert_eq!(synced["reason"], "CleanupFailed");
    assert!(
        synced["message"]
            .as_str()
            .is_some_and(|m| m.contains("BackoffLimitExceeded")),
        "{synced}"
    );
    assert!(
        h.fake.get(GROUP, "controlplanes", None, "cp1").is_some(),
        "still held"
    );
    // Past the timeout: given up with a warning, and released.
    let timeout = i64::try_from(Options::default().cleanup_timeout.as_secs()).expect("seconds");
    h.clock.store(DELETED_AT + timeout + 1, Ordering::SeqCst);
    h.fake.clear_log();
    h.reconcile("cp1").await.expect("given up");
    assert!(h.fake.get(GROUP, "controlplanes", None, "cp1").is_none());
    assert!(
        h.event_reasons().contains(&"CleanupAbandoned".to_owned()),
        "{:?}",
        h.event_reasons()
    );
    })
    .await;
}

fn secret_hook() -> Value {
    json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "PostCreateHook",
           "metadata": {"name": "token"},
           "spec": {"templates": [{"apiVersion": "v1", "kind": "Secret",
                                   "metadata": {"name": "token-{{.ControlPlaneName}}"},
                                   "stringData": {"token": "t"}}]}})
}

/// As the controller's ClusterRole has it: Secrets may be written and read by name, never
/// listed or watched.
fn deny_listing_secrets(fake: &FakeApi) {
    fake.deny("list", "secrets");
    fake.deny("watch", "secrets");
}

fn secret_listings(log: &[Logged]) -> Vec<&Logged> {
    log.iter()
        .filter(|r| r.method == Method::GET && r.path.ends_with("/secrets"))
        .collect()
}

#[tokio::test]
async fn secrets_are_pruned_and_cleaned_up_without_listing_them() {
    within(async move {
        let fake = installed();
        deny_listing_secrets(&fake);
        let h = Harness::over(fake, false).await;
        h.fake.put(GROUP, "postcreatehooks", secret_hook());
        h.settle().await;
        h.create_control_plane(
            "vc1",
            json!({"type": "vcluster", "postCreateHooks": [{"hookName": "token"}]}),
        );
        h.reconcile("vc1").await.expect("synced");
        assert_eq!(h.condition("vc1", "Synced")["status"], "True");
        assert_eq!(
            h.annotation("vc1", "kflex.kubestellar.org/secrets")
                .as_deref(),
            Some("vc1-system/token-vc1,vc1-system/vc-config-vcluster"),
            "the parent names its Secrets"
        );

        // The hook goes while the controller is down: the restarted one still prunes its Secret.
        h.fake
            .edit(
                GROUP,
                "controlplanes",
                None,
                "vc1",
                &json!({"spec": {"postCreateHooks": null}}),
            )
            .expect("edited");
        let restarted = Harness::over(h.fake.clone(), false).await;
        restarted.reconcile("vc1").await.expect("pruned");
        assert!(
            restarted
                .fake
                .get("", "secrets", Some("vc1-system"), "token-vc1")
                .is_none()
        );
        assert!(
            restarted
                .fake
                .get("", "secrets", Some("vc1-system"), "vc-config-vcluster")
                .is_some()
        );
        assert_eq!(
            restarted
                .annotation("vc1", "kflex.kubestellar.org/secrets")
                .as_deref(),
            Some("vc1-system/vc-config-vcluster")
        );

        let api: kube::Api<ControlPlane> = kube::Api::all(restarted.fake.client());
        api.delete("vc1", &Default::default())
            .await
            .expect("deleted");
        restarted.settle().await;
        restarted.reconcile("vc1").await.expect("released");
        assert!(
            restarted
                .fake
                .get(GROUP, "controlplanes", None, "vc1")
                .is_none(),
            "deletion completes"
        );
        assert_eq!(
            secret_listings(&restarted.fake.log()),
            Vec::<&Logged>::new()
        );
    })
    .await;
}

#[tokio::test]
async fn an_object_that_fails_is_reported_and_the_others_still_applied() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        // The Service comes before the Deployments in install order.
        h.fake.fail(
            Method::PATCH,
            "/namespaces/cp1-system/services/cp1",
            403,
            "Forbidden",
            usize::MAX,
        );
        let err = h.reconcile("cp1").await.expect_err("an object failed");
        // As kube-runtime does after a failed reconcile (it counts the failures in a row).
        error_policy(h.control_plane("cp1"), &err, h.ctx.clone());
        let said = chain(&err);
        assert!(said.contains("Service cp1-system/cp1"), "{said}");
        assert_eq!(
            h.event_reasons(),
            ["ApplyFailed", "Forbidden"],
            "the failure, and that RBAC refused it, each said once"
        );
        let synced = h.condition("cp1", "Synced");
        assert_eq!(
            (synced["status"].as_str(), synced["reason"].as_str()),
            (Some("False"), Some("ApplyFailed"))
        );
        assert!(
            synced["message"]
                .as_str()
                .is_some_and(|m| m.contains("Service cp1-system/cp1") && m.contains("403")),
            "{synced}"
        );
        assert!(
            h.fake
                .get(
                    "apps",
                    "deployments",
                    Some("cp1-system"),
                    "kube-controller-manager"
                )
                .is_some(),
            "objects after the failing one are applied"
        );

        // Still failing: no second status write, no second Event.
        h.fake.clear_log();
        h.reconcile("cp1").await.expect_err("still failing");
        assert!(control_plane_writes(&h.fake.writes()).is_empty());
        assert!(events(&h.fake.writes()).is_empty());

        // Fixed: the one object is applied and Synced flips back.
        h.fake.heal();
        h.fake.clear_log();
        h.reconcile("cp1").await.expect("fixed");
        let writes = h.fake.writes();
        let applied = applies(&writes);
        assert_eq!(applied.len(), 1, "{applied:#?}");
        assert!(applied[0].path.ends_with("/services/cp1"));
        assert_eq!(h.condition("cp1", "Synced")["status"], "True");
    })
    .await;
}

#[tokio::test]
async fn two_control_planes_cannot_share_an_object() {
    within(async move {
    let h = Harness::new(false).await;
    // The shared object is a hook's ClusterRole, which needs the opt-in.
    let mut config = config_map();
    config["data"]["allowClusterScopedHookRbac"] = json!("true");
    h.fake.put("", "configmaps", config);
    h.fake.put(
        GROUP,
        "postcreatehooks",
        json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "PostCreateHook",
               "metadata": {"name": "shared"},
               "spec": {"templates": [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                       "metadata": {"name": "team-reader"},
                                       "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}]}}),
    );
    h.settle().await;
    for name in ["cp1", "cp2"] {
        h.create_control_plane(
            name,
            json!({"type": "host", "postCreateHooks": [{"hookName": "shared"}]}),
        );
    }
    h.reconcile("cp1").await.expect("the first takes it");
    h.fake.clear_log();
    let err = h.reconcile("cp2").await.expect_err("the second is refused");
    assert!(
        chain(&err).contains("belongs to ControlPlane cp1"),
        "{err:?}"
    );
    assert!(
        !h.fake
            .writes()
            .iter()
            .any(|w| w.path.ends_with("/clusterroles/team-reader")),
        "cp1's object is left alone"
    );
    let role = h
        .fake
        .get(
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
            "team-reader",
        )
        .expect("there");
    assert_eq!(role["metadata"]["ownerReferences"][0]["name"], "cp1");
    assert_eq!(h.condition("cp2", "Synced")["reason"], "ApplyFailed");
    })
    .await;
}

#[tokio::test]
async fn a_binding_whose_role_changed_is_replaced_and_reported() {
    within(async move {
    let h = Harness::new(false).await;
    h.fake.put(
        GROUP,
        "postcreatehooks",
        json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "PostCreateHook",
               "metadata": {"name": "grant"},
               "spec": {"templates": [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                                       "metadata": {"name": "grant"},
                                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "{{.Role}}"},
                                       "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "{{.Namespace}}"}]}]}}),
    );
    h.settle().await;
    let uses = |role: &str| json!([{"hookName": "grant", "vars": {"Role": role}}]);
    h.create_control_plane(
        "cp1",
        json!({"type": "host", "postCreateHooks": uses("view")}),
    );
    h.reconcile("cp1").await.expect("first");
    h.fake
        .edit(
            GROUP,
            "controlplanes",
            None,
            "cp1",
            &json!({"spec": {"postCreateHooks": uses("edit")}}),
        )
        .expect("edited");
    h.settle().await;
    h.fake.clear_log();
    h.reconcile("cp1").await.expect("replaced");
    let path = "/apis/rbac.authorization.k8s.io/v1/namespaces/cp1-system/rolebindings/grant";
    let on_binding: Vec<Method> = h
        .fake
        .writes()
        .iter()
        .filter(|w| w.path == path)
        .map(|w| w.method.clone())
        .collect();
    assert_eq!(on_binding, [Method::PATCH, Method::DELETE, Method::PATCH]);
    let binding = h
        .fake
        .get(
            "rbac.authorization.k8s.io",
            "rolebindings",
            Some("cp1-system"),
            "grant",
        )
        .expect("there");
    assert_eq!(binding["roleRef"]["name"], "edit");
    assert!(
        h.event_reasons().contains(&"BindingReplaced".to_owned()),
        "{:?}",
        h.event_reasons()
    );
    })
    .await;
}

#[tokio::test]
async fn an_unwatched_object_deleted_is_restored_at_the_next_resync() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("vc1", json!({"type": "vcluster"}));
        h.reconcile("vc1").await.expect("first");
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(h.fake.client(), "vc1-system");
        secrets
            .delete("vc-config-vcluster", &Default::default())
            .await
            .expect("deleted");
        // Secrets are not watched: before the resync interval nothing notices (and nothing is
        // written).
        h.fake.clear_log();
        h.reconcile("vc1").await.expect("early");
        assert!(h.fake.writes().is_empty(), "{:#?}", h.fake.writes());
        let resync = i64::try_from(Options::default().resync.as_secs()).expect("seconds");
        h.clock.store(NOW + resync, Ordering::SeqCst);
        h.reconcile("vc1").await.expect("resync");
        let writes = h.fake.writes();
        let applied = applies(&writes);
        assert_eq!(applied.len(), 1, "{applied:#?}");
        assert!(
            h.fake
                .get("", "secrets", Some("vc1-system"), "vc-config-vcluster")
                .is_some()
        );
    })
    .await;
}

#[tokio::test]
async fn a_label_removed_from_an_object_is_put_back() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.reconcile("cp1").await.expect("first");
        h.fake
            .edit(
                "apps",
                "deployments",
                Some("cp1-system"),
                "kube-apiserver",
                &json!({"metadata": {"labels": {"applyset.kubernetes.io/part-of": null}}}),
            )
            .expect("edited");
        h.settle().await;
        h.fake.clear_log();
        h.reconcile("cp1").await.expect("reconciled");
        let writes = h.fake.writes();
        let applied = applies(&writes);
        assert_eq!(applied.len(), 1, "{writes:#?}");
        let deployment = h
            .fake
            .get("apps", "deployments", Some("cp1-system"), "kube-apiserver")
            .expect("there");
        assert!(
            deployment["metadata"]["labels"]["applyset.kubernetes.io/part-of"].is_string(),
            "back in the set"
        );
    })
    .await;
}

#[tokio::test]
async fn a_conflict_releasing_the_finalizer_is_retried() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "host"}));
        h.reconcile("cp1").await.expect("created");
        let api: kube::Api<ControlPlane> = kube::Api::all(h.fake.client());
        api.delete("cp1", &Default::default())
            .await
            .expect("deleted");
        h.settle().await;
        h.fake
            .fail(Method::PATCH, "/controlplanes/cp1", 409, "Conflict", 1);
        let err = h.reconcile("cp1").await.expect_err("a conflict");
        assert!(h.fake.get(GROUP, "controlplanes", None, "cp1").is_some());
        // Another writer changed it: retried at once, not after a backoff.
        assert_eq!(
            error_policy(h.control_plane("cp1"), &err, h.ctx.clone()),
            Action::requeue(std::time::Duration::from_secs(1))
        );
        assert_eq!(h.ctx.metrics.errors_counted("release_finalizer"), 1);
        h.reconcile("cp1").await.expect("released");
        assert!(h.fake.get(GROUP, "controlplanes", None, "cp1").is_none());
    })
    .await;
}

#[tokio::test]
async fn missing_rbac_is_reported_and_backed_off_longer() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "host"}));
        h.fake.deny("patch", "controlplanes");
        let err = h.reconcile("cp1").await.expect_err("forbidden");
        assert_eq!(err.label(), "patch_parent");
        assert_eq!(h.ctx.metrics.errors_counted("patch_parent"), 1);
        assert_eq!(
            error_policy(h.control_plane("cp1"), &err, h.ctx.clone()),
            Action::requeue(std::time::Duration::from_secs(60)),
            "an administrator must grant it: retrying soon only adds load"
        );
        // Where `kubectl describe` shows it: what the controller may not do, and the API's word.
        let notes: Vec<String> = h
            .fake
            .objects("events.k8s.io", "events")
            .iter()
            .filter(|e| e["reason"] == "Forbidden" && e["type"] == "Warning")
            .filter_map(|e| e["note"].as_str().map(str::to_owned))
            .collect();
        assert!(
            notes.iter().any(
                |n| n.contains("patch controlplanes.tenancy.kflex.kubestellar.org")
                    && n.contains("cannot patch resource \"controlplanes\"")
            ),
            "{notes:?}"
        );
        let writes = h.fake.writes();
        assert_eq!(
            applies(&writes),
            Vec::<&Logged>::new(),
            "nothing applied without the finalizer"
        );
    })
    .await;
}

#[tokio::test]
async fn a_broken_configuration_does_not_hold_deletion_forever() {
    within(async move {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.reconcile("cp1").await.expect("created");
        h.fake.put_kflex_config(json!({"no.such.setting": "x"}));
        let api: kube::Api<ControlPlane> = kube::Api::all(h.fake.client());
        api.delete("cp1", &Default::default())
            .await
            .expect("deleted");
        h.settle().await;
        h.clock.store(DELETED_AT + 10, Ordering::SeqCst);
        h.reconcile("cp1").await.expect("reported");
        let synced = h.condition("cp1", "Synced");
        assert_eq!(synced["reason"], "CleanupFailed");
        assert!(
            synced["message"]
                .as_str()
                .is_some_and(|m| m.contains("no.such.setting")),
            "{synced}"
        );
        let timeout = i64::try_from(Options::default().cleanup_timeout.as_secs()).expect("seconds");
        h.clock.store(DELETED_AT + timeout, Ordering::SeqCst);
        h.reconcile("cp1").await.expect("given up");
        assert!(h.fake.get(GROUP, "controlplanes", None, "cp1").is_none());
        assert!(h.event_reasons().contains(&"CleanupAbandoned".to_owned()));
    })
    .await;
}

/// `kflex controller` running in this process against `fake`, as it runs in a cluster.
struct RunningController {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    metrics: Arc<Metrics>,
}

impl RunningController {
    fn start(fake: &FakeApi) -> Self {
        Self::start_with(fake, Options::default())
    }

    fn start_with(fake: &FakeApi, options: Options) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = Running {
            system_namespace: "kubeflex-system".into(),
            concurrency: 2,
            options,
            identity: "test".into(),
        };
        let metrics = Arc::new(Metrics::default());
        let task = tokio::spawn(run_controller(
            fake.client(),
            running,
            metrics.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            stop,
            task,
            metrics,
        }
    }

    /// Waits until no reconcile is waiting or counted for `quiet` (longer than the debounce);
    /// the reconciles counted so far.
    async fn settled(&self, quiet: std::time::Duration) -> u64 {
        let mut last = self.metrics.reconciles_counted();
        let mut since = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let now = self.metrics.reconciles_counted();
            if now != last || self.metrics.queue_depth.get() > 0 {
                last = now;
                since = tokio::time::Instant::now();
            } else if since.elapsed() >= quiet {
                return now;
            }
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("joined")
            .expect("the controller stops cleanly");
    }
}

/// The reason of ControlPlane `name`'s Synced condition, if it has one.
fn synced_reason(fake: &FakeApi, name: &str) -> Option<String> {
    fake.get(GROUP, "controlplanes", None, name)
        .and_then(|cp| {
            cp["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Synced").cloned())
        })
        .and_then(|c| c["reason"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn the_running_controller_wakes_a_control_plane_when_its_hook_appears() {
    within(async move {
        let fake = installed();
        let running = RunningController::start(&fake);
        fake.put(
            GROUP,
            "controlplanes",
            json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
               "metadata": {"name": "cp1"},
               "spec": {"type": "host", "postCreateHooks": [{"hookName": "hello"}]}}),
        );
        let reason = |fake: &FakeApi| synced_reason(fake, "cp1");
        eventually("Synced=False PostCreateHookNotFound", || {
            reason(&fake).as_deref() == Some("PostCreateHookNotFound")
        })
        .await;
        // Let the reconciles its own status write caused settle (debounced), so that the hook is
        // the only change: only the hook watch can wake the ControlPlane now (no requeue).
        let quiet = std::time::Duration::from_millis(700);
        running.settled(quiet).await;
        fake.clear_log();
        running.settled(quiet).await;
        assert!(
            fake.log().iter().all(|r| r.query.contains("watch")),
            "quiet: {:#?}",
            fake.log()
        );
        fake.put(GROUP, "postcreatehooks", hello_hook());
        eventually("the hook's ConfigMap", || {
            fake.get("", "configmaps", Some("cp1-system"), "hello-cp1")
                .is_some()
        })
        .await;
        eventually("Synced=True", || {
            reason(&fake).as_deref() == Some("ReconcileSuccess")
        })
        .await;
        running.stop().await;
    })
    .await;
}

async fn delete_config_map(h: &Harness) {
    let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(h.fake.client(), "kubeflex-system");
    config_maps
        .delete("kubeflex-config", &Default::default())
        .await
        .expect("deleted");
    h.settle().await;
}

/// Writes other than the ControlPlane's status and the Events: applies, deletes, the
/// ControlPlane's own metadata.
fn writes_beyond_status(writes: &[Logged]) -> Vec<&Logged> {
    writes
        .iter()
        .filter(|w| !w.path.ends_with("/status") && !w.path.contains("/events"))
        .collect()
}

#[tokio::test]
async fn a_missing_configuration_blocks_until_it_exists() {
    within(async move {
        timed(async {
            let h = Harness::over(FakeApi::new(), false).await;
            h.create_control_plane("cp1", json!({"type": "k8s"}));
            h.fake.clear_log();
            let err = h.reconcile("cp1").await.expect_err("blocked");
            assert_eq!(err.label(), "configuration");
            assert_eq!(
                error_policy(h.control_plane("cp1"), &err, h.ctx.clone()),
                Action::await_change(),
                "the ConfigMap's watch wakes it"
            );
            assert_eq!(h.ctx.metrics.errors_counted("configuration"), 1);
            let writes = h.fake.writes();
            assert_eq!(
                writes_beyond_status(&writes),
                Vec::<&Logged>::new(),
                "nothing applied, no finalizer: {writes:#?}"
            );
            let synced = h.condition("cp1", "Synced");
            assert_eq!(
                (synced["status"].as_str(), synced["reason"].as_str()),
                (Some("False"), Some("ConfigMissing"))
            );
            let message = synced["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("ConfigMap kubeflex-system/kubeflex-config does not exist")
                    && message.contains("kflex init")
                    && message.contains("kflex render --system"),
                "{message}"
            );
            assert_eq!(h.event_reasons(), ["ConfigMissing"]);

            // Still missing: the same status, nothing written at all.
            h.fake.clear_log();
            h.reconcile("cp1").await.expect_err("still blocked");
            assert_eq!(h.fake.writes(), Vec::<Logged>::new());

            // Installed: applied.
            h.fake.put("", "configmaps", config_map());
            h.settle().await;
            h.reconcile("cp1").await.expect("applied");
            assert_eq!(h.condition("cp1", "Synced")["status"], "True");
            assert!(
                h.fake
                    .get("apps", "deployments", Some("cp1-system"), "kube-apiserver")
                    .is_some()
            );
        })
        .await;
    })
    .await;
}

/// KubeFlex's behaviour, and kflex's before: the defaults were rendered and applied — the
/// domain reset, Jobs replaced, Routes pruned on OpenShift.
#[tokio::test]
async fn a_configuration_that_disappears_changes_nothing_applied() {
    within(async move {
        timed(async {
            let h = Harness::new(false).await;
            let mut custom = config_map();
            custom["data"]["domain"] = json!("kflex.example.com");
            h.fake.put("", "configmaps", custom);
            h.settle().await;
            h.create_control_plane("cp1", json!({"type": "k8s"}));
            h.reconcile("cp1").await.expect("synced");
            let host = |h: &Harness| {
                h.fake
                    .get("networking.k8s.io", "ingresses", Some("cp1-system"), "cp1")
                    .expect("the Ingress")["spec"]["rules"][0]["host"]
                    .clone()
            };
            assert_eq!(host(&h), "cp1.kflex.example.com");

            delete_config_map(&h).await;
            // As after a restart: nothing remembered, so a pass would apply and prune everything.
            let restarted = Harness::over(h.fake.clone(), false).await;
            restarted.fake.clear_log();
            restarted.reconcile("cp1").await.expect_err("blocked");
            let writes = restarted.fake.writes();
            assert_eq!(
                writes_beyond_status(&writes),
                Vec::<&Logged>::new(),
                "{writes:#?}"
            );
            assert_eq!(
                restarted.condition("cp1", "Synced")["reason"],
                "ConfigMissing"
            );
            assert_eq!(
                host(&restarted),
                "cp1.kflex.example.com",
                "the domain is kept"
            );
            assert!(
                restarted
                    .fake
                    .get("batch", "jobs", Some("cp1-system"), "kflex-bootstrap")
                    .is_some()
            );
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn deletion_without_the_configuration_is_reported_and_bounded() {
    within(async move {
        timed(async {
            let h = Harness::new(false).await;
            h.create_control_plane("cp1", json!({"type": "k8s"}));
            h.reconcile("cp1").await.expect("created");
            delete_config_map(&h).await;
            let api: kube::Api<ControlPlane> = kube::Api::all(h.fake.client());
            api.delete("cp1", &Default::default())
                .await
                .expect("deleted");
            h.settle().await;
            h.clock.store(DELETED_AT + 10, Ordering::SeqCst);
            h.reconcile("cp1").await.expect("reported");
            let synced = h.condition("cp1", "Synced");
            assert_eq!(synced["reason"], "CleanupFailed");
            assert!(
                synced["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("kubeflex-system/kubeflex-config does not exist")),
                "{synced}"
            );
            assert!(
                h.fake
                    .get("batch", "jobs", Some("kubeflex-system"), "db-drop-cp1")
                    .is_none(),
                "no Job rendered from guessed settings"
            );
            assert!(
                h.fake.get(GROUP, "controlplanes", None, "cp1").is_some(),
                "held"
            );
            let timeout =
                i64::try_from(Options::default().cleanup_timeout.as_secs()).expect("seconds");
            h.clock.store(DELETED_AT + timeout, Ordering::SeqCst);
            h.reconcile("cp1").await.expect("given up");
            assert!(h.fake.get(GROUP, "controlplanes", None, "cp1").is_none());
            assert!(h.event_reasons().contains(&"CleanupAbandoned".to_owned()));
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn the_running_controller_applies_once_the_configuration_appears() {
    within(async move {
        timed(async {
            let fake = FakeApi::new();
            let running = RunningController::start(&fake);
            fake.put(
                GROUP,
                "controlplanes",
                json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
                   "metadata": {"name": "cp1"}, "spec": {"type": "host"}}),
            );
            let reason = |fake: &FakeApi| synced_reason(fake, "cp1");
            eventually("Synced=False ConfigMissing", || {
                reason(&fake).as_deref() == Some("ConfigMissing")
            })
            .await;
            assert_eq!(fake.count("", "namespaces"), 0, "nothing applied");
            fake.put("", "configmaps", config_map());
            eventually("the control plane's namespace", || {
                fake.get("", "namespaces", None, "cp1-system").is_some()
            })
            .await;
            eventually("Synced=True", || {
                reason(&fake).as_deref() == Some("ReconcileSuccess")
            })
            .await;
            running.stop().await;
        })
        .await;
    })
    .await;
}

/// The notes of the PruneRefused Events, each checked to be a Warning.
fn refusals(h: &Harness) -> Vec<String> {
    h.fake
        .objects("events.k8s.io", "events")
        .iter()
        .filter(|e| e["reason"] == "PruneRefused")
        .map(|e| {
            assert_eq!(e["type"], "Warning", "{e}");
            e["note"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

fn deletes(writes: &[Logged]) -> Vec<String> {
    writes
        .iter()
        .filter(|w| w.method == Method::DELETE)
        .map(|w| w.path.clone())
        .collect()
}

fn put_secret(fake: &FakeApi, namespace: &str, name: &str) {
    fake.put(
        "",
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": namespace},
               "data": {"key": "c2VjcmV0"}}),
    );
}

fn secret_exists(fake: &FakeApi, namespace: &str, name: &str) -> bool {
    fake.get("", "secrets", Some(namespace), name).is_some()
}

/// Secrets a tenant must not reach through its ControlPlane's annotations: another control
/// plane's keys and kubeconfig, the shared PostgreSQL's admin password, and the tenant's own
/// control plane's keys (created at runtime, never rendered).
const VICTIM_SECRETS: [(&str, &str); 4] = [
    ("cp2-system", "k8s-certs"),
    ("cp2-system", "admin-kubeconfig"),
    ("kubeflex-system", "postgres-postgresql"),
    ("cp1-system", "admin-kubeconfig"),
];

/// The ApplySet annotations as someone who may write ControlPlane cp1 can forge them: every
/// victim Secret by name, and kinds and namespaces under which labelled objects elsewhere are
/// found.
fn forged_annotations() -> Value {
    let secrets: Vec<String> = VICTIM_SECRETS
        .iter()
        .map(|(namespace, name)| format!("{namespace}/{name}"))
        .collect();
    json!({
        "applyset.kubernetes.io/contains-group-kinds":
            "ClusterRole.rbac.authorization.k8s.io,ConfigMap,Namespace,PodDisruptionBudget.policy,Secret,ServiceAccount",
        "applyset.kubernetes.io/additional-namespaces": "cp2-system,default,kubeflex-system",
        "kflex.kubestellar.org/secrets": secrets.join(","),
    })
}

/// Objects elsewhere that carry cp1's ApplySet label (a copy, a mistake, or someone else's
/// doing): in another namespace (a watched kind and a listed one), in the system namespace, and
/// cluster-scoped but labelled for another control plane.
fn put_labelled_elsewhere(fake: &FakeApi) {
    let part_of = kflex::cluster::ownership::applyset_id("cp1");
    let labels = |control_plane: &str| json!({"applyset.kubernetes.io/part-of": part_of, "kflex.kubestellar.org/control-plane": control_plane});
    fake.put(
        "",
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "team-settings", "namespace": "default", "labels": labels("cp1")}}),
    );
    fake.put(
        "policy",
        "poddisruptionbudgets",
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": "apiserver", "namespace": "cp2-system", "labels": labels("cp2")},
               "spec": {"minAvailable": 1}}),
    );
    fake.put(
        "",
        "serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "postgres-postgresql", "namespace": "kubeflex-system", "labels": labels("cp1")}}),
    );
    fake.put(
        "rbac.authorization.k8s.io",
        "clusterroles",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "cp2-reader", "labels": labels("cp2")}, "rules": []}),
    );
}

/// (group, plural, namespace, name) of [`put_labelled_elsewhere`]'s objects.
const LABELLED_ELSEWHERE: [(&str, &str, Option<&str>, &str); 4] = [
    ("", "configmaps", Some("default"), "team-settings"),
    (
        "policy",
        "poddisruptionbudgets",
        Some("cp2-system"),
        "apiserver",
    ),
    (
        "",
        "serviceaccounts",
        Some("kubeflex-system"),
        "postgres-postgresql",
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterroles",
        None,
        "cp2-reader",
    ),
];

fn assert_victims_untouched(h: &Harness, writes: &[Logged]) {
    for (namespace, name) in VICTIM_SECRETS {
        assert!(
            secret_exists(&h.fake, namespace, name),
            "{namespace}/{name}"
        );
        assert!(
            !writes.iter().any(|w| w
                .path
                .ends_with(&format!("/namespaces/{namespace}/secrets/{name}"))),
            "{namespace}/{name} was written to: {writes:#?}"
        );
    }
    for (group, plural, namespace, name) in LABELLED_ELSEWHERE {
        assert!(
            h.fake.get(group, plural, namespace, name).is_some(),
            "{plural} {namespace:?}/{name}"
        );
        assert!(
            !writes
                .iter()
                .any(|w| w.method == Method::DELETE
                    && w.path.ends_with(&format!("/{plural}/{name}"))),
            "{plural} {name} deleted: {writes:#?}"
        );
    }
    // cp2 itself is intact.
    assert!(
        h.fake
            .get("", "serviceaccounts", Some("kubeflex-system"), "db-cp2")
            .is_some()
    );
}

/// Each refusal is reported in a Warning Event naming the object; `expected` are the objects
/// (as the Events name them) that must appear.
fn assert_refusals_reported(h: &Harness) {
    let notes = refusals(h);
    for expected in [
        "Secret cp2-system/k8s-certs",
        "Secret cp2-system/admin-kubeconfig",
        "Secret kubeflex-system/postgres-postgresql",
        "Secret cp1-system/admin-kubeconfig",
        "ConfigMap default/team-settings",
        "PodDisruptionBudget cp2-system/apiserver",
        "ServiceAccount kubeflex-system/postgres-postgresql",
        "ClusterRole cp2-reader",
    ] {
        let matching: Vec<&String> = notes
            .iter()
            .filter(|n| n.starts_with(&format!("{expected} ")))
            .collect();
        assert_eq!(matching.len(), 1, "{expected} reported once: {notes:#?}");
    }
}

#[tokio::test]
async fn forged_annotations_cannot_make_pruning_delete_what_is_not_the_control_planes() {
    within(async move {
        timed(async {
            let h = Harness::new(false).await;
            h.fake.put(GROUP, "postcreatehooks", hello_hook());
            h.create_control_plane("cp2", json!({"type": "k8s"}));
            h.reconcile("cp2").await.expect("cp2 synced");
            for (namespace, name) in VICTIM_SECRETS {
                put_secret(&h.fake, namespace, name);
            }
            put_labelled_elsewhere(&h.fake);
            h.create_control_plane(
                "cp1",
                json!({"type": "host", "postCreateHooks": [{"hookName": "hello"}]}),
            );
            h.settle().await;
            h.reconcile("cp1").await.expect("cp1 synced");

            // A tenant forges cp1's annotations (or copies them from an exported ControlPlane) and
            // removes its hook: the hook's ConfigMap goes, and only that.
            h.fake
                .edit(
                    GROUP,
                    "controlplanes",
                    None,
                    "cp1",
                    &json!({"metadata": {"annotations": forged_annotations()},
                        "spec": {"postCreateHooks": null}}),
                )
                .expect("forged");
            h.settle().await;
            h.fake.clear_log();
            h.reconcile("cp1").await.expect("pruned");
            let writes = h.fake.writes();
            assert_eq!(
                deletes(&writes),
                ["/api/v1/namespaces/cp1-system/configmaps/hello-cp1"],
                "legitimate pruning still works, and deletes nothing else"
            );
            assert_victims_untouched(&h, &writes);
            assert_refusals_reported(&h);
            assert_eq!(h.condition("cp1", "Synced")["status"], "True");
            // The parent lists its members again: the forged entries are gone.
            let kinds = h
                .annotation("cp1", "applyset.kubernetes.io/contains-group-kinds")
                .unwrap_or_default();
            assert!(
                !kinds.contains("PodDisruptionBudget") && !kinds.contains("ConfigMap"),
                "{kinds}"
            );
            assert_eq!(h.annotation("cp1", "kflex.kubestellar.org/secrets"), None);

            // Forged again, the same way: still nothing deleted, and no second Event for the same
            // refusals.
            let reported = refusals(&h).len();
            h.fake
                .edit(
                    GROUP,
                    "controlplanes",
                    None,
                    "cp1",
                    &json!({"metadata": {"annotations": forged_annotations()}}),
                )
                .expect("forged");
            h.settle().await;
            h.fake.clear_log();
            h.reconcile("cp1").await.expect("pruned");
            let writes = h.fake.writes();
            assert_eq!(deletes(&writes), Vec::<String>::new());
            assert_victims_untouched(&h, &writes);
            assert_eq!(refusals(&h).len(), reported, "{:#?}", refusals(&h));
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn forged_annotations_cannot_make_deletion_delete_what_is_not_the_control_planes() {
    within(async move {
        timed(async {
            let h = Harness::new(false).await;
            h.create_control_plane("cp2", json!({"type": "k8s"}));
            h.reconcile("cp2").await.expect("cp2 synced");
            h.create_control_plane("cp1", json!({"type": "k8s"}));
            h.reconcile("cp1").await.expect("cp1 synced");
            for (namespace, name) in VICTIM_SECRETS {
                put_secret(&h.fake, namespace, name);
            }
            put_labelled_elsewhere(&h.fake);
            // The forgery comes with the deletion (paused, so no pass rewrites it before).
            h.fake
                .edit(
                    GROUP,
                    "controlplanes",
                    None,
                    "cp1",
                    &json!({"metadata": {"annotations": forged_annotations()
                    .as_object()
                    .cloned()
                    .map(|mut a| {
                        a.insert("kflex.kubestellar.org/paused".into(), json!("true"));
                        a
                    })}}),
                )
                .expect("forged");
            let api: kube::Api<ControlPlane> = kube::Api::all(h.fake.client());
            api.delete("cp1", &Default::default())
                .await
                .expect("deleted");
            h.settle().await;
            h.clock.store(DELETED_AT + 10, Ordering::SeqCst);
            h.fake.clear_log();
            h.reconcile("cp1").await.expect("cleanup started");
            h.fake
                .edit(
                    "batch",
                    "jobs",
                    Some("kubeflex-system"),
                    "db-drop-cp1",
                    &json!({"status": {"succeeded": 1}}),
                )
                .expect("done");
            h.settle().await;
            h.reconcile("cp1").await.expect("released");
            assert!(h.fake.get(GROUP, "controlplanes", None, "cp1").is_none());
            let writes = h.fake.writes();
            let mut deleted = deletes(&writes);
            deleted.sort();
            assert_eq!(
                deleted,
                [
                    "/api/v1/namespaces/cp1-system",
                    "/api/v1/namespaces/kubeflex-system/serviceaccounts/db-cp1",
                    "/apis/batch/v1/namespaces/kubeflex-system/jobs/db-cp1",
                    "/apis/batch/v1/namespaces/kubeflex-system/jobs/db-drop-cp1",
                ],
                "only cp1's own members in the system namespace and its cluster-scoped ones"
            );
            assert_victims_untouched(&h, &writes);
            assert_refusals_reported(&h);
        })
        .await;
    })
    .await;
}

/// The configuration ConfigMap with `settings` changed (keys as the ConfigMap holds them).
fn config_map_with(settings: &[(&str, &str)]) -> Value {
    let mut config = config_map();
    for (key, value) in settings {
        config["data"][*key] = json!(value);
    }
    config
}

/// Changes the hosting cluster's configuration and lets the controller's cache see it.
async fn configure(h: &Harness, settings: &[(&str, &str)]) {
    h.fake.put("", "configmaps", config_map_with(settings));
    h.settle().await;
}

fn uid(fake: &FakeApi, group: &str, plural: &str, namespace: &str, name: &str) -> Value {
    fake.get(group, plural, Some(namespace), name)
        .map(|o| o["metadata"]["uid"].clone())
        .unwrap_or(Value::Null)
}

const GATEWAY_API: &str = "gateway.networking.k8s.io";

/// Switching the exposure of live control planes: the old exposure object is pruned, the new one
/// applied, the namespace label and the API Service follow, and nothing else is written — no
/// Secret, no Job replaced (certificates and kubeconfigs do not depend on the exposure).
#[tokio::test]
async fn switching_exposure_prunes_the_old_object_and_applies_the_new_alone() {
    within(async move {
    timed(async {
        let h = Harness::new(false).await;
        h.create_control_plane("cp1", json!({"type": "k8s"}));
        h.create_control_plane("vc1", json!({"type": "vcluster"}));
        for name in ["cp1", "vc1"] {
            h.reconcile(name).await.expect("created");
        }
        let ingress = |ns: &str, name: &str| h.fake.get("networking.k8s.io", "ingresses", Some(ns), name);
        let route = |ns: &str, name: &str| h.fake.get(GATEWAY_API, "tlsroutes", Some(ns), name);
        assert!(ingress("cp1-system", "cp1").is_some() && ingress("vc1-system", "vc1").is_some());
        let job = uid(&h.fake, "batch", "jobs", "cp1-system", "kflex-bootstrap");
        let statefulset = uid(&h.fake, "apps", "statefulsets", "vc1-system", "vcluster");
        assert!(!job.is_null() && !statefulset.is_null());

        // ingress → gateway → loadBalancer → ingress again.
        for exposure in ["gateway", "loadBalancer", "ingress"] {
            configure(&h, &[("exposure", exposure)]).await;
            h.fake.clear_log();
            for name in ["cp1", "vc1"] {
                h.reconcile(name).await.expect("switched");
            }
            let writes = h.fake.writes();
            let touched_secrets: Vec<_> = writes.iter().filter(|w| w.path.contains("/secrets")).collect();
            assert!(touched_secrets.is_empty(), "{exposure}: {touched_secrets:#?}");
            let job_writes: Vec<_> = writes
                .iter()
                .filter(|w| w.path.contains("/jobs") && w.method != Method::PATCH)
                .collect();
            assert!(job_writes.is_empty(), "{exposure}: a Job was replaced: {job_writes:#?}");
            assert_eq!(uid(&h.fake, "batch", "jobs", "cp1-system", "kflex-bootstrap"), job);
            assert_eq!(uid(&h.fake, "apps", "statefulsets", "vc1-system", "vcluster"), statefulset);
            assert!(!h.event_reasons().iter().any(|r| r == "JobReplaced"));
            // Only the exposure's objects (and the ControlPlane's parent records) were written.
            let written: std::collections::BTreeSet<String> = applies(&writes)
                .iter()
                .map(|w| w.path.rsplit('/').nth(1).unwrap_or_default().to_owned())
                .collect();
            assert!(
                written.iter().all(|plural| {
                    ["namespaces", "services", "tlsroutes", "ingresses"].contains(&plural.as_str())
                }),
                "{exposure}: {written:?}"
            );
            for (cp, service) in [("cp1", "cp1"), ("vc1", "vcluster")] {
                let ns = format!("{cp}-system");
                let namespace = h.fake.get("", "namespaces", None, &ns).expect("the namespace");
                let label = &namespace["metadata"]["labels"]["kflex.kubestellar.org/control-plane-namespace"];
                let service_type = h.fake.get("", "services", Some(&ns), service).expect("the Service")["spec"]["type"].clone();
                match exposure {
                    "gateway" => {
                        assert!(ingress(&ns, cp).is_none(), "{cp}: the Ingress is pruned");
                        let tls = route(&ns, cp).expect("the TLSRoute is applied");
                        assert_eq!(tls["spec"]["hostnames"], json!([format!("{cp}.localtest.me")]));
                        assert_eq!(tls["spec"]["rules"][0]["backendRefs"][0]["name"], service);
                        assert_eq!(label, cp);
                        assert_eq!(service_type, "ClusterIP");
                    }
                    "loadBalancer" => {
                        assert!(route(&ns, cp).is_none(), "{cp}: the TLSRoute is pruned");
                        assert!(ingress(&ns, cp).is_none());
                        assert!(label.is_null(), "{cp}: the label goes with the gateway");
                        assert_eq!(service_type, "LoadBalancer");
                    }
                    _ => {
                        assert!(ingress(&ns, cp).is_some(), "{cp}: the Ingress is back");
                        assert!(route(&ns, cp).is_none());
                        assert_eq!(service_type, "ClusterIP");
                    }
                }
            }
            let deletes = deletes(&writes);
            let pruned_kind = match exposure {
                "gateway" => "/ingresses/",
                "loadBalancer" => "/tlsroutes/",
                _ => "/services/none",
            };
            if exposure != "ingress" {
                assert_eq!(
                    deletes.iter().filter(|d| d.contains(pruned_kind)).count(),
                    2,
                    "{exposure}: {deletes:?}"
                );
            }
            assert_eq!(h.condition("cp1", "Synced")["status"], "True");
        }
    })
    .await;
    })
    .await;
}

/// With exposure gateway, Ready also needs the TLSRoute accepted by its Gateway, and says what
/// the Gateway said when it is not.
#[tokio::test]
async fn ready_waits_for_the_gateway_to_accept_the_route_and_reports_its_message() {
    within(async move {
    timed(async {
        let fake = FakeApi::new();
        fake.put("", "configmaps", config_map_with(&[("exposure", "gateway")]));
        let h = Harness::over(fake, true).await;
        h.create_control_plane("cp1", json!({"type": "k3s"}));
        h.reconcile("cp1").await.expect("created");
        h.fake
            .edit("apps", "statefulsets", Some("cp1-system"), "k3s-server", &json!({"status": {"readyReplicas": 1}}))
            .expect("ready");
        h.fake.put(
            "",
            "secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k3s-config", "namespace": "cp1-system"},
                   "data": {"config-incluster": "a3ViZWNvbmZpZw=="}}),
        );
        h.settle().await;
        let ready = |h: &Harness| {
            let c = h.condition("cp1", "Ready");
            (c["status"].as_str().unwrap_or_default().to_owned(), c["message"].as_str().unwrap_or_default().to_owned())
        };
        let action = h.reconcile("cp1").await.expect("reconciled");
        assert_eq!(action, Action::requeue(Options::default().not_ready_requeue));
        let (status, message) = ready(&h);
        assert_eq!(status, "False");
        assert!(message.contains("TLSRoute cp1-system/cp1 is not accepted by Gateway kubeflex-system/kubeflex: no Gateway API implementation has reported"), "{message}");

        let generation = h.fake.get(GATEWAY_API, "tlsroutes", Some("cp1-system"), "cp1").expect("the route")["metadata"]["generation"].clone();
        let report = |status: &str, reason: &str, message: &str| {
            json!({"status": {"parents": [{"parentRef": {"group": GATEWAY_API, "kind": "Gateway", "name": "kubeflex", "namespace": "kubeflex-system"},
                "controllerName": "example.com/gateway-controller",
                "conditions": [{"type": "Accepted", "status": status, "reason": reason, "message": message,
                                "observedGeneration": generation, "lastTransitionTime": "2026-11-21T00:00:00Z"}]}]}})
        };
        h.fake
            .edit(GATEWAY_API, "tlsroutes", Some("cp1-system"), "cp1", &report("False", "NotAllowedByListeners", "no listener admits TLSRoutes from cp1-system"))
            .expect("reported");
        h.settle().await;
        h.reconcile("cp1").await.expect("reconciled");
        let (status, message) = ready(&h);
        assert_eq!(
            (status.as_str(), message.as_str()),
            ("False", "TLSRoute cp1-system/cp1 is not accepted by Gateway kubeflex-system/kubeflex: NotAllowedByListeners: no listener admits TLSRoutes from cp1-system")
        );
        h.fake
            .edit(GATEWAY_API, "tlsroutes", Some("cp1-system"), "cp1", &report("True", "Accepted", ""))
            .expect("reported");
        h.settle().await;
        let action = h.reconcile("cp1").await.expect("reconciled");
        assert_eq!(ready(&h).0, "True");
        assert_eq!(action, Action::requeue(Options::default().resync));
    })
    .await;
    })
    .await;
}

/// With exposure loadBalancer, Ready needs the API Service's address; with
/// loadBalancer.publishAddress also the off-cluster kubeconfig naming it (what `kflex create`
/// fetches once Ready).
#[tokio::test]
async fn ready_waits_for_the_load_balancer_and_its_published_address() {
    within(async move {
    timed(async {
        let fake = FakeApi::new();
        fake.put(
            "",
            "configmaps",
            config_map_with(&[("exposure", "loadBalancer"), ("loadBalancer.publishAddress", "true")]),
        );
        let h = Harness::over(fake, true).await;
        h.create_control_plane("cp1", json!({"type": "k3s"}));
        h.reconcile("cp1").await.expect("created");
        h.fake
            .edit("apps", "statefulsets", Some("cp1-system"), "k3s-server", &json!({"status": {"readyReplicas": 1}}))
            .expect("ready");
        let kubeconfig = |server: &str| {
            use base64::Engine as _;
            let config = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
            );
            base64::engine::general_purpose::STANDARD.encode(config)
        };
        let publish = |server: &str| {
            h.fake.put(
                "",
                "secrets",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k3s-config", "namespace": "cp1-system"},
                       "data": {"config-incluster": kubeconfig("https://k3s.cp1-system.svc"), "config": kubeconfig(server)}}),
            );
        };
        publish("https://cp1.localtest.me:9443");
        h.settle().await;
        let message = |h: &Harness| h.condition("cp1", "Ready")["message"].as_str().unwrap_or_default().to_owned();
        h.reconcile("cp1").await.expect("reconciled");
        assert_eq!(h.condition("cp1", "Ready")["status"], "False");
        assert!(message(&h).starts_with("Service cp1-system/k3s has no load-balancer address yet"), "{}", message(&h));
        h.fake
            .edit("", "services", Some("cp1-system"), "k3s", &json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}))
            .expect("an address");
        h.settle().await;
        h.reconcile("cp1").await.expect("reconciled");
        assert_eq!(
            message(&h),
            "the off-cluster kubeconfig (Secret cp1-system/k3s-config key config) does not name the load balancer's address 203.0.113.7 yet"
        );
        publish("https://203.0.113.7:9443");
        h.settle().await;
        h.reconcile("cp1").await.expect("reconciled");
        assert_eq!(h.condition("cp1", "Ready")["status"], "True", "{}", message(&h));
    })
    .await;
    })
    .await;
}

/// The configuration ConfigMap as `kflex render --system` renders it with `settings`.
fn config_map_for(settings: &Settings) -> Value {
    let system = Renderer::new(settings.clone(), &TemplateSet::embedded())
        .expect("renderer")
        .render_system()
        .expect("the system manifests");
    let config = system
        .manifests
        .iter()
        .find(|m| m.kind() == "ConfigMap" && m.name() == "kubeflex-config")
        .expect("the system manifests hold the configuration");
    Value::Object(config.object().clone())
}

/// The settings of a hosting cluster whose shared datastore is an existing server.
fn external_postgres() -> Settings {
    let mut settings = Settings::default();
    settings.postgres.mode = kflex_core::settings::PostgresMode::External;
    settings.postgres.external.secret_name = "pg-admin".into();
    settings
}

/// The paths of the writes that change objects (applies and deletes), ControlPlanes and Events
/// aside.
fn object_writes(writes: &[Logged]) -> std::collections::BTreeSet<String> {
    writes
        .iter()
        .filter(|w| {
            (w.method == Method::PATCH || w.method == Method::DELETE)
                && !w.path.contains("/controlplanes/")
                && !w.path.contains("/events")
        })
        .map(|w| w.path.clone())
        .collect()
}

/// `postgres.mode` is the hosting cluster's: switching it in the configuration moves every
/// shared-backend control plane's database Job to the other server (replaced, as a changed Job
/// is) and kine's TLS mode with it, and nothing else. The shared PostgreSQL itself belongs to
/// the system manifests, which the controller never applies or prunes (its admission policy
/// forbids deleting there): `kflex render --system` stops rendering it, and `kflex init` (or
/// Argo CD, Flux) removes it — tests/commands.rs.
#[tokio::test]
async fn switching_postgres_mode_moves_the_database_job_and_leaves_the_system_postgresql() {
    within(async move {
        timed(async {
            let h = Harness::new(false).await;
            let defaults = Renderer::new(Settings::default(), &TemplateSet::embedded())
                .expect("renderer")
                .render_system()
                .expect("system");
            let server: Vec<_> = defaults
                .manifests
                .iter()
                .filter(|m| m.source().starts_with("postgres/"))
                .collect();
            assert!(server.len() >= 10, "the in-cluster server's objects");
            let plural = |kind: &str| match kind {
                "NetworkPolicy" => "networkpolicies".to_owned(),
                other => format!("{}s", other.to_ascii_lowercase()),
            };
            for manifest in &server {
                h.fake.put(
                    manifest.group(),
                    &plural(manifest.kind()),
                    Value::Object(manifest.object().clone()),
                );
            }
            h.create_control_plane("cp1", json!({"type": "k8s"}));
            h.create_control_plane("vc", json!({"type": "vcluster"}));
            h.reconcile("cp1").await.expect("first");
            h.reconcile("vc").await.expect("first");
            let job = "/apis/batch/v1/namespaces/kubeflex-system/jobs/db-cp1";
            let deployment = "/apis/apps/v1/namespaces/cp1-system/deployments/kube-apiserver";

            h.fake
                .put("", "configmaps", config_map_for(&external_postgres()));
            h.settle().await;
            h.fake.clear_log();
            h.reconcile("cp1").await.expect("reconciled");
            h.reconcile("vc").await.expect("reconciled");
            let writes = h.fake.writes();
            assert_eq!(
                object_writes(&writes),
                [deployment.to_owned(), job.to_owned()].into(),
                "only the database Job and the API servers change: {writes:#?}"
            );
            let on_job: Vec<Method> = writes
                .iter()
                .filter(|w| w.path == job)
                .map(|w| w.method.clone())
                .collect();
            assert_eq!(
                on_job,
                [Method::PATCH, Method::DELETE, Method::PATCH],
                "replaced"
            );
            let live = h
                .fake
                .get("batch", "jobs", Some("kubeflex-system"), "db-cp1")
                .expect("the Job");
            let pod = &live["spec"]["template"]["spec"];
            assert_eq!(pod["volumes"][0]["secret"]["secretName"], "pg-admin");
            assert!(
                pod["containers"][0]["args"]
                    .as_array()
                    .expect("args")
                    .contains(&json!("--server-dir=/var/run/secrets/kflex/postgres"))
            );
            let api = h
                .fake
                .get("apps", "deployments", Some("cp1-system"), "kube-apiserver")
                .expect("the API servers");
            let env = api["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
            assert!(env.contains("\"key\":\"sslmode\""), "{env}");
            for manifest in &server {
                assert!(
                    h.fake
                        .get(
                            manifest.group(),
                            &plural(manifest.kind()),
                            manifest.namespace(),
                            manifest.name()
                        )
                        .is_some(),
                    "the controller left {} alone",
                    manifest.key()
                );
            }
            assert!(
                h.event_reasons().contains(&"JobReplaced".to_owned()),
                "{:?}",
                h.event_reasons()
            );

            // And back: the Job reads the in-cluster server's password and CA again.
            h.fake.put("", "configmaps", config_map());
            h.settle().await;
            h.fake.clear_log();
            h.reconcile("cp1").await.expect("reconciled");
            assert_eq!(
                object_writes(&h.fake.writes()),
                [deployment.to_owned(), job.to_owned()].into()
            );
            let live = h
                .fake
                .get("batch", "jobs", Some("kubeflex-system"), "db-cp1")
                .expect("the Job");
            assert_eq!(
                live["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
                "postgres-postgresql"
            );
        })
        .await;
    })
    .await;
}

/// A dedicated control plane's PostgreSQL is in its own namespace: nothing of it is in
/// kubeflex-system, its deletion runs no Job on the shared server, and the namespace — with the
/// server, its volume claim and Secrets — goes once the control plane is being released.
#[tokio::test]
async fn a_dedicated_control_plane_is_deleted_without_touching_the_shared_server() {
    within(async move {
        timed(async {
            let h = Harness::new(false).await;
            h.create_control_plane("cp1", json!({"type": "k8s", "backend": "dedicated"}));
            h.reconcile("cp1").await.expect("created");
            let server = h
                .fake
                .get("apps", "statefulsets", Some("cp1-system"), "postgres")
                .expect("its own PostgreSQL");
            assert_eq!(server["metadata"]["ownerReferences"][0]["name"], "cp1");
            for (group, plural, name) in [
                ("batch", "jobs", "db-cp1"),
                ("", "serviceaccounts", "db-cp1"),
            ] {
                assert!(
                    h.fake
                        .get(group, plural, Some("kubeflex-system"), name)
                        .is_none(),
                    "{plural}/{name}: nothing in kubeflex-system"
                );
            }
            assert!(
                h.fake
                    .get("batch", "jobs", Some("cp1-system"), "kflex-database")
                    .is_some()
            );
            let api: kube::Api<ControlPlane> = kube::Api::all(h.fake.client());
            api.delete("cp1", &Default::default())
                .await
                .expect("deleted");
            h.settle().await;
            h.clock.store(DELETED_AT + 10, Ordering::SeqCst);
            h.fake.clear_log();
            h.reconcile("cp1").await.expect("released at once");
            let writes = h.fake.writes();
            assert!(
                !writes.iter().any(|w| w.path.contains("/kubeflex-system/")),
                "no Job on the shared server: {writes:#?}"
            );
            assert!(h.fake.get(GROUP, "controlplanes", None, "cp1").is_none());
            assert!(
                deletes(&writes).contains(&"/api/v1/namespaces/cp1-system".to_owned()),
                "the namespace, and with it the server and its claim: {writes:#?}"
            );
        })
        .await;
    })
    .await;
}

/// Scaling a k8s control plane's API servers changes its Deployments and disruption budgets,
/// and nothing else: no Job is replaced, no Service or Secret touched.
#[tokio::test]
async fn scaling_api_servers_applies_only_the_deployments_and_budgets() {
    within(async move {
        timed(async {
            let h = Harness::new(false).await;
            h.create_control_plane("cp1", json!({"type": "k8s"}));
            h.reconcile("cp1").await.expect("first");
            let deployment =
                |name: &str| format!("/apis/apps/v1/namespaces/cp1-system/deployments/{name}");
            let budget = |name: &str| {
                format!("/apis/policy/v1/namespaces/cp1-system/poddisruptionbudgets/{name}")
            };
            let scale = |replicas: i64| {
                h.fake
                    .edit(
                        GROUP,
                        "controlplanes",
                        None,
                        "cp1",
                        &json!({"spec": {"replicas": replicas}}),
                    )
                    .expect("scaled");
            };
            let replicas = |name: &str| {
                h.fake
                    .get("apps", "deployments", Some("cp1-system"), name)
                    .expect("the Deployment")["spec"]["replicas"]
                    .clone()
            };

            // Up to three: both Deployments change (two controller managers), two budgets appear.
            scale(3);
            h.settle().await;
            h.fake.clear_log();
            h.reconcile("cp1").await.expect("scaled up");
            let writes = h.fake.writes();
            assert_eq!(
                object_writes(&writes),
                [
                    budget("kube-apiserver"),
                    budget("kube-controller-manager"),
                    deployment("kube-apiserver"),
                    deployment("kube-controller-manager"),
                ]
                .into(),
                "{writes:#?}"
            );
            assert!(writes.iter().all(|w| w.method != Method::DELETE));
            assert_eq!(replicas("kube-apiserver"), 3);
            assert_eq!(replicas("kube-controller-manager"), 2);

            // Down to two: the API servers' Deployment alone.
            scale(2);
            h.settle().await;
            h.fake.clear_log();
            h.reconcile("cp1").await.expect("scaled down");
            assert_eq!(
                object_writes(&h.fake.writes()),
                [deployment("kube-apiserver")].into()
            );
            assert_eq!(replicas("kube-apiserver"), 2);

            // Down to one: both Deployments, and the budgets are pruned.
            scale(1);
            h.settle().await;
            h.fake.clear_log();
            h.reconcile("cp1").await.expect("scaled down to one");
            let writes = h.fake.writes();
            assert_eq!(
                object_writes(&writes),
                [
                    budget("kube-apiserver"),
                    budget("kube-controller-manager"),
                    deployment("kube-apiserver"),
                    deployment("kube-controller-manager"),
                ]
                .into(),
                "{writes:#?}"
            );
            let mut pruned = deletes(&writes);
            pruned.sort();
            assert_eq!(
                pruned,
                [budget("kube-apiserver"), budget("kube-controller-manager")],
                "the budgets are pruned (in no particular order)"
            );
            assert_eq!(replicas("kube-controller-manager"), 1);
            assert_eq!(
                h.fake.count("policy", "poddisruptionbudgets"),
                0,
                "no budget is left"
            );
            assert_eq!(h.condition("cp1", "Synced")["status"], "True");
        })
        .await;
    })
    .await;
}

/// Options under which every reconcile a test counts was caused by an event: a control plane
/// that is not Ready is not polled again within the test.
fn event_driven() -> Options {
    Options {
        not_ready_requeue: std::time::Duration::from_secs(3600),
        ..Options::default()
    }
}

#[tokio::test]
async fn the_running_controller_creates_a_control_plane_in_at_most_two_passes() {
    within(async move {
        timed(async {
            let fake = installed();
            let running = RunningController::start_with(&fake, event_driven());
            let quiet = std::time::Duration::from_millis(1500);
            running.settled(quiet).await;
            fake.put(
                GROUP,
                "controlplanes",
                json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
                   "metadata": {"name": "cp1"}, "spec": {"type": "k8s"}}),
            );
            eventually("Synced=True", || {
                synced_reason(&fake, "cp1").as_deref() == Some("ReconcileSuccess")
            })
            .await;
            let created = running.settled(quiet).await;
            // The objects' watch events and the ControlPlane's own writes come while the first pass
            // runs: folded into at most one more.
            assert!(
                (1..=2).contains(&created),
                "{created} reconciles to create one control plane"
            );
            let text = running.metrics.encode();
            assert!(
                text.contains("kflex_reconcile_duration_seconds_count ")
                    && text.contains("kflex_reconcile_queue_depth 0"),
                "{text}"
            );

            // Status, the ControlPlane's own or its Deployment's, is nothing to act on.
            let mut cp = fake
                .get(GROUP, "controlplanes", None, "cp1")
                .expect("exists");
            if let Some(conditions) = cp["status"]["conditions"].as_array_mut() {
                conditions.push(json!({"type": "Custom", "status": "True", "reason": "Test",
                                   "message": "", "lastUpdateTime": "2026-12-03T00:00:00Z",
                                   "lastTransitionTime": "2026-12-03T00:00:00Z"}));
            }
            fake.put(GROUP, "controlplanes", cp);
            fake.edit(
                "apps",
                "deployments",
                Some("cp1-system"),
                "kube-apiserver",
                &json!({"status": {"replicas": 1, "readyReplicas": 0}}),
            )
            .expect("edited");
            assert_eq!(
                running.settled(quiet).await,
                created,
                "status changes woke a reconcile"
            );

            // Drift is still corrected by the running controller: a deleted object comes back, a
            // changed one is put back.
            fake.clear_log();
            let services: kube::Api<k8s_openapi::api::core::v1::Service> =
                kube::Api::namespaced(fake.client(), "cp1-system");
            let service = fake
                .objects("", "services")
                .into_iter()
                .find_map(|s| {
                    (s["metadata"]["namespace"] == "cp1-system")
                        .then(|| s["metadata"]["name"].as_str().map(str::to_owned))
                        .flatten()
                })
                .expect("a k8s control plane has a Service");
            services
                .delete(&service, &Default::default())
                .await
                .expect("deleted");
            fake.edit(
                "apps",
                "deployments",
                Some("cp1-system"),
                "kube-apiserver",
                &json!({"spec": {"replicas": 7}}),
            )
            .expect("edited");
            eventually("the Service created again", || {
                fake.get("", "services", Some("cp1-system"), &service)
                    .is_some()
            })
            .await;
            eventually("the Deployment put back", || {
                fake.get("apps", "deployments", Some("cp1-system"), "kube-apiserver")
                    .is_some_and(|d| d["spec"]["replicas"] != 7)
            })
            .await;
            running.settled(quiet).await;
            running.stop().await;

            // A restart with everything in place: one pass, nothing written.
            fake.clear_log();
            let restarted = RunningController::start_with(&fake, event_driven());
            eventually("the first pass", || {
                restarted.metrics.reconciles_counted() > 0
            })
            .await;
            assert_eq!(restarted.settled(quiet).await, 1, "reconciles at a restart");
            assert_eq!(fake.writes(), Vec::<Logged>::new(), "writes at a restart");
            restarted.stop().await;
        })
        .await;
    })
    .await;
}

/// A plain-HTTP endpoint that holds each connection for `hold`, then drops it: a control
/// plane API that makes the readiness probe, and so the pass, take that long. Counts
/// connections.
async fn slow_api(hold: std::time::Duration) -> (std::net::SocketAddr, Arc<AtomicI64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bound");
    let address = listener.local_addr().expect("an address");
    let connections = Arc::new(AtomicI64::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                drop(stream);
            });
        }
    });
    (address, connections)
}

#[tokio::test]
async fn events_arriving_while_a_pass_runs_are_folded_into_one_more_pass() {
    within(async move {
        timed(async {
            let fake = installed();
            let (api, probes) = slow_api(std::time::Duration::from_millis(1500)).await;
            fake.put(
                "",
                "secrets",
                json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "admin-kubeconfig", "namespace": "cp1-system"},
                   "data": {"kubeconfig-incluster": base64_of(&FakeApi::kubeconfig(api))}}),
            );
            let running = RunningController::start_with(&fake, event_driven());
            let quiet = std::time::Duration::from_millis(2500);
            fake.put(
                GROUP,
                "controlplanes",
                json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
                   "metadata": {"name": "cp1"}, "spec": {"type": "host"}}),
            );
            eventually("Synced=True", || {
                synced_reason(&fake, "cp1").as_deref() == Some("ReconcileSuccess")
            })
            .await;
            let before = running.settled(quiet).await;
            let probed = probes.load(Ordering::SeqCst);

            // One edit wakes a pass; five more arrive while it waits on the slow API.
            let touch = |round: i64| {
                fake.edit(
                "",
                "serviceaccounts",
                Some("cp1-system"),
                "kflex-bootstrap",
                &json!({"metadata": {"annotations": {"example.com/touched": round.to_string()}}}),
            )
            .expect("edited");
            };
            touch(0);
            eventually("the pass probing the API", || {
                probes.load(Ordering::SeqCst) > probed
            })
            .await;
            for round in 1..=5 {
                touch(round);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let after = running.settled(quiet).await;
            assert_eq!(
                after - before,
                2,
                "the pass, and one more for the five events that came while it ran"
            );
            running.stop().await;
        })
        .await;
    })
    .await;
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The controller's watches list in pages of 500, as an API server serves them; the fake pages
/// too, so that a benchmark's restart costs what it would on a cluster.
#[tokio::test]
async fn the_fake_lists_in_pages() {
    within(async move {
        timed(async {
            let fake = FakeApi::new();
            for name in ["a", "b", "c"] {
                fake.put(
                    "",
                    "configmaps",
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": "x"}}),
                );
            }
            let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                kube::Api::namespaced(fake.client(), "x");
            let first = api
                .list(&kube::api::ListParams::default().limit(2))
                .await
                .expect("listed");
            let token = first.metadata.continue_.clone().expect("more to come");
            let rest = api
                .list(
                    &kube::api::ListParams::default()
                        .limit(2)
                        .continue_token(&token),
                )
                .await
                .expect("listed");
            let names = |list: &kube::api::ObjectList<k8s_openapi::api::core::v1::ConfigMap>| {
                list.items
                    .iter()
                    .filter_map(|cm| cm.metadata.name.clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(names(&first), ["a", "b"]);
            assert_eq!(names(&rest), ["c"]);
            assert_eq!(rest.metadata.continue_, None, "the last page");
            assert_eq!(
                rest.metadata.resource_version, first.metadata.resource_version,
                "one list, one version"
            );
        })
        .await;
    })
    .await;
}
