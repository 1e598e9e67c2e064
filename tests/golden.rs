//! Golden files: `tests/golden/<case>/args` holds a kflex command line (one argument per line,
//! run in the case directory with an empty environment); `expected.yaml` is its reviewed
//! output. A mismatch prints a unified diff. Regenerating is an explicit opt-in:
//! `KFLEX_UPDATE_GOLDEN=1 cargo test --test golden`, then review the diff before committing.
//!
//! The same outputs are checked for properties every rendered set must have: no secret material,
//! requests on every container, Pod Security as labelled, and (in `.ci/run`) strict schema
//! validation.

use std::path::{Path, PathBuf};
use std::process::Command;

use kflex_core::manifest::Manifest;
use kflex_core::render::{gitops, pod_security};
use serde_json::Value;
use similar::TextDiff;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| path.join("args").is_file())
        .collect();
    cases.sort();
    cases
}

fn args(case: &Path) -> Vec<String> {
    std::fs::read_to_string(case.join("args"))
        .expect("args is readable")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Runs kflex as a user would, with nothing from this process's environment leaking in.
fn run(case: &Path) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kflex"))
        .args(args(case))
        .current_dir(case)
        .env_clear()
        .output()
        .expect("kflex runs");
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert!(
        output.status.success(),
        "{}: kflex failed:\n{stderr}",
        case.display()
    );
    (stdout, stderr)
}

#[test]
fn rendered_output_matches_the_reviewed_golden_files() {
    let update = std::env::var_os("KFLEX_UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for case in cases() {
        let (actual, _) = run(&case);
        let (again, _) = run(&case);
        assert_eq!(actual, again, "{}: two runs differ", case.display());
        let expected_path = case.join("expected.yaml");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual == expected {
            continue;
        }
        if update {
            std::fs::write(&expected_path, &actual).expect("golden file is writable");
            eprintln!("updated {}", expected_path.display());
            continue;
        }
        let diff = TextDiff::from_lines(&expected, &actual)
            .unified_diff()
            .context_radius(3)
            .header("expected.yaml", "actual")
            .to_string();
        failures.push(format!("{}:\n{diff}", case.display()));
    }
    assert!(
        failures.is_empty(),
        "golden files differ (KFLEX_UPDATE_GOLDEN=1 regenerates them; review the diff):\n{}",
        failures.join("\n")
    );
}

fn golden_objects() -> Vec<(String, Manifest)> {
    let mut objects = Vec::new();
    for case in cases() {
        let text = std::fs::read_to_string(case.join("expected.yaml")).expect("golden file exists");
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text).expect("golden is YAML");
        let name = case
            .file_name()
            .expect("named")
            .to_string_lossy()
            .into_owned();
        for document in documents {
            objects.push((
                name.clone(),
                Manifest::new("golden", document).expect("an object"),
            ));
        }
    }
    assert!(
        objects.len() > 100,
        "the golden cases render real control planes"
    );
    objects
}

/// The one Secret kflex renders holds vCluster's configuration (vCluster reads it from a
/// Secret); its decoded content is checked like everything else.
const CONFIGURATION_SECRETS: [&str; 1] = ["vc-config-vcluster"];

/// String values under keys that would hold credentials, anywhere in `value`.
fn credentials(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let lower = key.to_ascii_lowercase();
                let sensitive = ["password", "token", "datasource", "privatekey"]
                    .iter()
                    .any(|word| lower.contains(word));
                if sensitive && inner.as_str().is_some_and(|s| !s.is_empty()) {
                    found.push(key.clone());
                }
                credentials(inner, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| credentials(item, found)),
        _ => {}
    }
}

#[test]
fn no_secret_material_is_rendered() {
    for (case, object) in golden_objects() {
        let mut text = serde_json::to_string(object.object()).expect("serializable");
        if object.kind() == "Secret" {
            assert!(
                CONFIGURATION_SECRETS.contains(&object.name()),
                "{case}: {} renders a Secret",
                object.key()
            );
            assert!(
                object.object().get("data").is_none(),
                "{case}: {} is rendered as readable stringData",
                object.key()
            );
            for (key, content) in object.object()["stringData"]
                .as_object()
                .expect("stringData")
            {
                let decoded = content.as_str().expect("text").to_owned();
                let config: Value = serde_saphyr::from_str(&decoded).expect("YAML");
                let mut found = Vec::new();
                credentials(&config, &mut found);
                assert!(
                    found.is_empty(),
                    "{case}: {} {key} sets {found:?}",
                    object.key()
                );
                text.push_str(&decoded);
            }
        }
        for marker in [
            "BEGIN CERTIFICATE",
            "PRIVATE KEY",
            "BEGIN RSA",
            "password=",
            "token=",
        ] {
            assert!(
                !text.contains(marker),
                "{case}: {} contains {marker:?}",
                object.key()
            );
        }
        let Some((_, spec)) = pod_security::pod_spec(&object) else {
            continue;
        };
        for container in containers(spec) {
            for env in container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = env["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                let secret_like = ["PASSWORD", "TOKEN", "SECRET", "KEY"]
                    .iter()
                    .any(|w| name.contains(w));
                assert!(
                    !(secret_like
                        && env
                            .get("value")
                            .is_some_and(|v| !v.as_str().unwrap_or("").starts_with('/'))),
                    "{case}: {} puts {name} in a literal env value",
                    object.key()
                );
            }
        }
    }
}

fn containers(spec: &serde_json::Map<String, Value>) -> Vec<&serde_json::Map<String, Value>> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|list| spec.get(*list).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_object)
        .collect()
}

#[test]
fn kflex_containers_request_cpu_and_memory() {
    for (case, object) in golden_objects() {
        if object
            .annotation("kflex.kubestellar.org/post-create-hook")
            .is_some()
        {
            continue; // A user's hook is theirs to size.
        }
        let Some((_, spec)) = pod_security::pod_spec(&object) else {
            continue;
        };
        for container in containers(spec) {
            let requests = container.get("resources").and_then(|r| r.get("requests"));
            for resource in ["cpu", "memory"] {
                assert!(
                    requests.and_then(|r| r.get(resource)).is_some(),
                    "{case}: {} container {} has no {resource} request",
                    object.key(),
                    container["name"]
                );
            }
        }
    }
}

/// Every pod meets the level its namespace enforces; kflex's own pods meet restricted, except
/// those that document why not (k3s, which runs a node in its pod).
#[test]
fn pods_meet_the_pod_security_level_of_their_namespace() {
    let objects = golden_objects();
    for (case, object) in &objects {
        let Some((_, spec)) = pod_security::pod_spec(object) else {
            continue;
        };
        let level = pod_security::level_of(&pod_security::check(spec));
        let namespace = object.namespace().expect("pods are namespaced");
        let enforced = objects
            .iter()
            .find(|(c, o)| c == case && o.kind() == "Namespace" && o.name() == namespace)
            .and_then(|(_, ns)| ns.label("pod-security.kubernetes.io/enforce"))
            .unwrap_or("restricted");
        assert!(
            level.as_str() == enforced || level == pod_security::Level::Restricted,
            "{case}: {} is {level:?} in a namespace enforcing {enforced}",
            object.key()
        );
        let from_hook = object
            .annotation("kflex.kubestellar.org/post-create-hook")
            .is_some();
        let documented = object
            .annotation("kflex.kubestellar.org/pod-security-exception")
            .is_some();
        assert!(
            from_hook || level == pod_security::Level::Restricted || documented,
            "{case}: kflex's own {} is only {level:?}",
            object.key()
        );
        if documented {
            assert_eq!(
                (object.kind(), object.name()),
                ("StatefulSet", "k3s-server"),
                "{case}: only k3s has a documented Pod Security exception"
            );
        }
    }
}

/// Whether a case renders the one-time system manifests rather than control planes.
fn renders_system(case: &str) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case);
    args(&root).iter().any(|a| a == "--system" || a == "crds")
}

/// Every object a control plane renders is tied to it: labelled with it (which the controller
/// and `kubectl delete -l` use to clean up cluster-scoped objects) and, if namespaced, in its
/// own namespace (deleted with it) or in kubeflex-system.
#[test]
fn control_plane_objects_are_tied_to_their_control_plane() {
    let mut cluster_scoped = 0;
    for (case, object) in golden_objects() {
        let Some(owner) = object.label("kflex.kubestellar.org/control-plane") else {
            assert!(
                renders_system(&case),
                "{case}: {} is not labelled with its control plane",
                object.key()
            );
            assert!(
                object.namespace().is_none_or(|ns| ns == "kubeflex-system"),
                "{case}: {} belongs to no control plane and is outside kubeflex-system",
                object.key()
            );
            continue;
        };
        assert_eq!(object.label("app.kubernetes.io/managed-by"), Some("kflex"));
        match object.namespace() {
            Some(namespace) => assert!(
                namespace == format!("{owner}-system") || namespace == "kubeflex-system",
                "{case}: {} of {owner} is in {namespace}",
                object.key()
            ),
            None => cluster_scoped += 1,
        }
    }
    assert!(
        cluster_scoped > 0,
        "the cases include cluster-scoped objects of control planes (host's binding)"
    );
}

/// Least privilege is spelled out: no Role or ClusterRole grants `*`.
#[test]
fn no_role_grants_everything() {
    for (case, object) in golden_objects() {
        if !(object.kind() == "Role" || object.kind() == "ClusterRole") {
            continue;
        }
        for rule in object.object()["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                let wildcard = rule
                    .get(field)
                    .and_then(Value::as_array)
                    .is_some_and(|values| values.iter().any(|v| v == "*"));
                assert!(!wildcard, "{case}: {} uses * in {field}", object.key());
            }
        }
    }
}

/// Every invocation of the kflex image the renderer writes (`kflex bootstrap …`, `kflex
/// controller …`) is one the kflex binary accepts: the contract of docs/bootstrap.md, checked
/// from both sides.
#[test]
fn rendered_kflex_invocations_are_accepted_by_the_binary() {
    let mut seen = std::collections::BTreeSet::new();
    for (case, object) in golden_objects().into_iter().chain(publishing_addresses()) {
        let Some((_, spec)) = pod_security::pod_spec(&object) else {
            continue;
        };
        for container in containers(spec) {
            let args: Vec<&str> = container
                .get("args")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !image.contains("/kflex:") {
                continue;
            }
            if let Err(err) = kflex::cli::accepts(&args) {
                panic!(
                    "{case}: {} runs {args:?}, which kflex refuses:\n{err}",
                    object.key()
                );
            }
            seen.insert(args[..args.len().min(2)].join(" "));
        }
    }
    let expected = [
        "bootstrap adopt",
        "bootstrap backup",
        "bootstrap database",
        "bootstrap host-kubeconfig",
        "bootstrap kubeconfig",
        "bootstrap password",
        "bootstrap pki",
        "bootstrap publish-kubeconfig",
        "bootstrap tls",
        "controller --leader-elect",
    ];
    assert_eq!(
        seen.iter().map(String::as_str).collect::<Vec<_>>(),
        expected,
        "the golden cases exercise every program"
    );
}

/// The k8s and vcluster control planes of the acceptance set with exposure loadBalancer and
/// `loadBalancer.publishAddress`, whose publishers take arguments no golden case shows (the
/// k3s-loadbalancer case shows k3s's).
fn publishing_addresses() -> Vec<(String, Manifest)> {
    use kflex_core::render::{HookCatalog, Renderer, TemplateSet};
    use kflex_core::settings::{Exposure, Settings};
    let mut settings = Settings {
        exposure: Some(Exposure::LoadBalancer),
        ..Settings::default()
    };
    settings.load_balancer.publish_address = true;
    let renderer = Renderer::new(settings, &TemplateSet::embedded()).expect("renderer");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/acceptance");
    let mut objects = Vec::new();
    for file in ["cp-k8s.yaml", "cp-vcluster.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).expect("acceptance input");
        let cp: kflex_core::api::ControlPlane =
            serde_saphyr::from_str(&text).expect("a ControlPlane");
        let mut cp = cp;
        // Their hooks are not what this is about.
        cp.spec.post_create_hooks = None;
        let rendered = renderer
            .render(&cp, &HookCatalog::default())
            .expect("rendered");
        let case = format!("{file} with loadBalancer.publishAddress");
        objects.extend(rendered.manifests.into_iter().map(|m| (case.clone(), m)));
    }
    objects
}

fn sync_wave(case: &str, object: &Manifest) -> i32 {
    let wave = object
        .annotation(gitops::SYNC_WAVE_ANNOTATION)
        .unwrap_or_else(|| panic!("{case}: {} has no sync wave", object.key()));
    wave.parse()
        .unwrap_or_else(|_| panic!("{case}: {} has sync wave {wave:?}", object.key()))
}

/// Argo CD applies wave after wave and starts one only when the previous is healthy, so the
/// waves must put what an object needs before it: namespaces and RBAC first, the bootstrap Jobs
/// before the workloads that mount the Secrets those Jobs create, exposure after the workloads,
/// the whole system set before any control plane, and a control plane before its hooks.
#[test]
fn sync_waves_order_what_depends_on_what() {
    let objects = golden_objects();
    for (case, object) in &objects {
        let wave = sync_wave(case, object);
        let from_hook = object
            .annotation("kflex.kubestellar.org/post-create-hook")
            .is_some();
        let system = object
            .label("kflex.kubestellar.org/control-plane")
            .is_none();
        if system {
            assert!(
                wave < 0,
                "{case}: system object {} is in wave {wave}",
                object.key()
            );
        } else if from_hook {
            assert!(
                wave >= 10,
                "{case}: hook object {} is in wave {wave}",
                object.key()
            );
        } else {
            assert!(
                (0..10).contains(&wave),
                "{case}: {} is in wave {wave}",
                object.key()
            );
        }
    }
    let wave_of = |case: &str, kinds: &[&str]| -> Vec<i32> {
        objects
            .iter()
            .filter(|(c, o)| {
                c == case
                    && kinds.contains(&o.kind())
                    && o.annotation("kflex.kubestellar.org/post-create-hook")
                        .is_none()
            })
            .map(|(c, o)| sync_wave(c, o))
            .collect()
    };
    for (case, before, after) in [
        (
            "k8s",
            &["Namespace"][..],
            &["ServiceAccount", "Role", "RoleBinding"][..],
        ),
        ("k8s", &["Role", "RoleBinding"], &["Job", "CronJob"]),
        ("k8s", &["Job"], &["Deployment"]),
        ("k8s", &["Deployment"], &["Ingress"]),
        ("k8s-ha", &["PodDisruptionBudget"], &["Deployment"]),
        // The dedicated PostgreSQL goes with the Jobs: its database Job needs it, and the API
        // servers need what that Job writes.
        ("k8s-dedicated", &["StatefulSet"], &["Deployment"]),
        ("k8s-openshift", &["Deployment"], &["Route"]),
        (
            "system",
            &["CustomResourceDefinition", "Namespace"],
            &["ClusterRole"],
        ),
        ("system", &["Job"], &["StatefulSet", "Deployment"]),
        ("vcluster", &["Secret"], &["StatefulSet"]),
    ] {
        let (before, after) = (wave_of(case, before), wave_of(case, after));
        assert!(
            !before.is_empty() && !after.is_empty(),
            "{case}: kinds present"
        );
        let (last, first) = (before.iter().max(), after.iter().min());
        assert!(
            last < first,
            "{case}: waves {before:?} must precede {after:?}"
        );
    }
    // The hooks of k8s-hooks start after the control plane is exposed.
    let exposure = wave_of("k8s-hooks", &["Ingress"]);
    for (case, object) in &objects {
        if case == "k8s-hooks"
            && object
                .annotation("kflex.kubestellar.org/post-create-hook")
                .is_some()
        {
            assert!(sync_wave(case, object) > exposure[0], "{}", object.key());
        }
    }
}

/// A changed Job is deleted and created again by Argo CD and Flux, and no Job deletes itself
/// (Argo CD would see it Missing and create it again, so it would run again and again).
#[test]
fn jobs_are_replaced_when_changed_and_never_expire() {
    let mut jobs = 0;
    for (case, object) in golden_objects() {
        if object.kind() != "Job" {
            continue;
        }
        jobs += 1;
        assert_eq!(
            object.annotation(gitops::SYNC_OPTIONS_ANNOTATION),
            Some("Force=true,Replace=true"),
            "{case}: {}",
            object.key()
        );
        assert!(
            object.object()["spec"]
                .get("ttlSecondsAfterFinished")
                .is_none(),
            "{case}: {} has a TTL",
            object.key()
        );
    }
    assert!(jobs > 10, "the cases render Jobs");
}

/// Flux must not substitute variables in anything that contains `$` (CRD patterns, scripts).
#[test]
fn objects_with_dollar_signs_opt_out_of_flux_substitution() {
    let mut marked = 0;
    for (case, object) in golden_objects() {
        let text = serde_json::to_string(object.object()).expect("serializable");
        let opted_out = object.annotation(gitops::FLUX_SUBSTITUTE_ANNOTATION) == Some("disabled");
        assert_eq!(text.contains('$'), opted_out, "{case}: {}", object.key());
        marked += usize::from(opted_out);
    }
    assert!(marked > 0, "the CRDs' patterns contain $");
}

/// The rules of the controller's ClusterRole in the system golden `case`, as (group, resource,
/// verb) triples.
fn controller_grants(case: &str) -> std::collections::HashSet<(String, String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
        .join("expected.yaml");
    let text = std::fs::read_to_string(&path).expect("system golden exists");
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).expect("golden is YAML");
    let role = documents
        .iter()
        .find(|d| {
            d["kind"] == "ClusterRole" && d["metadata"]["name"] == "kubeflex-controller-manager"
        })
        .expect("the controller's ClusterRole");
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut grants = std::collections::HashSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    grants.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    grants
}

/// The (group, plural resource) of an object's apiVersion and kind, as the controller's
/// dynamic client names it.
fn resource_of(api_version: &str, kind: &str) -> (String, String) {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    (
        group.to_owned(),
        kube::core::ApiResource::from_gvk(&gvk).plural,
    )
}

/// The controller can do its job with the permissions `kflex init` gives it: its ClusterRole
/// grants what applying, replacing and pruning needs for every kind kflex's own templates and
/// built-in hooks render in any golden case (tenants' hooks are granted through
/// `hookResources`, which the hook policy checks), and list and watch for every kind it watches.
#[test]
fn the_controllers_cluster_role_grants_every_kind_it_renders_and_watches() {
    const APPLY: [&str; 5] = ["get", "create", "patch", "update", "delete"];
    let mut missing = std::collections::BTreeSet::new();
    let mut checked = 0;
    for case in cases() {
        let name = case
            .file_name()
            .expect("named")
            .to_string_lossy()
            .into_owned();
        if renders_system(&name) {
            continue;
        }
        let system = if name.contains("openshift") {
            "system-openshift"
        } else {
            "system"
        };
        let grants = controller_grants(system);
        let text = std::fs::read_to_string(case.join("expected.yaml")).expect("golden file");
        for document in text.split("\n---\n") {
            // Tenants' hooks ("PostCreateHook <name>, templates[i]") are theirs to grant.
            if document.contains("# Source: PostCreateHook ") {
                continue;
            }
            let Ok(object) = serde_saphyr::from_str::<Value>(document) else {
                continue;
            };
            let (Some(api_version), Some(kind)) =
                (object["apiVersion"].as_str(), object["kind"].as_str())
            else {
                continue;
            };
            let (group, resource) = resource_of(api_version, kind);
            for verb in APPLY {
                if !grants.contains(&(group.clone(), resource.clone(), verb.to_owned())) {
                    missing.insert(format!(
                        "{system}: {verb} {group}/{resource} (rendered in {name})"
                    ));
                }
            }
            checked += 1;
        }
    }
    for system in ["system", "system-openshift"] {
        let grants = controller_grants(system);
        let optional = [kflex::controller::watches::TLS_ROUTE]
            .into_iter()
            .chain((system == "system-openshift").then_some(kflex::controller::watches::ROUTE));
        for (api_version, kind) in kflex::controller::caches::WATCHED_KINDS
            .into_iter()
            .chain(optional)
        {
            let (group, resource) = resource_of(api_version, kind);
            for verb in ["list", "watch"] {
                if !grants.contains(&(group.clone(), resource.clone(), verb.to_owned())) {
                    missing.insert(format!("{system}: {verb} {group}/{resource} (watched)"));
                }
            }
        }
    }
    assert!(checked > 100, "objects checked: {checked}");
    assert!(
        missing.is_empty(),
        "the controller's ClusterRole lacks:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}
