//! The controller's reconcile against an in-process fake API server (kflex-testkit), request
//! by request: what it writes on creation, that a resync of an unchanged control plane writes
//! nothing, drift, pruning, Job replacement, missing hooks, failures and deletion. The
//! controller's own watches fill its caches from the fake, as they would from a cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use futures::future::BoxFuture;
use http::Method;
use kflex::controller::config::RendererCache;
use kflex::controller::context::{Context, Options};
use kflex::controller::metrics::Metrics;
use kflex::controller::readiness::ApiProbe;
use kflex::controller::reconcile::{error_policy, reconcile};
use kflex::controller::resources::Resources;
use kflex::controller::watches::{Watches, users_of};
use kflex_core::api::ControlPlane;
use kflex_core::render::{HookCatalog, Renderer, TemplateSet};
use kflex_core::settings::Settings;
use kflex_testkit::{FakeApi, Logged};
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

struct Harness {
    fake: FakeApi,
    ctx: Arc<Context>,
    clock: Arc<AtomicI64>,
}

impl Harness {
    async fn new(serving: bool) -> Self {
        Self::over(FakeApi::new(), serving).await
    }

    /// A controller (nothing remembered) over an existing fake.
    async fn over(fake: FakeApi, serving: bool) -> Self {
        let client = fake.client();
        let mut watches = Watches::new(&client, "kubeflex-system", false);
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
        watches.drive();
        let harness = Self { fake, ctx, clock };
        harness.settle().await;
        harness
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
}

#[tokio::test]
async fn a_resync_of_an_unchanged_control_plane_writes_nothing() {
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

    // After a restart (nothing remembered) the live objects are read, and still nothing written.
    let restarted = Harness::over(h.fake.clone(), false).await;
    restarted.fake.clear_log();
    restarted.reconcile("cp1").await.expect("after a restart");
    assert_eq!(restarted.fake.writes(), Vec::<Logged>::new());
}

#[tokio::test]
async fn drift_is_corrected_with_one_apply() {
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
}

#[tokio::test]
async fn a_deleted_object_is_created_again() {
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
}

#[tokio::test]
async fn a_missing_hook_blocks_until_it_is_created() {
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

    // Creating the hook wakes the ControlPlane (the watch maps the hook to its users).
    let hook = h.fake.put(GROUP, "postcreatehooks", hello_hook());
    h.settle().await;
    let store = {
        let (reader, mut writer) = kube::runtime::reflector::store::<ControlPlane>();
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(
            (*h.control_plane("cp1")).clone(),
        ));
        reader
    };
    let woken = users_of(&store, &serde_json::from_value(hook).expect("a hook"));
    assert_eq!(woken.len(), 1);
    h.reconcile("cp1").await.expect("reconciled");
    assert_eq!(h.condition("cp1", "Synced")["status"], "True");
    assert!(
        h.fake
            .get("", "configmaps", Some("cp1-system"), "hello-cp1")
            .is_some()
    );
}

#[tokio::test]
async fn a_changed_job_is_replaced_and_reported() {
    let h = Harness::new(false).await;
    h.create_control_plane("cp1", json!({"type": "k8s"}));
    h.reconcile("cp1").await.expect("first");
    h.fake.put(
        "",
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "kubeflex-config", "namespace": "kubeflex-system"},
               "data": {"images.kflex.tag": "0.2.0"}}),
    );
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
        events(&log).iter().any(|e| e.method == Method::POST),
        "a JobReplaced Event"
    );
}

#[tokio::test]
async fn failed_applies_are_retried_with_backoff_and_nothing_is_lost() {
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
    assert!(err.to_string().contains("kube-apiserver"), "{err}");
    let first = error_policy(h.control_plane("cp1"), &err, h.ctx.clone());
    assert_eq!(first, Action::requeue(std::time::Duration::from_secs(5)));
    h.fake.fail(
        Method::PATCH,
        "/deployments/kube-apiserver",
        409,
        "Conflict",
        1,
    );
    let err = h.reconcile("cp1").await.expect_err("a conflict");
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
}

#[tokio::test]
async fn an_ocm_control_plane_is_refused_for_good_with_its_replacement() {
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
}

#[tokio::test]
async fn a_paused_control_plane_is_left_alone() {
    let h = Harness::new(false).await;
    h.fake.put(
        GROUP,
        "controlplanes",
        json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "ControlPlane",
               "metadata": {"name": "cp1", "annotations": {"kflex.kubestellar.org/paused": "true"}},
               "spec": {"type": "k8s"}}),
    );
    h.fake.clear_log();
    h.reconcile("cp1").await.expect("reconciled");
    assert!(applies(&h.fake.writes()).is_empty());
    assert_eq!(h.condition("cp1", "Synced")["reason"], "ReconcilePaused");
}

#[tokio::test]
async fn a_ready_control_plane_says_so() {
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
}

#[tokio::test]
async fn deletion_drops_the_database_then_releases_the_control_plane() {
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
}

#[tokio::test]
async fn a_failing_cleanup_is_reported_and_given_up_after_the_timeout() {
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
        !events(&h.fake.writes()).is_empty(),
        "a CleanupAbandoned Event"
    );
}
