//! kflex as Argo CD's config-management plugin (examples/argocd/): the generate command run
//! exactly as the repo-server sidecar runs it — in the Application's source directory, with only
//! Argo CD's build environment and the Application's plugin env and parameters, no HOME — and
//! the error contract: on any error a non-zero exit and nothing on stdout, because an empty
//! stream with exit 0 makes Argo CD prune the whole Application.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kflex_core::manifest::Manifest;
use kflex_core::render::gitops;
use serde_json::Value;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/argocd");

fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn plugin() -> Value {
    yaml_file(&Path::new(EXAMPLE).join("plugin.yaml"))
}

fn application() -> Value {
    yaml_file(&Path::new(EXAMPLE).join("application.yaml"))
}

/// The kflex arguments of plugin.yaml's generate command (its first element is the binary).
fn generate_args() -> Vec<String> {
    let command = plugin()["spec"]["generate"]["command"]
        .as_array()
        .expect("generate.command")
        .iter()
        .map(|a| a.as_str().expect("a string").to_owned())
        .collect::<Vec<_>>();
    assert_eq!(
        command[0], "/usr/local/bin/kflex",
        "the binary of the kflex image"
    );
    command[1..].to_vec()
}

/// A parameter name as Argo CD puts it into a variable name: upper case, `-` and `.` as `_`.
fn escape(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The environment Argo CD gives `generate` for `application`: its build environment
/// (docs/user-guide/build-environment.md), `ARGOCD_ENV_<name>` for each plugin env entry, and
/// `ARGOCD_APP_PARAMETERS` plus `PARAM_<NAME>` for each parameter
/// (docs/operator-manual/config-management-plugins.md). `KUBE_VERSION` in the form Argo CD 3.4
/// gives (`v` and a patch version), `KUBE_API_VERSIONS` comma-joined.
fn argo_environment(application: &Value) -> BTreeMap<String, String> {
    let source = &application["spec"]["source"];
    let revision = "8f3c1e2d4b5a69788796a5b4c3d2e1f0a9b8c7d6";
    let text = |v: &Value| v.as_str().expect("a string").to_owned();
    let mut env = BTreeMap::from([
        (
            "ARGOCD_APP_NAME".to_owned(),
            text(&application["metadata"]["name"]),
        ),
        ("ARGOCD_APP_NAMESPACE".to_owned(), String::new()),
        (
            "ARGOCD_APP_PROJECT_NAME".to_owned(),
            text(&application["spec"]["project"]),
        ),
        ("ARGOCD_APP_REVISION".to_owned(), revision.to_owned()),
        (
            "ARGOCD_APP_REVISION_SHORT".to_owned(),
            revision[..7].to_owned(),
        ),
        (
            "ARGOCD_APP_REVISION_SHORT_8".to_owned(),
            revision[..8].to_owned(),
        ),
        ("ARGOCD_APP_SOURCE_PATH".to_owned(), text(&source["path"])),
        (
            "ARGOCD_APP_SOURCE_REPO_URL".to_owned(),
            text(&source["repoURL"]),
        ),
        (
            "ARGOCD_APP_SOURCE_TARGET_REVISION".to_owned(),
            text(&source["targetRevision"]),
        ),
        ("KUBE_VERSION".to_owned(), "v1.34.2".to_owned()),
        (
            "KUBE_API_VERSIONS".to_owned(),
            "v1,apps/v1,batch/v1,networking.k8s.io/v1,rbac.authorization.k8s.io/v1".to_owned(),
        ),
    ]);
    let plugin = &source["plugin"];
    for entry in plugin["env"].as_array().into_iter().flatten() {
        env.insert(
            format!("ARGOCD_ENV_{}", text(&entry["name"])),
            text(&entry["value"]),
        );
    }
    let parameters = plugin["parameters"].as_array().cloned().unwrap_or_default();
    env.insert(
        "ARGOCD_APP_PARAMETERS".to_owned(),
        serde_json::to_string(&parameters).expect("JSON"),
    );
    for parameter in &parameters {
        let variable = format!("PARAM_{}", escape(&text(&parameter["name"])));
        if let Some(value) = parameter.get("string") {
            env.insert(variable, text(value));
        } else if let Some(items) = parameter.get("array").and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                env.insert(format!("{variable}_{i}"), text(item));
            }
        } else if let Some(map) = parameter.get("map").and_then(Value::as_object) {
            for (key, value) in map {
                env.insert(format!("{variable}_{}", escape(key)), text(value));
            }
        }
    }
    env
}

/// The sidecar's command: `dir` as working directory, nothing of this process's environment.
fn generate(dir: &Path, env: &BTreeMap<String, String>) -> std::process::Output {
    Command::cargo_bin("kflex")
        .expect("binary built")
        .args(generate_args())
        .current_dir(dir)
        .env_clear()
        .envs(env)
        .output()
        .expect("runs")
}

/// Every file under `dir` with its content: to show the plugin wrote nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.clone(), std::fs::read(&path).expect("readable"));
        }
    }
    files
}

fn wave(object: &Manifest) -> i32 {
    object
        .annotation(gitops::SYNC_WAVE_ANNOTATION)
        .unwrap_or_else(|| panic!("{} has no sync wave", object.key()))
        .parse()
        .expect("a number")
}

#[test]
fn the_plugin_renders_the_example_application_as_argo_cd_runs_it() {
    let application = application();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        application["spec"]["source"]["path"]
            .as_str()
            .expect("source path"),
    );
    let env = argo_environment(&application);
    assert!(!env.contains_key("HOME"));
    let before = snapshot(&dir);
    let output = generate(&dir, &env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert_eq!(snapshot(&dir), before, "the plugin writes nothing");

    // Every document is a Kubernetes object.
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let documents: Vec<Value> = serde_saphyr::from_multiple(&stdout).expect("a YAML stream");
    let objects: Vec<Manifest> = documents
        .into_iter()
        .map(|d| Manifest::new("stdout", d).expect("every document is an object"))
        .collect();
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o.kind() == kind && o.name() == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };

    // Both control planes from the source directory, and the hook from its subdirectory.
    for cp in ["team-a", "team-b"] {
        find("Namespace", &format!("{cp}-system"));
    }
    let hook_job = find("Job", "tenant-namespaces");

    // Settings: ARGOCD_ENV_DOMAIN (env), PARAM_EXTERNAL_PORT (parameter, over kflex.yaml's
    // 9443), kflex.yaml's ingressClassName, and KUBE_VERSION's minor for Pod Security.
    let ingress = find("Ingress", "team-a");
    assert_eq!(
        ingress.object()["spec"]["rules"][0]["host"],
        "team-a.tenants.example.com"
    );
    assert_eq!(ingress.object()["spec"]["ingressClassName"], "nginx");
    assert!(
        stdout.contains("--server=https://team-a.tenants.example.com:443\n"),
        "the external port parameter reaches the kubeconfig"
    );
    assert!(!stdout.contains(":9443"), "the parameter beats kflex.yaml");
    assert_eq!(
        find("Namespace", "team-a-system").label("pod-security.kubernetes.io/enforce-version"),
        Some("v1.34")
    );

    // Waves: every object has one; definitions first; bootstrap Jobs before the workloads that
    // need their Secrets; exposure after the workloads; the hook after the control plane.
    let waves: Vec<i32> = objects.iter().map(wave).collect();
    assert_eq!(
        waves.iter().min(),
        Some(&wave(find("Namespace", "team-a-system")))
    );
    let bootstrap = wave(find("Job", "kflex-bootstrap"));
    let api_server = wave(find("Deployment", "kube-apiserver"));
    assert!(wave(find("Role", "kflex-bootstrap")) < bootstrap);
    assert!(bootstrap < api_server);
    assert!(api_server < wave(ingress));
    assert!(wave(ingress) < wave(hook_job));
    assert_eq!(
        wave(hook_job),
        waves.iter().copied().max().unwrap_or_default()
    );
    for object in &objects {
        if object.kind() == "Job" {
            assert_eq!(
                object.annotation(gitops::SYNC_OPTIONS_ANNOTATION),
                Some("Force=true,Replace=true"),
                "{}",
                object.key()
            );
        }
    }
    // The hook's shell script keeps its `$ns` under Flux too.
    assert_eq!(
        hook_job.annotation(gitops::FLUX_SUBSTITUTE_ANNOTATION),
        Some("disabled")
    );
}

#[test]
fn the_example_plugin_sidecar_and_application_fit_together() {
    let plugin = plugin();
    assert_eq!(plugin["kind"], "ConfigManagementPlugin");
    // The generate command is one the kflex binary accepts.
    let args = generate_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kflex::cli::accepts(&args).expect("kflex accepts the generate command");
    // Discovery finds the example source directory by its settings file.
    let discover = plugin["spec"]["discover"]["fileName"]
        .as_str()
        .expect("fileName");
    let application = application();
    let path = application["spec"]["source"]["path"]
        .as_str()
        .expect("path");
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(path)
            .join(discover)
            .is_file()
    );
    // The Application names the plugin as Argo CD expects: <name>, or <name>-<version>.
    let name = plugin["metadata"]["name"].as_str().expect("name");
    let expected = match plugin["spec"]["version"].as_str() {
        Some(version) => format!("{name}-{version}"),
        None => name.to_owned(),
    };
    assert_eq!(
        application["spec"]["source"]["plugin"]["name"],
        expected.as_str()
    );

    // The sidecar: Argo CD's plugin server, as user 999, its own /tmp, the shared volumes, and
    // plugin.yaml from the ConfigMap kustomization.yaml generates from the example file.
    let patch = yaml_file(&Path::new(EXAMPLE).join("repo-server-patch.yaml"));
    let pod = &patch["spec"]["template"]["spec"];
    let sidecar = &pod["containers"][0];
    assert_eq!(sidecar["command"][0], "/var/run/argocd/argocd-cmp-server");
    assert_eq!(sidecar["securityContext"]["runAsUser"], 999);
    assert_eq!(sidecar["securityContext"]["runAsNonRoot"], true);
    let mounts: BTreeMap<&str, &Value> = sidecar["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| (m["mountPath"].as_str().expect("path"), &m["name"]))
        .collect();
    assert_eq!(mounts["/var/run/argocd"], "var-files");
    assert_eq!(mounts["/home/argocd/cmp-server/plugins"], "plugins");
    let tmp = mounts["/tmp"].as_str().expect("a /tmp volume");
    let config = mounts["/home/argocd/cmp-server/config/plugin.yaml"]
        .as_str()
        .expect("plugin.yaml mounted");
    let volume = |name: &str| {
        pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    assert!(volume(tmp).get("emptyDir").is_some(), "its own /tmp");
    let config_map = volume(config)["configMap"]["name"].clone();
    let kustomization = yaml_file(&Path::new(EXAMPLE).join("kustomization.yaml"));
    let generator = &kustomization["configMapGenerator"][0];
    assert_eq!(generator["name"], config_map);
    assert_eq!(generator["files"][0], "plugin.yaml");
    assert_eq!(
        kustomization["generatorOptions"]["disableNameSuffixHash"],
        true
    );
}

/// A copy of the example source directory to break.
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = Path::new(EXAMPLE).join("tenants");
    for (path, content) in snapshot(&source) {
        let target = dir
            .path()
            .join(path.strip_prefix(&source).expect("under source"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("created");
        std::fs::write(target, content).expect("written");
    }
    dir
}

/// Runs the plugin in `dir` with the example's environment plus `extra`; asserts the error
/// contract and returns stderr.
fn refused(dir: &Path, extra: &[(&str, &str)]) -> String {
    let mut env = argo_environment(&application());
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let output = generate(dir, &env);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "must fail: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "stdout must stay empty: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

#[test]
fn a_broken_control_plane_file_prints_nothing_and_names_the_file() {
    let dir = example_copy();
    std::fs::write(
        dir.path().join("team-b.yaml"),
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata: {name: team-b}\nspec: {type: vclustre}\n",
    )
    .expect("written");
    let stderr = refused(dir.path(), &[]);
    assert!(stderr.contains("team-b.yaml"), "{stderr}");
    assert!(stderr.contains("spec.type"), "{stderr}");
    std::fs::write(dir.path().join("team-b.yaml"), "spec: [unclosed\n").expect("written");
    let stderr = refused(dir.path(), &[]);
    assert!(stderr.contains("team-b.yaml: not valid YAML"), "{stderr}");
}

/// A Secret committed by mistake, or a settings file, holds credentials: when it does not parse,
/// the plugin names file, line and column, and its log never shows the text.
#[test]
fn a_broken_secret_or_settings_file_is_located_but_never_shown() {
    let marker = "SECRET-TOKEN-123";
    let dir = example_copy();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData:\n  password: {marker}\n  token: \"{marker}\n  other: {marker}\n"
    );
    std::fs::write(dir.path().join("secret.yaml"), &secret).expect("written");
    let stderr = refused(dir.path(), &[]);
    assert!(
        stderr.contains("secret.yaml: not valid YAML or JSON: line "),
        "{stderr}"
    );
    assert!(!stderr.contains(marker), "{stderr}");
    std::fs::remove_file(dir.path().join("secret.yaml")).expect("removed");
    std::fs::write(
        dir.path().join("kflex.yaml"),
        format!("domain: example.com\nimages: {{kine: {{tag: {marker}}}\n"),
    )
    .expect("written");
    let stderr = refused(dir.path(), &[]);
    assert!(
        stderr.contains("kflex.yaml: not valid YAML or JSON: line "),
        "{stderr}"
    );
    assert!(!stderr.contains(marker), "{stderr}");
}

#[test]
fn an_empty_source_directory_is_rendered_only_when_the_plugin_allows_it() {
    let empty = tempfile::tempdir().expect("temp dir");
    let env = argo_environment(&application());
    let output = Command::cargo_bin("kflex")
        .expect("binary built")
        .args(generate_args())
        .arg("--allow-empty")
        .current_dir(empty.path())
        .env_clear()
        .envs(&env)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty());
    let stderr = refused(empty.path(), &[]);
    assert!(stderr.contains("--allow-empty"), "{stderr}");
}

#[test]
fn a_bad_application_env_value_prints_nothing_and_names_the_variable() {
    let dir = example_copy();
    let stderr = refused(dir.path(), &[("ARGOCD_ENV_IS_OPENSHIFT", "maybe")]);
    assert!(
        stderr.contains("isOpenShift (from environment variable ARGOCD_ENV_IS_OPENSHIFT): must be true or false, got \"maybe\""),
        "{stderr}"
    );
    let stderr = refused(dir.path(), &[("ARGOCD_ENV_DOMIAN", "x.example")]);
    assert!(
        stderr.contains("did you mean ARGOCD_ENV_DOMAIN?"),
        "{stderr}"
    );
    let stderr = refused(dir.path(), &[("PARAM_EXTERNAL_PORT", "https")]);
    assert!(stderr.contains("PARAM_EXTERNAL_PORT"), "{stderr}");
    let stderr = refused(dir.path(), &[("KUBE_VERSION", "v1.31.0")]);
    assert!(stderr.contains("KUBE_VERSION"), "{stderr}");
}

/// The exposure and its settings come from the Application like every setting: env, and
/// parameters over env; a mapping setting as a JSON object.
#[test]
fn the_exposure_is_chosen_by_the_application() {
    let dir = example_copy();
    let mut env = argo_environment(&application());
    env.insert("ARGOCD_ENV_EXPOSURE".to_owned(), "gateway".to_owned());
    env.insert("PARAM_GATEWAY_SECTION_NAME".to_owned(), "tls".to_owned());
    let output = generate(dir.path(), &env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let objects: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    let routes: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "TLSRoute").collect();
    assert!(!routes.is_empty() && objects.iter().all(|o| o["kind"] != "Ingress"));
    for route in routes {
        assert_eq!(route["spec"]["parentRefs"][0]["sectionName"], "tls");
    }
    let mut env = argo_environment(&application());
    env.insert("ARGOCD_ENV_EXPOSURE".to_owned(), "loadBalancer".to_owned());
    env.insert(
        "ARGOCD_ENV_LOAD_BALANCER_ANNOTATIONS".to_owned(),
        r#"{"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}"#.to_owned(),
    );
    let output = generate(dir.path(), &env);
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(
        text.contains("service.beta.kubernetes.io/aws-load-balancer-scheme: internal")
            && text.contains("type: LoadBalancer"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = refused(dir.path(), &[("ARGOCD_ENV_EXPOSURE", "route")]);
    assert!(
        stderr.contains("setting exposure (from environment variable ARGOCD_ENV_EXPOSURE): route needs isOpenShift"),
        "{stderr}"
    );
}

/// The example's TLSRoute health check, run as Argo CD runs it (Lua 5.1) by
/// `tests/argocd/tlsroute_health.py` on sample routes: Healthy once accepted, Degraded with the
/// Gateway's message when refused, Progressing until then. lupa comes from the Python named by
/// `KFLEX_LUA_PYTHON` (`.ci/run` installs it), else `python3`; without it the test says it was
/// skipped, unless the variable was set, when it fails. The kustomization applies the check.
#[test]
fn the_example_tlsroute_health_check_is_healthy_once_accepted() {
    let kustomization = yaml_file(&Path::new(EXAMPLE).join("kustomization.yaml"));
    assert!(
        kustomization["patches"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["path"] == "tlsroute-health.yaml"))
    );
    let configured = std::env::var("KFLEX_LUA_PYTHON").ok();
    let python = configured.clone().unwrap_or_else(|| "python3".to_owned());
    let available = std::process::Command::new(&python)
        .args(["-c", "import lupa.lua51, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            configured.is_none(),
            "KFLEX_LUA_PYTHON={python} cannot import lupa.lua51 and yaml"
        );
        eprintln!(
            "SKIPPED the_example_tlsroute_health_check_is_healthy_once_accepted: no lupa in \
             {python}; set KFLEX_LUA_PYTHON (.ci/run does)"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(&python)
        .arg(root.join("tests/argocd/tlsroute_health.py"))
        .arg(Path::new(EXAMPLE).join("tlsroute-health.yaml"))
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("failures: 0"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_directory_without_control_planes_prints_nothing() {
    let empty = tempfile::tempdir().expect("temp dir");
    let stderr = refused(empty.path(), &[]);
    assert!(stderr.contains("no ControlPlane found"), "{stderr}");
    // Settings and hooks alone are no control plane either.
    let dir = example_copy();
    std::fs::remove_file(dir.path().join("team-a.yaml")).expect("removed");
    std::fs::remove_file(dir.path().join("team-b.yaml")).expect("removed");
    let stderr = refused(dir.path(), &[]);
    assert!(stderr.contains("prune"), "{stderr}");
    // Asked for, the system manifests alone are a stream worth applying.
    let mut env = argo_environment(&application());
    env.insert("PARAM_SYSTEM".to_owned(), "true".to_owned());
    let output = generate(dir.path(), &env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("name: kubeflex-system\n"));
}

/// For review (examples/github/render-diff.yaml), plugin mode writes the same objects to a
/// directory, one file per object.
#[test]
fn plugin_mode_renders_into_a_directory_for_review() {
    let dir = example_copy();
    let env = argo_environment(&application());
    let out = tempfile::tempdir().expect("temp dir");
    let output = Command::cargo_bin("kflex")
        .expect("binary built")
        .args(["render", "--argocd", "--output-dir"])
        .arg(out.path())
        .current_dir(dir.path())
        .env_clear()
        .envs(&env)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty());
    let stream = String::from_utf8(generate(dir.path(), &env).stdout).expect("UTF-8");
    let mut files = 0;
    for set in ["team-a", "team-b"] {
        let kustomization =
            std::fs::read_to_string(out.path().join(set).join("kustomization.yaml")).expect("set");
        for file in kustomization.lines().filter_map(|l| l.strip_prefix("- ")) {
            let text = std::fs::read_to_string(out.path().join(set).join(file)).expect("listed");
            assert!(
                stream.contains(&text),
                "{set}/{file} is what the plugin prints"
            );
            files += 1;
        }
    }
    assert_eq!(files, stream.matches("\n---\n").count() + 1);
}
