//! `kflex init` writes through `kflex::cluster`, as the controller does: the system manifests in
//! their order, each CRD established before what follows it, nothing written again that is
//! already as rendered, and a bootstrap Job whose template changed (an upgrade) replaced rather
//! than refused.

use http::Method;
use kflex_core::manifest::Manifest;
use kflex_core::render::{Renderer, TemplateSet};
use kflex_core::settings::Settings;
use kflex_testkit::Logged;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use super::{Cluster, stderr, within};

/// The system manifests `kflex init` renders with every setting at its default.
fn system() -> Vec<Manifest> {
    Renderer::new(Settings::default(), &TemplateSet::embedded())
        .expect("the embedded templates compile")
        .render_system()
        .expect("the system manifests render")
        .manifests
}

/// Whether `request` is about `manifest`'s object (its namespace, if any, and its name).
fn names(request: &Logged, manifest: &Manifest) -> bool {
    let place = match manifest.namespace() {
        Some(namespace) => format!("/namespaces/{namespace}/"),
        None => "/".to_owned(),
    };
    request.path.ends_with(&format!("/{}", manifest.name())) && request.path.contains(&place)
}

async fn init(cluster: &Cluster) -> String {
    let output = cluster.kflex(&["init", "--wait=false"]).await;
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    text
}

const JOB: &str = "postgres-bootstrap";

fn job(cluster: &Cluster) -> serde_json::Value {
    cluster
        .fake
        .get("batch", "jobs", Some("kubeflex-system"), JOB)
        .expect("the bootstrap Job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_applies_the_system_in_order_and_waits_for_each_crd_before_what_follows() {
    within(async move {
        let cluster = Cluster::start().await;
        cluster.fake.clear_log();
        init(&cluster).await;

        let system = system();
        let log = cluster.fake.log();
        let applies: Vec<(usize, &Logged)> = log
            .iter()
            .enumerate()
            .filter(|(_, request)| request.method == Method::PATCH)
            .collect();
        assert_eq!(
            applies.len(),
            system.len(),
            "one apply per object: {applies:#?}"
        );
        for ((_, request), manifest) in applies.iter().zip(&system) {
            assert!(
                names(request, manifest),
                "{request} applied where {} was due",
                manifest.key()
            );
        }
        // Each CRD is watched until established before the next object is applied.
        for (at, manifest) in system.iter().enumerate() {
            if manifest.kind() != "CustomResourceDefinition" {
                continue;
            }
            let (applied_at, _) = applies[at];
            let next = applies.get(at + 1).map_or(log.len(), |(next, _)| *next);
            let waited = log[applied_at..next].iter().any(|request| {
                request.method == Method::GET
                    && request.path.ends_with("/customresourcedefinitions")
                    && request.query.contains("fieldSelector")
                    && request.query.contains(manifest.name())
            });
            assert!(
                waited,
                "no wait for {} before the next apply: {:#?}",
                manifest.key(),
                &log[applied_at..next]
            );
        }
        let rendered = system.iter().find(|m| m.name() == JOB).expect("rendered");
        assert_eq!(
            job(&cluster)["spec"]["template"],
            rendered.object()["spec"]["template"]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_again_writes_nothing_when_everything_is_as_rendered() {
    within(async move {
        let cluster = Cluster::start().await;
        init(&cluster).await;
        cluster.fake.clear_log();

        let text = init(&cluster).await;
        assert!(
            cluster.fake.writes().is_empty(),
            "{:#?}",
            cluster.fake.writes()
        );
        assert!(
            text.contains(&format!(
                "applied 0 objects ({} already as rendered)",
                system().len()
            )),
            "{text}"
        );
    })
    .await;
}

/// An upgrade that changes a bootstrap Job's template: the API refuses to change it in place,
/// so init deletes it and creates it again, waiting (through a watch) while a finalizer holds
/// the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_again_replaces_a_bootstrap_job_whose_template_changed() {
    within(async move {
        let cluster = Cluster::start().await;
        init(&cluster).await;
        let rendered = job(&cluster)["spec"]["template"].clone();
        // As an older kflex left it (another image), held by a finalizer someone else put on it.
        let mut older = rendered.clone();
        older["spec"]["containers"][0]["image"] = json!("ghcr.io/kubestellar/kflex:0.0.9");
        let old = cluster
            .fake
            .edit(
                "batch",
                "jobs",
                Some("kubeflex-system"),
                JOB,
                &json!({"metadata": {"finalizers": ["example.com/hold"]},
                        "spec": {"template": older}}),
            )
            .expect("the Job");
        cluster.fake.clear_log();

        // The finalizer's owner lets go once the Job is being deleted.
        let release = async {
            let jobs: Api<DynamicObject> = Api::namespaced_with(
                cluster.fake.client(),
                "kubeflex-system",
                &ApiResource::from_gvk(&GroupVersionKind::gvk("batch", "v1", "Job")),
            );
            // Bounded, so that an init that never deletes the Job fails the assertions below
            // instead of hanging here.
            for _ in 0..1500 {
                if !job(&cluster)["metadata"]["deletionTimestamp"].is_null() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            jobs.patch(
                JOB,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .expect("the finalizer released");
        };
        let (text, ()) = tokio::join!(init(&cluster), release);

        assert!(
            text.contains("replaced Job kubeflex-system/postgres-bootstrap: its template changed"),
            "{text}"
        );
        let now = job(&cluster);
        assert_eq!(now["spec"]["template"], rendered);
        assert_ne!(now["metadata"]["uid"], old["metadata"]["uid"], "a new Job");
        let writes: Vec<String> = cluster
            .fake
            .writes()
            .iter()
            .filter(|request| request.path.starts_with("/apis/batch/"))
            .map(|request| {
                format!(
                    "{} {}",
                    request.method,
                    request.path.rsplit('/').next().unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(
            writes,
            [
                format!("PATCH {JOB}"),
                format!("DELETE {JOB}"),
                // The test releasing its finalizer: only then is the Job created again.
                format!("PATCH {JOB}"),
                format!("PATCH {JOB}"),
            ],
            "refused, deleted, gone, created again"
        );
        // Nothing else was written: everything else was as rendered.
        assert!(
            cluster
                .fake
                .writes()
                .iter()
                .all(|request| request.path.ends_with(&format!("/jobs/{JOB}"))),
            "{:#?}",
            cluster.fake.writes()
        );
    })
    .await;
}
