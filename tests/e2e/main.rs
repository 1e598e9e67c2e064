//! End to end, against a real cluster: `KFLEX_E2E_KUBECONFIG=~/.kube/config cargo test --test e2e
//! -- --ignored --nocapture` (`RUST_LOG=info` adds the controller's log). Without `--ignored`
//! the test is reported as ignored, with the reason; `.ci/run` runs it when that variable is set
//! and prints a SKIPPED line otherwise.
//!
//! It installs kflex with `kflex init` (twice: the second run must write nothing), removes the
//! controller's Deployment again, since the controller runs in this process instead, re-applies
//! the system manifests (`kflex render --system`) without it with the default settings,
//! checks with dry runs as the controller's ServiceAccount that its RBAC and admission policy
//! confine it (`admission.rs`), installs them again with `allowClusterScopedHookRbac: true` and
//! checks the limits on hooks' cluster-wide RBAC, installs them once more with the defaults,
//! starts the controller, creates every acceptance ControlPlane with its hooks (and a k8s one
//! with a dedicated PostgreSQL and one with three API servers, `datastores.rs`, which also has
//! the API server refuse bad replicas and backends), and checks what the API shows: every rendered object exists with its ownership metadata, the status says
//! Synced with the right secretRef, Pod Security labels are set, and a resync applies nothing.
//! It forges one control plane's ApplySet annotations to name another's Secret, one in
//! kubeflex-system and a labelled object elsewhere, and checks that neither pruning nor deletion
//! removes them (`forged.rs`). It switches every control plane to exposure gateway and back,
//! installing Gateway API's CRDs from `../shared` when the cluster lacks them (`gateway.rs`). It then edits one control plane (a hook's variable, which
//! replaces its Job; then a hook removed), deletes them all and checks the cleanup. Pods need
//! not run: a cluster without nodes (or without kflex's image) is fine. Everything it creates is
//! removed at the end unless KFLEX_E2E_KEEP is set (the probes of the admission checks always
//! are), and the controller's ClusterRole and policy are left as the default settings render
//! them.
//!
//! It changes the cluster: use a disposable one (kind, k3d). It refuses to run if ControlPlanes
//! already exist there. `KFLEX_E2E_FAKE_API=1` (only for a dry run against kflex-testkit's fake,
//! which has no admission) skips the admission policy checks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kflex::cluster::resources::Resources;
use kflex::controller::context::Options;
use kflex::controller::metrics::Metrics;
use kflex::controller::run::{Running, run_controller};
use kflex_core::api::{ControlPlane, PostCreateHook};
use kflex_core::manifest::Manifest;
use kflex_core::render::{HookCatalog, Renderer, TemplateSet};
use kflex_core::settings::Settings;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

mod admission;
mod datastores;
mod forged;
mod gateway;

/// The suite's own writes, as a person's (ControlPlanes, hooks, the adopted cluster's Secret);
/// kflex's manifests go through `kflex::cluster`, with kflex's field manager.
const FIELD_MANAGER: &str = "kflex-e2e";
const TIMEOUT: Duration = Duration::from_secs(180);
const ACCEPTANCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/acceptance");

/// Applies one of kflex's own manifests as `kflex init` and the controller do.
async fn apply(
    client: &kube::Client,
    resources: &Resources,
    manifest: &Manifest,
) -> anyhow::Result<()> {
    let resource = resources
        .resolve(manifest.api_version(), manifest.kind())
        .await?;
    let api = kflex::cluster::api_for(client, &resource, manifest.namespace());
    kflex::cluster::apply::apply(client, &api, manifest).await?;
    Ok(())
}

/// Polls `check` until it is true, or fails naming `what` after [`TIMEOUT`].
async fn eventually<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let started = tokio::time::Instant::now();
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(err) => last_error = Some(err),
        }
        if started.elapsed() > TIMEOUT {
            match last_error {
                Some(err) => bail!(
                    "{what}: not true after {}s; last error: {err:#}",
                    TIMEOUT.as_secs()
                ),
                None => bail!("{what}: not true after {}s", TIMEOUT.as_secs()),
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn documents(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_saphyr::from_multiple(&text)?)
}

/// The acceptance ControlPlanes and hooks.
fn acceptance() -> anyhow::Result<(Vec<ControlPlane>, Vec<PostCreateHook>)> {
    let mut control_planes = Vec::new();
    let mut hooks = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(ACCEPTANCE)?.collect::<Result<_, _>>()?;
    files.sort_by_key(std::fs::DirEntry::path);
    for entry in files {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        for document in documents(&path)? {
            match document["kind"].as_str() {
                Some("ControlPlane") => control_planes.push(serde_json::from_value(document)?),
                Some("PostCreateHook") => hooks.push(serde_json::from_value(document)?),
                _ => {}
            }
        }
    }
    Ok((control_planes, hooks))
}

fn condition(cp: &ControlPlane, type_: &str) -> Option<(String, String)> {
    cp.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Whether a request was denied with a message containing `policy_says`.
fn denied<T>(result: Result<T, kube::Error>, policy_says: &str) -> anyhow::Result<bool> {
    match result {
        Err(kube::Error::Api(status)) => Ok(status.message.contains(policy_says)),
        Err(err) => Err(anyhow::anyhow!(err)),
        Ok(_) => Ok(false),
    }
}

/// Runs the `kflex` binary with the suite's kubeconfig; its output.
async fn kflex(kubeconfig: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    // `--kubeconfig` is an option of each command: put it after the command words.
    let mut full: Vec<&str> = Vec::new();
    let split = args
        .iter()
        .position(|a| a.starts_with('-'))
        .unwrap_or(args.len());
    full.extend(&args[..split]);
    full.extend(["--kubeconfig", kubeconfig]);
    full.extend(&args[split..]);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kflex"));
    command.args(&full);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    Ok(output)
}

/// `list`, `diff`, `create` (refused, then host) and `delete`, as a person runs them.
async fn cli_commands(kubeconfig: &str, control_planes: &[ControlPlane]) -> anyhow::Result<()> {
    let before = std::fs::read(kubeconfig)?;
    let listed = kflex(kubeconfig, &["list", "-o", "json"]).await?;
    anyhow::ensure!(listed.status.success(), "kflex list: {listed:?}");
    let rows: Vec<Value> = serde_json::from_slice(&listed.stdout)?;
    for cp in control_planes {
        let name = cp.metadata.name.clone().unwrap_or_default();
        let row = rows
            .iter()
            .find(|row| row["name"] == name.as_str())
            .with_context(|| format!("kflex list does not show {name}"))?;
        anyhow::ensure!(
            row["synced"] == "True",
            "kflex list: {name} is not Synced: {row}"
        );
        // What the controller applied is exactly what kflex renders: no difference.
        let diff = kflex(kubeconfig, &["diff", &name]).await?;
        anyhow::ensure!(
            diff.status.code() == Some(0),
            "kflex diff {name} after the controller applied it (exit {:?}):\n{}{}",
            diff.status.code(),
            String::from_utf8_lossy(&diff.stdout),
            String::from_utf8_lossy(&diff.stderr)
        );
    }
    let refused = kflex(
        kubeconfig,
        &["create", "e2e-nohook", "-p", "no-such-hook", "--wait=false"],
    )
    .await?;
    anyhow::ensure!(
        refused.status.code() == Some(1)
            && String::from_utf8_lossy(&refused.stderr).contains("does not exist"),
        "kflex create with a missing hook: {refused:?}"
    );
    let created = kflex(
        kubeconfig,
        &["create", "e2e-host", "--type", "host", "--wait=false"],
    )
    .await?;
    anyhow::ensure!(
        created.status.success(),
        "kflex create e2e-host: {created:?}"
    );
    let deleted = kflex(kubeconfig, &["delete", "e2e-host", "--timeout", "3m"]).await?;
    anyhow::ensure!(
        deleted.status.success(),
        "kflex delete e2e-host: {deleted:?}"
    );
    anyhow::ensure!(
        std::fs::read(kubeconfig)? == before,
        "the CLI changed the kubeconfig although no control plane was switched to"
    );
    eprintln!("kflex list, diff, create and delete agree with the controller");
    Ok(())
}

/// Reads a kubeconfig file as a document.
fn read_kubeconfig(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)?;
    Ok(serde_saphyr::from_str(&text)?)
}

/// The entry `name` of a kubeconfig section.
fn entry<'a>(document: &'a Value, section: &str, name: &str) -> Option<&'a Value> {
    document[section]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == name)
}

/// `ctx` and `adopt`, which write the kubeconfig: on a copy of the suite's. `hosting` is the
/// acceptance control plane of type host (its context reaches the hosting cluster).
async fn cli_kubeconfig_commands(
    kubeconfig: &str,
    client: &kube::Client,
    hosting: &str,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let copy_path = dir.path().join("config");
    std::fs::copy(kubeconfig, &copy_path)?;
    let copy = copy_path.to_str().context("a UTF-8 temporary path")?;
    let original = read_kubeconfig(&copy_path)?;
    let current = original["current-context"]
        .as_str()
        .context("KFLEX_E2E_KUBECONFIG has no current context")?
        .to_owned();
    let server_of = |document: &Value, context: &str| -> Option<String> {
        let cluster = entry(document, "contexts", context)?["context"]["cluster"].as_str()?;
        entry(document, "clusters", cluster)?["cluster"]["server"]
            .as_str()
            .map(str::to_owned)
    };

    // `ctx NAME` fetches a context from the hosting cluster and switches to it; `ctx` goes back.
    let fetched = kflex(copy, &["ctx", hosting]).await?;
    anyhow::ensure!(fetched.status.success(), "kflex ctx {hosting}: {fetched:?}");
    let written = read_kubeconfig(&copy_path)?;
    anyhow::ensure!(
        written["current-context"] == hosting,
        "kflex ctx {hosting} did not switch to it: {}",
        written["current-context"]
    );
    anyhow::ensure!(
        entry(&written, "contexts", hosting).is_some_and(|context| {
            context["context"]["cluster"] == format!("{hosting}-cluster").as_str()
                && context["context"]["user"] == format!("{hosting}-admin").as_str()
        }),
        "kflex ctx {hosting}: the context does not use {hosting}-cluster and {hosting}-admin"
    );
    anyhow::ensure!(
        server_of(&written, hosting) == server_of(&original, &current),
        "a host control plane's context reaches the hosting cluster's API server"
    );
    let back = kflex(copy, &["ctx"]).await?;
    anyhow::ensure!(back.status.success(), "kflex ctx: {back:?}");
    anyhow::ensure!(
        read_kubeconfig(&copy_path)?["current-context"] == current.as_str(),
        "kflex ctx did not go back to the hosting context {current:?}"
    );
    let removed = kflex(copy, &["ctx", "delete", hosting]).await?;
    anyhow::ensure!(removed.status.success(), "kflex ctx delete: {removed:?}");
    anyhow::ensure!(
        entry(&read_kubeconfig(&copy_path)?, "contexts", hosting).is_none(),
        "kflex ctx delete {hosting} left the context"
    );
    eprintln!("kflex ctx fetched, switched and deleted the context of ControlPlane {hosting}");

    // `adopt` the hosting cluster itself, reached from inside at the kubernetes Service.
    let adopted = kflex(
        copy,
        &[
            "adopt",
            "e2e-adopted",
            "-c",
            &current,
            "--url-override",
            "https://kubernetes.default.svc",
            "--wait=false",
        ],
    )
    .await?;
    if !adopted.status.success() {
        let stderr = String::from_utf8_lossy(&adopted.stderr);
        if stderr.contains("cannot run inside the hosting cluster") {
            eprintln!(
                "kflex adopt NOT checked: the context's user authenticates with a plugin \
                 (kflex refuses those, as it should): {stderr}"
            );
            return Ok(());
        }
        bail!("kflex adopt e2e-adopted: {adopted:?}");
    }
    let control_planes: Api<ControlPlane> = Api::all(client.clone());
    let cp = control_planes.get("e2e-adopted").await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kubeflex-system");
    let secret = secrets.get("e2e-adopted-bootstrap").await?;
    anyhow::ensure!(
        secret
            .metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|owner| owner.kind == "ControlPlane"
                && Some(&owner.uid) == cp.metadata.uid.as_ref()),
        "the bootstrap Secret kflex adopt wrote is not owned by its ControlPlane"
    );
    let deleted = kflex(copy, &["delete", "e2e-adopted", "--timeout", "3m"]).await?;
    anyhow::ensure!(
        deleted.status.success(),
        "kflex delete e2e-adopted: {deleted:?}"
    );
    if std::env::var_os("KFLEX_E2E_FAKE_API").is_some() {
        eprintln!(
            "KFLEX_E2E_FAKE_API is set: the bootstrap Secret's garbage collection is NOT checked"
        );
    } else {
        eventually(
            "the adopted cluster's credentials deleted with its ControlPlane",
            || {
                let secrets = secrets.clone();
                async move { Ok(secrets.get_opt("e2e-adopted-bootstrap").await?.is_none()) }
            },
        )
        .await?;
    }
    eprintln!(
        "kflex adopt created an external control plane owning its credentials Secret; kflex \
         delete removed it"
    );
    Ok(())
}

/// Applies the system manifests `renderer` renders, without the in-cluster controller (the
/// suite runs it in-process); what it rendered.
async fn install_system(
    client: &kube::Client,
    resources: &Resources,
    renderer: &Renderer,
) -> anyhow::Result<Vec<Manifest>> {
    let system = renderer.render_system()?.manifests;
    let without_controller: Vec<Manifest> = system
        .iter()
        .filter(|m| !(m.kind() == "Deployment" && m.name() == "kubeflex-controller-manager"))
        .cloned()
        .collect();
    kflex::cluster::apply::apply_in_order(client, resources, &without_controller).await?;
    Ok(system)
}

/// `kflex init --wait=false` as a person runs it, on a copy of `kubeconfig` (init records the
/// hosting context in it), twice: the second run must write nothing. Then the controller's
/// Deployment init installed is removed again, since the suite runs the controller in this
/// process (no ControlPlane exists yet for an in-cluster one to touch meanwhile).
async fn kflex_init(kubeconfig: &str, client: &kube::Client) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("kubeconfig");
    std::fs::copy(kubeconfig, &copy).context("copying KFLEX_E2E_KUBECONFIG")?;
    let copy = copy.to_str().context("a temporary path in UTF-8")?;
    let first = kflex(copy, &["init", "--wait=false"]).await?;
    let said = String::from_utf8_lossy(&first.stderr);
    anyhow::ensure!(first.status.success(), "kflex init failed:\n{said}");
    let again = kflex(copy, &["init", "--wait=false"]).await?;
    let said_again = String::from_utf8_lossy(&again.stderr);
    anyhow::ensure!(
        again.status.success(),
        "kflex init, again, failed:\n{said_again}"
    );
    anyhow::ensure!(
        said_again.contains("applied 0 objects"),
        "kflex init, run again on what it installed, wrote something:\n{said_again}"
    );
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "kubeflex-system");
    deployments
        .delete("kubeflex-controller-manager", &Default::default())
        .await
        .context("removing the controller Deployment kflex init installed")?;
    eventually("the in-cluster controller's Deployment gone", || {
        let deployments = deployments.clone();
        async move {
            Ok(deployments
                .get_opt("kubeflex-controller-manager")
                .await?
                .is_none())
        }
    })
    .await?;
    eprintln!("kflex init installed kflex; run again, it wrote nothing");
    Ok(())
}

async fn run(kubeconfig: &str) -> anyhow::Result<()> {
    let kubeconfig_path = kubeconfig;
    let kubeconfig =
        kube::config::Kubeconfig::read_from(kubeconfig).context("reading KFLEX_E2E_KUBECONFIG")?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    // The controller acts as its ServiceAccount, so its RBAC and its admission policy are what
    // is tested, not the suite's own (administrator's) rights.
    let mut as_controller = config.clone();
    as_controller.auth_info.impersonate =
        Some("system:serviceaccount:kubeflex-system:kubeflex-controller-manager".into());
    let controller_client = kube::Client::try_from(as_controller)?;
    let client = kube::Client::try_from(config)?;
    let resources = Resources::new(client.clone());
    let fake_api = std::env::var_os("KFLEX_E2E_FAKE_API").is_some();
    // The control planes run with the default settings (the acceptance set's hook ClusterRole
    // grants nothing unbound, so it needs no opt-in); `opted_in` is for the admission checks.
    let renderer = Renderer::new(Settings::default(), &TemplateSet::embedded())?;
    let opted_in = Renderer::new(
        Settings {
            allow_cluster_scoped_hook_rbac: true,
            ..Settings::default()
        },
        &TemplateSet::embedded(),
    )?;

    // 1. The system manifests, by `kflex init`, then without the in-cluster controller, with the
    //    default settings.
    let control_plane_api: Api<ControlPlane> = Api::all(client.clone());
    let control_planes_exist = match control_plane_api.list(&Default::default()).await {
        Ok(list) => !list.items.is_empty(),
        // Not installed yet: the CRD does not exist.
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(err) => return Err(err).context("listing ControlPlanes"),
    };
    if control_planes_exist {
        bail!("the cluster already has ControlPlanes; run the suite on a disposable cluster");
    }
    kflex_init(kubeconfig_path, &client).await?;
    let system = install_system(&client, &resources, &renderer).await?;

    // 2. The RBAC and admission policy confine the controller (waiting until they are in
    //    force), with allowClusterScopedHookRbac off and then on; then the defaults again, and
    //    the controller, in this process.
    if fake_api {
        eprintln!(
            "KFLEX_E2E_FAKE_API is set: the admission policy is NOT checked (the fake API has no \
             admission); this run proves nothing about a cluster's admission"
        );
    } else {
        admission::prepare(&client).await?;
        let checked = async {
            admission::setting_off(&client, &controller_client).await?;
            install_system(&client, &resources, &opted_in).await?;
            admission::setting_on(&client, &controller_client).await
        }
        .await;
        admission::clean_up(&client).await;
        install_system(&client, &resources, &renderer).await?;
        checked?;
        admission::defaults_in_force(&controller_client).await?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = Options {
        resync: Duration::from_secs(30),
        not_ready_requeue: Duration::from_secs(5),
        // The database drop Job needs kflex's image; do not wait ten minutes for it here.
        cleanup_timeout: Duration::from_secs(20),
    };
    let running = Running {
        system_namespace: "kubeflex-system".into(),
        concurrency: 4,
        options,
        identity: "kflex-e2e".into(),
    };
    let metrics = Arc::new(Metrics::default());
    let controller = tokio::spawn(run_controller(
        controller_client,
        running,
        metrics.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    // 3. Every acceptance control plane, with its hooks (and external's bootstrap Secret), and
    //    a dedicated and a three-replica k8s control plane.
    let (mut control_planes, hooks) = acceptance()?;
    control_planes.extend(datastores::control_planes()?);
    let hook_api: Api<PostCreateHook> = Api::all(client.clone());
    for hook in &hooks {
        hook_api
            .patch(
                hook.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(hook),
            )
            .await
            .context("creating a PostCreateHook")?;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kubeflex-system");
    let bootstrap = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ext-bootstrap", "namespace": "kubeflex-system"},
                           "stringData": {"kubeconfig-incluster": "apiVersion: v1\nkind: Config\n"}});
    secrets
        .patch(
            "ext-bootstrap",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&bootstrap),
        )
        .await?;
    for cp in &control_planes {
        let name = cp.metadata.name.clone().unwrap_or_default();
        control_plane_api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(cp),
            )
            .await
            .with_context(|| format!("creating ControlPlane {name}"))?;
    }
    let catalog = HookCatalog::new(hooks.clone())?;
    for cp in &control_planes {
        let name = cp.metadata.name.clone().unwrap_or_default();
        let api = control_plane_api.clone();
        eventually(&format!("ControlPlane {name} Synced"), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let live = api.get(&name).await?;
                Ok(condition(&live, "Synced").is_some_and(|(status, _)| status == "True"))
            }
        })
        .await?;
        let live = control_plane_api.get(&name).await?;
        let facts = kflex_core::render::facts(cp.spec.type_).context("a supported type")?;
        let secret_ref = live
            .status
            .as_ref()
            .and_then(|s| s.secret_ref.clone())
            .context("a secretRef")?;
        assert_eq!(secret_ref.name, facts.kubeconfig.name, "{name}");
        assert_eq!(
            secret_ref.in_cluster_key, facts.kubeconfig.in_cluster_key,
            "{name}"
        );
        assert!(
            condition(&live, "Ready").is_some(),
            "{name}: Ready is reported"
        );
        // Every rendered object is there, owned by the ControlPlane and in its ApplySet.
        let rendered = renderer.render(cp, &catalog)?;
        for manifest in &rendered.manifests {
            let resource = resources
                .resolve(manifest.api_version(), manifest.kind())
                .await?;
            let api: Api<DynamicObject> = match manifest.namespace() {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let object = api
                .get(manifest.name())
                .await
                .with_context(|| format!("{name}: {}", manifest.key()))?;
            let owners = object.metadata.owner_references.clone().unwrap_or_default();
            let owned = owners
                .iter()
                .any(|o| o.kind == "ControlPlane" && o.name == name);
            // What the database drop needs at deletion (in kubeflex-system) has no owner, so
            // a foreground deletion cannot remove it first; the controller deletes it.
            let in_system = manifest.namespace() == Some("kubeflex-system");
            assert!(
                owned != in_system,
                "{name}: {} owner references: {owners:?}",
                manifest.key()
            );
            assert!(
                object
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("applyset.kubernetes.io/part-of")),
                "{name}: {} is not in the ApplySet",
                manifest.key()
            );
        }
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = namespaces.get(&format!("{name}-system")).await?;
        let labels = namespace.metadata.labels.unwrap_or_default();
        assert!(
            labels.contains_key("pod-security.kubernetes.io/enforce"),
            "{name}: Pod Security labels"
        );
        eprintln!(
            "ControlPlane {name}: Synced, {} objects in place",
            rendered.manifests.len()
        );
    }

    datastores::check_objects(&client, kubeconfig_path).await?;
    if !fake_api {
        datastores::refused_by_the_api(&client, "cp1").await?;
    }

    // A resync of unchanged control planes applies nothing (status may still change as
    // workloads come up; objects must not be written).
    let applied_before = metrics.objects_counted("applied");
    tokio::time::sleep(options.resync + Duration::from_secs(10)).await;
    let applied_after = metrics.objects_counted("applied");
    assert_eq!(
        applied_after, applied_before,
        "objects were applied during a resync of unchanged control planes (the controller's log names them)"
    );
    eprintln!("a resync of every control plane applied nothing");

    // 3b. The CLI for people, against the same cluster (it must not edit the kubeconfig here).
    cli_commands(kubeconfig_path, &control_planes).await?;
    let host = control_planes
        .iter()
        .find(|cp| cp.spec.type_ == kflex_core::api::ControlPlaneType::Host)
        .and_then(|cp| cp.metadata.name.clone())
        .context("the acceptance set has a control plane of type host")?;
    cli_kubeconfig_commands(kubeconfig_path, &client, &host).await?;

    // 3c. Forged ApplySet annotations on a live control plane name another control plane's
    //     Secret, one in kubeflex-system, and a labelled object elsewhere: pruning keeps them.
    let (forger, victim) = ("edge-1", "cp1");
    forged::plant(&client, victim, forger).await?;
    forged::forge(&client, forger, victim, false).await?;
    forged::annotations_rewritten(&client, forger).await?;
    forged::refused_and_kept(&client, forger, victim).await?;
    eprintln!(
        "ControlPlane {forger}: forged annotations pruned nothing of another control plane's, \
         and were rewritten"
    );

    // 3d. Exposure gateway: every control plane switches to a TLSRoute and back, live.
    let gateway_installed = gateway::check(
        &client,
        &resources,
        &control_planes,
        kubeconfig_path,
        &renderer,
    )
    .await?;

    // 4. Edits: a hook variable changes a Job, which is replaced; a hook removed is pruned.
    let team_a = "team-a";
    let jobs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "team-a-system",
        &resources.resolve("batch/v1", "Job").await?,
    );
    let old_uid = jobs.get("hello").await?.metadata.uid;
    // The per-use variable: it is the one the hook's Job sees (it wins over globalVars).
    let patch = json!({"spec": {"postCreateHooks": [
        {"hookName": "hello", "vars": {"MESSAGE": "edited by the e2e suite"}},
        {"hookName": "kubectl-check"}]}});
    control_plane_api
        .patch(team_a, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let hello_objects =
        |catalog: &HookCatalog, cp: &ControlPlane| -> anyhow::Result<Vec<Manifest>> {
            Ok(renderer
                .render(cp, catalog)?
                .manifests
                .into_iter()
                .filter(|m| {
                    m.annotation(kflex_core::render::metadata::HOOK_ANNOTATION) == Some("hello")
                })
                .collect())
        };
    let edited = control_plane_api.get(team_a).await?;
    let expected = hello_objects(&catalog, &edited)?;
    for manifest in &expected {
        let resource = resources
            .resolve(manifest.api_version(), manifest.kind())
            .await?;
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            manifest.namespace().unwrap_or_default(),
            &resource,
        );
        // What the suite renders lacks the controller's ownership metadata; compare the rest.
        let mut want = Value::Object(manifest.object().clone());
        if let Some(metadata) = want.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("labels");
            metadata.remove("annotations");
        }
        let name = manifest.name().to_owned();
        eventually(&format!("{} follows the edit", manifest.key()), || {
            let api = api.clone();
            let want = want.clone();
            let name = name.clone();
            async move {
                let live = serde_json::to_value(api.get(&name).await?)?;
                Ok(kflex::cluster::drift::contains(&want, &live))
            }
        })
        .await?;
    }
    assert!(
        serde_json::to_string(&expected.iter().map(Manifest::object).collect::<Vec<_>>())?
            .contains("edited by the e2e suite"),
        "the edit changes what the hook renders"
    );
    let new_uid = jobs.get("hello").await?.metadata.uid;
    assert_ne!(new_uid, old_uid, "the Job was replaced, not patched");
    let events: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resources.resolve("events.k8s.io/v1", "Event").await?,
    );
    eventually("a JobReplaced Event on team-a", || {
        let events = events.clone();
        async move {
            Ok(events
                .list(&Default::default())
                .await?
                .items
                .iter()
                .any(|e| {
                    e.data["reason"] == "JobReplaced" && e.data["regarding"]["name"] == team_a
                }))
        }
    })
    .await?;
    let remove = json!({"spec": {"postCreateHooks": [{"hookName": "kubectl-check"}]}});
    control_plane_api
        .patch(team_a, &PatchParams::default(), &Patch::Merge(&remove))
        .await?;
    for manifest in &expected {
        let resource = resources
            .resolve(manifest.api_version(), manifest.kind())
            .await?;
        let api: Api<DynamicObject> = match manifest.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let name = manifest.name().to_owned();
        eventually(&format!("{} pruned", manifest.key()), || {
            let api = api.clone();
            let name = name.clone();
            async move { Ok(api.get_opt(&name).await?.is_none()) }
        })
        .await?;
    }
    eprintln!("ControlPlane {team_a}: an edit applied (its Job replaced), a removed hook pruned");

    // What the garbage collector does not remove and the controller must: the cluster-scoped
    // members, those in kubeflex-system, and the database drop Jobs.
    let mut leftovers = Vec::new();
    for cp in &control_planes {
        let live = control_plane_api
            .get(cp.metadata.name.as_deref().unwrap_or_default())
            .await?;
        for manifest in renderer.render(&live, &catalog)?.manifests {
            if manifest
                .namespace()
                .is_none_or(|ns| ns == "kubeflex-system")
            {
                leftovers.push(manifest);
            }
        }
        leftovers.extend(renderer.render_cleanup(&live)?);
    }

    // 5. Deletion: every ControlPlane goes (cleanup bounded), with its cluster-scoped objects.
    //    First the host one, with forged annotations (paused, so no pass rewrites them before
    //    it is deleted): its cleanup keeps what they name.
    forged::plant(&client, victim, &host).await?;
    forged::forge(&client, &host, victim, true).await?;
    control_plane_api
        .delete(&host, &DeleteParams::default())
        .await?;
    eventually(&format!("ControlPlane {host} deleted"), || {
        let api = control_plane_api.clone();
        let host = host.clone();
        async move { Ok(api.get_opt(&host).await?.is_none()) }
    })
    .await?;
    forged::refused_and_kept(&client, &host, victim).await?;
    eprintln!(
        "ControlPlane {host}: deleted, and its cleanup deleted nothing its forged annotations named"
    );
    for cp in &control_planes {
        let name = cp.metadata.name.clone().unwrap_or_default();
        if name == host {
            continue;
        }
        control_plane_api
            .delete(&name, &DeleteParams::default())
            .await?;
    }
    for cp in &control_planes {
        let name = cp.metadata.name.clone().unwrap_or_default();
        let api = control_plane_api.clone();
        eventually(&format!("ControlPlane {name} deleted"), || {
            let api = api.clone();
            let name = name.clone();
            async move { Ok(api.get_opt(&name).await?.is_none()) }
        })
        .await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = namespaces.get_opt(&format!("{name}-system")).await?;
        assert!(
            namespace.is_none_or(|ns| ns.metadata.deletion_timestamp.is_some()),
            "{name}: its namespace is being deleted"
        );
    }
    for manifest in &leftovers {
        let resource = resources
            .resolve(manifest.api_version(), manifest.kind())
            .await?;
        let api: Api<DynamicObject> = match manifest.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let left = api.get_opt(manifest.name()).await?;
        // A Namespace terminates while its contents go; anything else must be gone.
        assert!(
            left.is_none_or(
                |o| manifest.kind() == "Namespace" && o.metadata.deletion_timestamp.is_some()
            ),
            "{} is left behind",
            manifest.key()
        );
    }
    eprintln!(
        "every ControlPlane deleted and cleaned up ({} cluster-scoped or kubeflex-system objects and drop Jobs checked)",
        leftovers.len()
    );
    datastores::nothing_left(&client, fake_api).await?;

    let _ = stop.send(());
    let _ = controller.await;

    // 6. What the suite installed.
    if std::env::var_os("KFLEX_E2E_KEEP").is_none() {
        for hook in &hooks {
            let _ = hook_api
                .delete(
                    hook.metadata.name.as_deref().unwrap_or_default(),
                    &DeleteParams::default(),
                )
                .await;
        }
        forged::clean_up(&client, victim, &[forger, &host]).await;
        if let Some(installed) = &gateway_installed {
            gateway::clean_up(&client, installed).await;
        }
        for manifest in system.iter().rev() {
            // The controller's RBAC and policy as the default settings have them again.
            if matches!(manifest.kind(), "ClusterRole" | "ValidatingAdmissionPolicy") {
                apply(&client, &resources, manifest).await?;
            }
            if manifest.kind() == "Namespace" || manifest.kind() == "CustomResourceDefinition" {
                let resource = resources
                    .resolve(manifest.api_version(), manifest.kind())
                    .await?;
                let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
                let _ = api.delete(manifest.name(), &DeleteParams::default()).await;
            }
        }
    }
    Ok(())
}

/// Ignored unless asked for (`-- --ignored`), so a run without a cluster reports it as ignored,
/// with the reason, rather than as passed; `.ci/run` asks for it when KFLEX_E2E_KUBECONFIG is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a disposable cluster: KFLEX_E2E_KUBECONFIG=FILE cargo test --test e2e -- --ignored"]
async fn kflex_on_a_real_cluster() {
    let Some(kubeconfig) = std::env::var_os("KFLEX_E2E_KUBECONFIG") else {
        panic!(
            "set KFLEX_E2E_KUBECONFIG to a disposable cluster's kubeconfig to run the end-to-end suite"
        );
    };
    // The in-process controller's log, with RUST_LOG=info (or finer).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    if let Err(err) = run(&kubeconfig.to_string_lossy()).await {
        panic!("end-to-end: {err:#}");
    }
}
