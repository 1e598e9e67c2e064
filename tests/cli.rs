//! `kflex render` and `kflex crds` as a user drives them: arguments, settings precedence,
//! inputs, outputs and errors.

use std::path::Path;

use assert_cmd::Command;
use serde_json::{Value, json};

fn kflex() -> Command {
    let mut cmd = Command::cargo_bin("kflex").expect("binary built");
    cmd.env_clear();
    cmd
}

const ACCEPTANCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/acceptance");

fn acceptance(file: &str) -> String {
    format!("{ACCEPTANCE}/{file}")
}

fn stdout(cmd: &mut Command) -> String {
    let output = cmd.output().expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Fails with exit 1, nothing on stdout; returns stderr.
fn refused(cmd: &mut Command) -> String {
    let output = cmd.output().expect("runs");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).expect("UTF-8")
}

fn objects(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(yaml).expect("output is YAML")
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn ingress_host(yaml: &str) -> String {
    let objects = objects(yaml);
    find(&objects, "Ingress", "cp1")["spec"]["rules"][0]["host"]
        .as_str()
        .expect("host")
        .to_owned()
}

#[test]
fn nothing_to_render_is_an_error() {
    let stderr = refused(kflex().arg("render"));
    assert!(stderr.contains("nothing to render"), "{stderr}");
}

#[test]
fn type_applies_only_to_named_control_planes() {
    let stderr =
        refused(kflex().args(["render", "--type", "k8s", "-f", &acceptance("cp-k8s.yaml")]));
    assert!(
        stderr.contains("--type applies to control planes named on the command line"),
        "{stderr}"
    );
}

#[test]
fn ocm_is_refused_with_the_migration_path() {
    let stderr = refused(kflex().args(["render", "old", "--type", "ocm"]));
    assert!(
        stderr.contains("deprecated") && stderr.contains("type vcluster"),
        "{stderr}"
    );
    // The example the message points at exists and renders: a vcluster made an OCM hub.
    let example = "examples/hooks/ocm.yaml";
    assert!(stderr.contains(example), "{stderr}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(example);
    let rendered = objects(&stdout(kflex().args(["render", "-f"]).arg(&path)));
    find(&rendered, "StatefulSet", "vcluster");
    let job = find(&rendered, "Job", "ocm-hub-init");
    assert_eq!(job["metadata"]["namespace"], "hub-system");
    let volumes = &job["spec"]["template"]["spec"]["volumes"];
    assert_eq!(volumes[0]["secret"]["secretName"], "vc-vcluster");
    assert_eq!(volumes[0]["secret"]["items"][0]["key"], "config-incluster");
}

#[test]
fn json_output_is_one_list_of_the_same_objects() {
    let yaml = stdout(kflex().args(["render", "cp1"]));
    let json = stdout(kflex().args(["render", "cp1", "-o", "json"]));
    let list: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().expect("items"), &objects(&yaml));
}

#[test]
fn settings_precedence_is_values_then_environment_then_set_then_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "domain: from-file.example\n").expect("writable");
    let values = values.to_str().expect("UTF-8 path");
    let host = |cmd: &mut Command| ingress_host(&stdout(cmd));
    assert_eq!(host(kflex().args(["render", "cp1"])), "cp1.localtest.me");
    assert_eq!(
        host(kflex().args(["render", "cp1", "--values", values])),
        "cp1.from-file.example"
    );
    assert_eq!(
        host(
            kflex()
                .args(["render", "cp1", "--values", values])
                .env("KFLEX_DOMAIN", "env.example")
        ),
        "cp1.env.example"
    );
    assert_eq!(
        host(
            kflex()
                .args([
                    "render",
                    "cp1",
                    "--values",
                    values,
                    "--set",
                    "domain=set.example"
                ])
                .env("KFLEX_DOMAIN", "env.example")
        ),
        "cp1.set.example"
    );
    assert_eq!(
        host(
            kflex()
                .args([
                    "render",
                    "cp1",
                    "--values",
                    values,
                    "--set",
                    "domain=set.example",
                    "--domain",
                    "flag.example"
                ])
                .env("KFLEX_DOMAIN", "env.example")
        ),
        "cp1.flag.example"
    );
}

#[test]
fn bad_settings_name_the_key_and_where_it_came_from() {
    let stderr = refused(kflex().args(["render", "cp1", "--set", "images.kine.tga=v1"]));
    assert!(
        stderr.contains("unknown setting \"images.kine.tga\" (from --set)"),
        "{stderr}"
    );
    let stderr = refused(
        kflex()
            .args(["render", "cp1"])
            .env("KFLEX_EXTERNAL_PORT", "https"),
    );
    assert!(
        stderr.contains("externalPort (from environment variable KFLEX_EXTERNAL_PORT)"),
        "{stderr}"
    );
    let stderr = refused(kflex().args(["render", "cp1", "--kube-version", "1.29"]));
    assert!(
        stderr.contains("kubeVersion (from flag --kube-version)")
            && stderr.contains("1.33 or newer"),
        "{stderr}"
    );
    let stderr = refused(kflex().args(["render", "cp1", "--set", "domain"]));
    assert!(stderr.contains("expected KEY=VALUE"), "{stderr}");
    assert!(
        refused(kflex().args(["render", "cp1", "--set", "images.kine.tga=v1"]))
            .contains("did you mean images.kine.tag?"),
    );
    // A misspelt variable would otherwise leave the setting at its default without a word.
    let stderr = refused(
        kflex()
            .args(["render", "cp1"])
            .env("KFLEX_EXTERNAL_PROT", "443"),
    );
    assert!(
        stderr.contains(
            "environment variable KFLEX_EXTERNAL_PROT is not a kflex setting (did you mean \
             KFLEX_EXTERNAL_PORT?)"
        ),
        "{stderr}"
    );
    // kflex's own test and CI variables are not settings, and are not refused.
    stdout(
        kflex()
            .args(["render", "cp1"])
            .env("KFLEX_E2E_KUBECONFIG", "/nonexistent")
            .env("KFLEX_YAML11_PYTHON", "/usr/bin/python3"),
    );
    let stderr = refused(kflex().args(["render", "cp1", "--external-port", "70000"]));
    assert!(
        stderr.contains(
            "externalPort (from flag --external-port): must be between 1 and 65535, got 70000"
        ),
        "{stderr}"
    );
}

#[test]
fn bad_exposure_settings_are_refused_with_key_source_and_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "loadBalancer:\n  sourceRanges: [10.1.2.3/8]\n").expect("written");
    let values = values.to_str().expect("UTF-8 path");
    for (cmd, expected) in [
        (
            kflex()
                .args(["render", "cp1"])
                .env("KFLEX_EXPOSURE", "nodePort"),
            "setting exposure (from environment variable KFLEX_EXPOSURE): must be one of ingress, route, gateway, loadBalancer, got \"nodePort\"",
        ),
        (
            kflex().args(["render", "cp1", "--exposure", "route"]),
            "setting exposure (from flag --exposure): route needs isOpenShift: true",
        ),
        (
            kflex().args([
                "render",
                "--system",
                "--exposure=gateway",
                "--set",
                "gateway.create=true",
            ]),
            "setting gateway.create (from --set): needs gateway.className",
        ),
        (
            kflex().args([
                "render",
                "cp1",
                "--exposure=loadBalancer",
                "--values",
                values,
            ]),
            "setting loadBalancer.sourceRanges (from values file",
        ),
    ] {
        let stderr = refused(cmd);
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    let stderr = refused(kflex().args(["render", "cp1", "--values", values]));
    assert!(
        stderr.contains("\"10.1.2.3/8\" is not a network address; did you mean 10.0.0.0/8?"),
        "{stderr}"
    );
    // OpenShift runs Gateway API implementations too.
    let yaml = stdout(kflex().args(["render", "cp1", "--openshift", "--exposure", "gateway"]));
    find(&objects(&yaml), "TLSRoute", "cp1");
}

#[test]
fn hook_resources_extend_the_controller_cluster_role_and_never_to_secrets() {
    let system = objects(&stdout(kflex().args([
        "render",
        "--system",
        "--set",
        "hookResources=resourcequotas,horizontalpodautoscalers.autoscaling",
    ])));
    let rules = find(&system, "ClusterRole", "kubeflex-controller-manager")["rules"]
        .as_array()
        .unwrap();
    let grants = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|rule| {
            rule["resourceNames"].is_null()
                && [
                    ("apiGroups", group),
                    ("resources", resource),
                    ("verbs", verb),
                ]
                .iter()
                .all(|(field, item)| rule[field].as_array().unwrap().contains(&json!(item)))
        })
    };
    assert!(grants("", "resourcequotas", "create"));
    assert!(grants("autoscaling", "horizontalpodautoscalers", "patch"));
    assert!(
        !grants("", "limitranges", "create"),
        "only what was asked for"
    );
    let stderr = refused(kflex().args(["render", "--system", "--set", "hookResources=secrets"]));
    assert!(
        stderr.contains("hookResources (from --set)")
            && stderr.contains("secrets cannot be granted"),
        "{stderr}"
    );
}

#[test]
fn openshift_flag_takes_an_optional_value_without_eating_names() {
    let on = stdout(kflex().args(["render", "--openshift", "cp1"]));
    assert!(on.contains("kind: Route"));
    let off = stdout(kflex().args(["render", "--openshift=false", "cp1"]));
    assert!(off.contains("kind: Ingress") && !off.contains("kind: Route"));
}

#[test]
fn stdin_is_read_with_dash() {
    let text = std::fs::read_to_string(acceptance("cp-k8s.yaml")).expect("readable");
    let out = stdout(kflex().args(["render", "-f", "-"]).write_stdin(text));
    assert!(out.contains("name: cp1-system"));
}

#[test]
fn directories_are_read_in_name_order_and_recursively_on_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nested = dir.path().join("nested");
    std::fs::create_dir(&nested).expect("created");
    std::fs::copy(acceptance("cp-k8s.yaml"), dir.path().join("a.yaml")).expect("copied");
    std::fs::write(dir.path().join("notes.txt"), "not YAML, ignored").expect("written");
    std::fs::write(
        nested.join("b.yml"),
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata: {name: cp2}\nspec: {type: k8s}\n",
    )
    .expect("written");
    let flat = stdout(kflex().args(["render", "-f"]).arg(dir.path()));
    assert!(flat.contains("cp1-system") && !flat.contains("cp2-system"));
    let deep = stdout(kflex().args(["render", "-R", "-f"]).arg(dir.path()));
    assert!(deep.contains("cp1-system") && deep.contains("cp2-system"));
    // Control planes come out in name order, each in install order.
    assert!(deep.find("name: cp1-system").unwrap() < deep.find("name: cp2-system").unwrap());
}

#[test]
fn the_same_control_plane_twice_is_refused() {
    let stderr = refused(kflex().args(["render", "cp1", "-f", &acceptance("cp-k8s.yaml")]));
    assert!(
        stderr.contains("ControlPlane \"cp1\" is given more than once"),
        "{stderr}"
    );
}

fn write_hook(dir: &Path, template: &str) -> String {
    let path = dir.join("hook.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\n\
             metadata: {{name: h}}\nspec:\n  templates:\n  - {template}\n"
        ),
    )
    .expect("written");
    path.to_str().expect("UTF-8").to_owned()
}

fn write_control_plane(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\n\
             metadata: {{name: {name}}}\nspec: {{type: k8s, postCreateHooks: [{{hookName: h}}]}}\n"
        ),
    )
    .expect("written");
    path.to_str().expect("UTF-8").to_owned()
}

/// Renders control plane `a` with a hook holding `template`; the result of the run.
fn render_with_hook(template: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let hook = write_hook(dir.path(), template);
    let cp = write_control_plane(dir.path(), "a");
    kflex()
        .args(["render", "-f", &cp, "-f", &hook])
        .args(extra)
        .output()
        .expect("runs")
}

/// The error of rendering control plane `a` with a hook holding `template`.
fn hook_refusal(template: &str) -> String {
    let output = render_with_hook(template, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    String::from_utf8(output.stderr).expect("UTF-8")
}

#[test]
fn hooks_cannot_grant_power_outside_their_namespace() {
    const RBAC: &str = "apiVersion: rbac.authorization.k8s.io/v1";
    let own_sa = "subjects: [{kind: ServiceAccount, name: default, namespace: a-system}]";
    let refused = [
        // Cluster-wide grants need the administrator's opt-in ...
        (
            format!(
                "{{{RBAC}, kind: ClusterRoleBinding, metadata: {{name: x}}, roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: mine}}, {own_sa}}}"
            ),
            "allowClusterScopedHookRbac",
        ),
        // ... and never reach others or escalate.
        (
            format!(
                "{{{RBAC}, kind: RoleBinding, metadata: {{name: x}}, roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}, subjects: [{{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}}]}}"
            ),
            "subjects[0]",
        ),
        (
            format!(
                "{{{RBAC}, kind: RoleBinding, metadata: {{name: x}}, roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}}, subjects: [{{kind: ServiceAccount, name: default, namespace: b-system}}]}}"
            ),
            "subjects[0]",
        ),
        (
            format!(
                "{{{RBAC}, kind: ClusterRole, metadata: {{name: x}}, rules: [{{apiGroups: ['*'], resources: ['*'], verbs: ['*']}}]}}"
            ),
            "rules[0].verbs",
        ),
        (
            format!(
                "{{{RBAC}, kind: ClusterRole, metadata: {{name: x}}, rules: [{{apiGroups: [''], resources: [users], verbs: [impersonate]}}]}}"
            ),
            "rules[0].verbs",
        ),
        (
            format!(
                "{{{RBAC}, kind: ClusterRole, metadata: {{name: x, labels: {{rbac.authorization.k8s.io/aggregate-to-admin: 'true'}}}}, rules: []}}"
            ),
            "metadata.labels",
        ),
        (
            "{apiVersion: v1, kind: Namespace, metadata: {name: kube-tenant}}".to_owned(),
            "system namespace",
        ),
        (
            "{apiVersion: v1, kind: Namespace, metadata: {name: b-system}}".to_owned(),
            "another control plane",
        ),
        (
            "{apiVersion: v1, kind: Secret, metadata: {name: k8s-certs}}".to_owned(),
            "created by the control plane itself",
        ),
    ];
    for (template, expected) in refused {
        let stderr = hook_refusal(&template);
        assert!(stderr.contains(expected), "{template}: {stderr}");
    }
    let binding = format!(
        "{{{RBAC}, kind: ClusterRoleBinding, metadata: {{name: x}}, roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: mine}}, {own_sa}}}"
    );
    let output = render_with_hook(&binding, &["--set", "allowClusterScopedHookRbac=true"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for role in ["cluster-admin", "admin", "edit", "view", "system:node"] {
        let binding = binding.replace("name: mine", &format!("name: '{role}'"));
        let output = render_with_hook(&binding, &["--set", "allowClusterScopedHookRbac=true"]);
        assert!(
            !output.status.success() && output.stdout.is_empty(),
            "{role}"
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("roleRef.name"),
            "{role}"
        );
    }
}

#[test]
fn an_object_two_control_planes_would_share_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hook = write_hook(
        dir.path(),
        "{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: fixed}}",
    );
    let a = write_control_plane(dir.path(), "a");
    let b = write_control_plane(dir.path(), "b");
    assert!(stdout(kflex().args(["render", "-f", &a, "-f", &hook])).contains("name: fixed"));
    let stderr = refused(kflex().args(["render", "-f", &a, "-f", &b, "-f", &hook]));
    assert!(
        stderr.contains(
            "ClusterRole fixed is rendered for both ControlPlane \"a\" and ControlPlane \"b\""
        ),
        "{stderr}"
    );
}

#[test]
fn unknown_kinds_need_a_declared_scope() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hook = write_hook(
        dir.path(),
        "{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}}",
    );
    let cp = write_control_plane(dir.path(), "a");
    let stderr = refused(kflex().args(["render", "-f", &cp, "-f", &hook]));
    assert!(
        stderr.contains("--namespaced-kind Widget.example.com"),
        "{stderr}"
    );
    let out = stdout(kflex().args([
        "render",
        "-f",
        &cp,
        "-f",
        &hook,
        "--namespaced-kind",
        "Widget.example.com",
    ]));
    let namespaced = objects(&out);
    assert_eq!(
        find(&namespaced, "Widget", "w")["metadata"]["namespace"],
        "a-system"
    );
    let out = stdout(kflex().args([
        "render",
        "-f",
        &cp,
        "-f",
        &hook,
        "--cluster-scoped-kind",
        "Widget.example.com",
    ]));
    let cluster = objects(&out);
    let widget = find(&cluster, "Widget", "w");
    assert!(widget["metadata"].get("namespace").is_none());
    assert_eq!(
        widget["metadata"]["labels"]["kflex.kubestellar.org/control-plane"],
        "a"
    );
}

#[test]
fn a_crd_rendered_by_a_hook_declares_its_kind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hook.yaml");
    std::fs::write(
        &path,
        r#"apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: PostCreateHook
metadata: {name: h}
spec:
  templates:
  - apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: cr1s.synthetic-crd.com}
    spec: {group: synthetic-crd.com, scope: Namespaced, names: {kind: CR1, plural: cr1s}, versions: []}
  - {apiVersion: synthetic-crd.com/v1alpha1, kind: CR1, metadata: {name: one}}
"#,
    )
    .expect("written");
    let cp = write_control_plane(dir.path(), "a");
    let out = stdout(kflex().args(["render", "-f", &cp, "-f"]).arg(&path));
    let objects = objects(&out);
    assert_eq!(
        find(&objects, "CR1", "one")["metadata"]["namespace"],
        "a-system"
    );
    let crd_at = objects
        .iter()
        .position(|o| o["kind"] == "CustomResourceDefinition")
        .expect("CRD");
    let cr_at = objects.iter().position(|o| o["kind"] == "CR1").expect("CR");
    assert!(crd_at < cr_at, "the CRD is installed before its objects");
}

#[test]
fn hooks_cannot_place_objects_in_other_namespaces() {
    let stderr = hook_refusal(
        "{apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: kube-system}}",
    );
    assert!(
        stderr.contains("ConfigMap kube-system/c (from PostCreateHook h, templates[0]), field metadata.namespace"),
        "{stderr}"
    );
    assert!(stderr.contains("belong in a-system"), "{stderr}");
}

#[test]
fn warnings_go_to_stderr_and_stdout_stays_clean_yaml() {
    let output = kflex()
        .args([
            "render",
            "-f",
            &acceptance("cp-k8s-hooks.yaml"),
            "-f",
            &acceptance("hook-hello.yaml"),
            "-f",
            &acceptance("hook-kubectl-check.yaml"),
        ])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("warning: namespace team-a-system enforces Pod Security baseline"),
        "{stderr}"
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(!stdout.contains("warning"));
    let objects = objects(&stdout);
    let namespace = find(&objects, "Namespace", "team-a-system");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/warn"],
        "restricted"
    );
    let why = namespace["metadata"]["annotations"]["kflex.kubestellar.org/pod-security-exceptions"]
        .as_str()
        .expect("exceptions are explained");
    assert!(why.contains("Job hello (PostCreateHook hello"), "{why}");
}

#[test]
fn hook_values_are_data_even_when_they_look_like_yaml() {
    let out = stdout(kflex().args([
        "render",
        "-f",
        &acceptance("cp-k8s-hooks.yaml"),
        "-f",
        &acceptance("hook-hello.yaml"),
        "-f",
        &acceptance("hook-kubectl-check.yaml"),
    ]));
    let objects = objects(&out);
    let job = find(&objects, "Job", "hello");
    let command = &job["spec"]["template"]["spec"]["containers"][0]["command"];
    // Per-hook vars beat globalVars; built-ins fill the rest; the colon and quotes stay text.
    assert_eq!(
        command[1],
        "hello: from per-hook vars, with a colon and 'quotes'"
    );
    assert_eq!(command[2], "in team-a (team-a-system)");
}

#[test]
fn output_dir_writes_one_file_per_object_and_replaces_what_was_there() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("rendered");
    stdout(kflex().args(["render", "cp1", "--output-dir"]).arg(&out));
    std::fs::write(out.join("cp1/stale.yaml"), "old").expect("written");
    std::fs::write(out.join("unrelated.txt"), "mine").expect("written");
    let printed = stdout(
        kflex()
            .args(["render", "cp1", "--system", "--output-dir"])
            .arg(&out),
    );
    assert!(printed.is_empty(), "nothing on stdout with --output-dir");
    assert!(
        !out.join("cp1/stale.yaml").exists(),
        "the set's directory is replaced"
    );
    assert!(
        out.join("unrelated.txt").exists(),
        "other files are left alone"
    );
    let deployment =
        std::fs::read_to_string(out.join("cp1/deployment.apps_cp1-system_kube-apiserver.yaml"))
            .expect("file per object");
    assert!(
        deployment.starts_with("# Source: k8s/kube-apiserver.yaml\napiVersion: apps/v1\n"),
        "{deployment}"
    );
    let kustomization =
        std::fs::read_to_string(out.join("cp1/kustomization.yaml")).expect("kustomization");
    assert!(kustomization.contains("- namespace_cp1-system.yaml\n"));
    let listed = kustomization
        .lines()
        .filter(|l| l.starts_with("- "))
        .count();
    let files = std::fs::read_dir(out.join("cp1")).expect("dir").count();
    assert_eq!(listed + 1, files, "every object file is listed");
    assert!(out.join("system/customresourcedefinition.apiextensions.k8s.io_controlplanes.tenancy.kflex.kubestellar.org.yaml").exists());
    // The concatenated files are exactly what stdout would have been.
    let stream = stdout(kflex().args(["render", "cp1"]));
    let order: Vec<String> = kustomization
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .map(str::to_owned)
        .collect();
    let joined: String = order
        .iter()
        .map(|f| {
            format!(
                "---\n{}",
                std::fs::read_to_string(out.join("cp1").join(f)).expect("listed file")
            )
        })
        .collect();
    assert_eq!(joined, stream);
}

#[test]
fn output_dir_removes_the_sets_of_control_planes_no_longer_rendered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("rendered");
    stdout(
        kflex()
            .args(["render", "cp1", "cp2", "--output-dir"])
            .arg(&out),
    );
    assert!(out.join("cp2/kustomization.yaml").exists());
    // A directory of the user's, and the staging directory of an earlier run that was killed.
    std::fs::create_dir_all(out.join("mine")).expect("created");
    std::fs::write(out.join("mine/kustomization.yaml"), "resources: []\n").expect("written");
    std::fs::create_dir_all(out.join(".kflex-staging-x1/old/cp3")).expect("created");
    std::fs::write(out.join(".kflex-staging-x1/kflex-render-staging"), "").expect("written");
    // cp2 was removed from the input: its objects must not stay behind for Flux to apply.
    stdout(kflex().args(["render", "cp1", "--output-dir"]).arg(&out));
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["cp1", "mine"]);
}

/// Every entry under `root`, with each file's bytes and each link's target, to compare a
/// directory before and after a refused run.
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("readable") {
            let path = entry.expect("readable").path();
            let name = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let metadata = std::fs::symlink_metadata(&path).expect("readable");
            if metadata.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("link");
                out.push((name, format!("-> {}", target.display()).into_bytes()));
            } else if metadata.is_dir() {
                out.push((name, b"dir".to_vec()));
                walk(root, &path, out);
            } else {
                out.push((name, std::fs::read(&path).expect("readable")));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn output_dir_refuses_to_replace_what_kflex_did_not_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("rendered");
    stdout(kflex().args(["render", "cp1", "--output-dir"]).arg(&out));
    // A user's folder that happens to have a control plane's name, a file, and a link.
    std::fs::create_dir(out.join("photos")).expect("created");
    std::fs::write(out.join("photos/cat.jpg"), "meow").expect("written");
    std::fs::write(out.join("notes"), "mine").expect("written");
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path(), out.join("link")).expect("linked");
    let before = tree(&out);
    let mut cases = vec![
        ("photos", "is a directory without kustomization.yaml"),
        ("notes", "is a file"),
    ];
    if cfg!(unix) {
        cases.push(("link", "is a symbolic link"));
    }
    for (name, what) in cases {
        let stderr = refused(
            kflex()
                .args(["render", "cp1", name, "--output-dir"])
                .arg(&out),
        );
        assert!(
            stderr.contains(&format!("{} {what}", out.join(name).display()))
                && stderr.contains("nothing was changed"),
            "{stderr}"
        );
        assert_eq!(tree(&out), before, "{name}: the directory is as it was");
    }
}

/// As root, permissions do not stop a rename; this test then says so and checks nothing.
#[cfg(unix)]
#[test]
fn an_empty_result_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hooks = write_hook(
        dir.path(),
        "{apiVersion: v1, kind: ConfigMap, metadata: {name: c}}",
    );
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "").expect("written");
    let comments = dir.path().join("comments.yaml");
    std::fs::write(
        &comments,
        "# nothing yet
---
# still nothing
",
    )
    .expect("written");
    let list = dir.path().join("list.yaml");
    std::fs::write(
        &list,
        "apiVersion: v1
kind: List
items: []
",
    )
    .expect("written");
    let files = [&empty, &comments, &list, Path::new(&hooks)];
    for file in files {
        for format in ["yaml", "json"] {
            let stderr = refused(kflex().args(["render", "-o", format, "-f"]).arg(file));
            assert!(
                stderr.contains("nothing rendered: the inputs hold no ControlPlane")
                    && stderr.contains("--allow-empty"),
                "{stderr}"
            );
            let printed = stdout(
                kflex()
                    .args(["render", "--allow-empty", "-o", format, "-f"])
                    .arg(file),
            );
            assert!(printed.is_empty(), "{printed}");
        }
    }
    let stderr = refused(kflex().args(["render", "-f", "-"]).write_stdin(""));
    assert!(stderr.contains("--allow-empty"), "{stderr}");
    // With --output-dir, an empty result would remove every set: refused, nothing changed.
    let out = dir.path().join("rendered");
    stdout(
        kflex()
            .args(["render", "cp1", "--system", "--output-dir"])
            .arg(&out),
    );
    std::fs::write(out.join("notes.txt"), "mine").expect("written");
    let before = tree(&out);
    let stderr = refused(
        kflex()
            .args(["render", "-f", &hooks, "--output-dir"])
            .arg(&out),
    );
    assert!(
        stderr.contains("would remove every set directory earlier runs wrote"),
        "{stderr}"
    );
    assert_eq!(tree(&out), before);
    // Allowed, the directory mirrors a run with nothing in it.
    stdout(
        kflex()
            .args(["render", "--allow-empty", "-f", &hooks, "--output-dir"])
            .arg(&out),
    );
    assert_eq!(tree(&out), [("notes.txt".to_owned(), b"mine".to_vec())]);
}

#[test]
fn a_fleet_file_of_more_than_a_thousand_control_planes_renders() {
    let text: String = (0..1_100)
        .map(|i| {
            format!(
                "---\napiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\n\
                 metadata:\n  name: cp{i:04}\nspec:\n  type: k8s\n"
            )
        })
        .collect();
    let out = stdout(kflex().args(["render", "-f", "-"]).write_stdin(text));
    assert_eq!(out.matches("\nkind: Namespace\n").count(), 1_100);
}

#[test]
fn parse_errors_name_line_and_column_but_never_show_the_input() {
    let marker = "SECRET-TOKEN-123";
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = format!(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\n\
         metadata: {{name: cp1, annotations: {{token: {marker}}}}}\nspec: {{type: k8s\n\
         other: {marker}\n"
    );
    let file = dir.path().join("cp.yaml");
    std::fs::write(&file, &broken).expect("written");
    let stderr = refused(kflex().args(["render", "-f"]).arg(&file));
    assert!(
        stderr.contains(&format!(
            "{}: not valid YAML or JSON: line ",
            file.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(marker), "{stderr}");
    let stderr = refused(
        kflex()
            .args(["render", "-f", "-"])
            .write_stdin(broken.clone()),
    );
    assert!(
        stderr.contains("<stdin>: not valid YAML or JSON: line "),
        "{stderr}"
    );
    assert!(!stderr.contains(marker), "{stderr}");
    let values = dir.path().join("values.yaml");
    for text in [
        format!("domain: [{marker}\nimages: {{}}\n"),
        format!("domain: {marker}\ndomain: {marker}\n"),
        format!("images: &a {{kine: {{tag: {marker}}}}}\nother: *b\n"),
    ] {
        std::fs::write(&values, text).expect("written");
        let stderr = refused(kflex().args(["render", "cp1", "--values"]).arg(&values));
        assert!(
            stderr.contains(&format!(
                "values file {}: not valid YAML or JSON: line ",
                values.display()
            )),
            "{stderr}"
        );
        assert!(!stderr.contains(marker), "{stderr}");
    }
}

#[test]
fn inputs_are_read_up_to_a_cap_that_flags_raise() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cp = std::fs::read_to_string(acceptance("cp-k8s.yaml")).expect("readable");
    let padded = format!("{cp}{}", "# padding\n".repeat(200));
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::fs::write(&a, &padded).expect("written");
    std::fs::write(&b, padded.replace("cp1", "cp2")).expect("written");
    let stderr = refused(
        kflex()
            .args(["render", "--max-input-bytes", "1Ki", "-f"])
            .arg(&a),
    );
    assert!(
        stderr.contains(
            "larger than 1 KiB, the most kflex reads of one input (raise it with --max-input-bytes)"
        ),
        "{stderr}"
    );
    let stderr = refused(
        kflex()
            .args(["render", "--max-total-input-bytes", "3Ki", "-f"])
            .arg(&a)
            .arg("-f")
            .arg(&b),
    );
    assert!(
        stderr.contains(&format!(
            "{}: reading it would take kflex's inputs past 3 KiB",
            b.display()
        )) && stderr.contains("--max-total-input-bytes"),
        "{stderr}"
    );
    let out = stdout(
        kflex()
            .args(["render", "--max-total-input-bytes", "5Ki", "-f"])
            .arg(&a)
            .arg("-f")
            .arg(&b),
    );
    assert!(out.contains("name: cp2-system"));
    let output = kflex()
        .args(["render", "cp1", "--max-input-bytes", "64MB"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2), "a usage error");
}

#[test]
fn output_dir_json_files_are_named_like_the_yaml_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("rendered");
    stdout(
        kflex()
            .args(["render", "cp1", "-o", "json", "--output-dir"])
            .arg(&out),
    );
    let text =
        std::fs::read_to_string(out.join("cp1/deployment.apps_cp1-system_kube-apiserver.json"))
            .expect("file per object");
    let object: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(object["kind"], "Deployment");
}

#[test]
fn template_overrides_replace_files_and_errors_name_template_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("k8s")).expect("created");
    std::fs::write(
        dir.path().join("k8s/extra.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: {{ cp.namespace }}\ndata:\n  owner: {{ cp.name }}\n",
    )
    .expect("written");
    std::fs::create_dir(dir.path().join("controlplane")).expect("created");
    std::fs::write(dir.path().join("controlplane/exposure.yaml"), "").expect("written");
    let out = stdout(
        kflex()
            .args(["render", "cp1", "--templates"])
            .arg(dir.path()),
    );
    let objects = objects(&out);
    assert_eq!(find(&objects, "ConfigMap", "extra")["data"]["owner"], "cp1");
    assert!(
        !out.contains("kind: Ingress"),
        "an empty override removes the objects"
    );
    std::fs::write(
        dir.path().join("k8s/extra.yaml"),
        "a: 1\nb: {{ cp.nmae }}\n",
    )
    .expect("written");
    let stderr = refused(
        kflex()
            .args(["render", "cp1", "--templates"])
            .arg(dir.path()),
    );
    assert!(
        stderr.contains("template k8s/extra.yaml: line 2"),
        "{stderr}"
    );
}

#[test]
fn crds_command_prints_exactly_the_crds_of_the_system_manifests() {
    let crds = objects(&stdout(kflex().arg("crds")));
    let system = objects(&stdout(kflex().args(["render", "--system"])));
    let from_system: Vec<&Value> = system
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.iter().collect::<Vec<_>>(), from_system);
    assert_eq!(crds.len(), 2);
}

#[test]
fn help_shows_examples_and_setting_precedence() {
    let help = stdout(kflex().args(["render", "--help"]));
    assert!(help.contains("kflex render cp1"));
    assert!(help.contains("defaults < --values < KFLEX_* environment < --set < flags"));
}

#[test]
fn a_hook_cannot_create_a_system_namespace() {
    let stderr = hook_refusal("{apiVersion: v1, kind: Namespace, metadata: {name: kube-system}}");
    assert!(
        stderr.contains(
            "Namespace kube-system (from PostCreateHook h, templates[0]), field metadata.name"
        ),
        "{stderr}"
    );
}

#[test]
fn privileged_hook_pods_need_an_explicit_opt_in() {
    let pod = "{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {hostPID: true, containers: [{name: c, image: busybox}]}}";
    let stderr = hook_refusal(pod);
    assert!(
        stderr.contains("field spec.hostPID") && stderr.contains("allowPrivilegedHooks"),
        "{stderr}"
    );
    let output = render_with_hook(pod, &["--set", "allowPrivilegedHooks=true"]);
    assert!(output.status.success());
    let objects = objects(&String::from_utf8(output.stdout).expect("UTF-8"));
    let namespace = find(&objects, "Namespace", "a-system");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
}

#[test]
fn reserved_names_are_refused_before_anything_is_rendered() {
    let stderr = refused(kflex().args(["render", "kubeflex"]));
    assert!(
        stderr.contains("metadata.name") && stderr.contains("kubeflex-system"),
        "{stderr}"
    );
    let stderr = refused(kflex().args(["render", "postgres"]));
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
}

#[test]
fn names_on_the_command_line_are_refused_before_anything_runs() {
    for name in ["a\nb", "../cp1", "cp1/status", "CP1", "\u{1b}[2Jx"] {
        for args in [
            vec!["delete", name],
            vec!["diff", name],
            vec!["render", name],
        ] {
            let output = kflex()
                .args(&args)
                .env("KUBECONFIG", "/nonexistent")
                .output()
                .expect("runs");
            assert!(!output.status.success(), "{args:?}");
            assert!(output.stdout.is_empty(), "{args:?}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("DNS-1035"), "{args:?}: {stderr}");
            if args[0] == "render" {
                // kflex's own messages escape what they quote (clap echoes argv as typed).
                assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
                assert_eq!(stderr.lines().count(), 2, "{stderr:?}");
            }
        }
    }
    let output = kflex()
        .args(["create", "cp1", "-p", "Hook/x"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DNS-1123 subdomain"));
}

#[test]
fn an_object_shared_with_the_system_manifests_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hook = write_hook(
        dir.path(),
        "{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: kubeflex-controller-manager}}",
    );
    let cp = write_control_plane(dir.path(), "a");
    // Refused whether or not the system manifests are rendered in the same run: the hook
    // would replace kflex's own ClusterRole in the cluster either way.
    for system in [true, false] {
        let mut command = kflex();
        command.args(["render", "-f", &cp, "-f", &hook]);
        if system {
            command.arg("--system");
        }
        let stderr = refused(&mut command);
        assert!(
            stderr.contains("ClusterRole kubeflex-controller-manager (from PostCreateHook h, templates[0]), field metadata.name: kflex's own system manifests render this object"),
            "{stderr}"
        );
    }
}

#[test]
fn a_control_plane_named_system_cannot_overwrite_the_system_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stderr = refused(
        kflex()
            .args(["render", "--system", "system", "--output-dir"])
            .arg(dir.path().join("out")),
    );
    assert!(stderr.contains("would both be written to"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing is written");
}

#[cfg(unix)]
#[test]
fn a_symlink_cycle_in_an_input_directory_is_not_followed() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(acceptance("cp-k8s.yaml"), dir.path().join("a.yaml")).expect("copied");
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).expect("symlink");
    let out = stdout(kflex().args(["render", "-R", "-f"]).arg(dir.path()));
    assert!(out.contains("cp1-system"));
}

#[test]
fn hook_secret_data_is_rendered_with_a_warning() {
    let output = render_with_hook(
        "{apiVersion: v1, kind: Secret, metadata: {name: s}, stringData: {token: abc}}",
        &[],
    );
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("Secret a-system/s (from PostCreateHook h, templates[0]) holds secret data"),
        "{stderr}"
    );
}

#[test]
fn a_second_host_control_plane_is_refused() {
    assert!(stdout(kflex().args(["render", "one", "--type", "host"])).contains("kflex-host-one"));
    let stderr = refused(kflex().args(["render", "one", "two", "--type", "host"]));
    assert!(
        stderr.contains(
            "ControlPlanes \"one\" and \"two\" are both of type host; a hosting cluster has one \
             host control plane"
        ),
        "{stderr}"
    );
}

/// An external control plane whose bootstrap Secret is `<name>-bootstrap` in `secret_namespace`.
fn write_external(dir: &Path, name: &str, secret_namespace: &str, expiration: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    let secret = format!("{name}-bootstrap");
    std::fs::write(
        &path,
        format!(
            "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\n\
             metadata: {{name: {name}}}\nspec:\n  type: external\n  {expiration}\n  \
             bootstrapSecretRef: {{name: {secret}, namespace: {secret_namespace}, inClusterKey: kc}}\n"
        ),
    )
    .expect("written");
    path.to_str().expect("UTF-8").to_owned()
}

#[test]
fn an_external_bootstrap_secret_is_read_only_from_kflex_namespaces() {
    let dir = tempfile::tempdir().expect("temp dir");
    let elsewhere = write_external(dir.path(), "ext", "team-a", "");
    let stderr = refused(kflex().args(["render", "-f", &elsewhere]));
    assert!(
        stderr.contains("spec.bootstrapSecretRef.namespace")
            && stderr.contains("only from kubeflex-system or ext-system, got \"team-a\""),
        "{stderr}"
    );

    // In kubeflex-system: a Role there grants reading that one Secret.
    let system = write_external(dir.path(), "ext", "kubeflex-system", "");
    let in_system = objects(&stdout(kflex().args(["render", "-f", &system])));
    let role = find(&in_system, "Role", "kflex-adopt-ext");
    assert_eq!(role["metadata"]["namespace"], "kubeflex-system");
    assert_eq!(role["rules"][0]["resourceNames"][0], "ext-bootstrap");
    assert_eq!(role["rules"][0]["verbs"][0], "get");

    // In its own namespace: its own Role grants it, nothing is rendered in kubeflex-system.
    let home = write_external(dir.path(), "ext", "ext-system", "");
    let in_home = objects(&stdout(kflex().args(["render", "-f", &home])));
    assert!(
        in_home
            .iter()
            .all(|o| o["metadata"]["namespace"] != "kubeflex-system"),
        "nothing outside ext-system"
    );
    let rules = find(&in_home, "Role", "kflex-adopt")["rules"]
        .as_array()
        .expect("rules")
        .clone();
    assert!(
        rules
            .iter()
            .any(|r| r["resourceNames"][0] == "ext-bootstrap")
    );
}

#[test]
fn tokens_are_renewed_twice_within_the_last_third_of_their_lifetime() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (expiration, schedule, flag) in [
        (
            "tokenExpirationSeconds: 600",
            "*/1 * * * *",
            "--token-expiration=600s",
        ),
        (
            "tokenExpirationSeconds: 3600",
            "*/10 * * * *",
            "--token-expiration=3600s",
        ),
        (
            "tokenExpirationSeconds: 86400",
            "45 * * * *",
            "--token-expiration=86400s",
        ),
        // ext's own time of day (the renderer's spread of names).
        ("", "45 0 * * *", "--token-expiration=31536000s"),
    ] {
        let cp = write_external(dir.path(), "ext", "kubeflex-system", expiration);
        let rendered = objects(&stdout(kflex().args(["render", "-f", &cp])));
        let cron = find(&rendered, "CronJob", "kflex-adopt-renew");
        assert_eq!(cron["spec"]["schedule"], schedule, "{expiration}");
        let args =
            &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"];
        assert!(
            args.as_array().expect("args").iter().any(|a| a == flag),
            "{expiration}: {args}"
        );
    }
}

#[test]
fn control_plane_volumes_are_configurable() {
    let claim = |yaml: &str, name: &str| {
        find(&objects(yaml), "StatefulSet", name)["spec"]["volumeClaimTemplates"][0]["spec"].clone()
    };
    let k3s = stdout(kflex().args(["render", "edge", "--type", "k3s"]));
    let default = claim(&k3s, "k3s-server");
    assert!(
        default.get("storageClassName").is_none(),
        "the cluster's default StorageClass unless one is set"
    );
    assert_eq!(default["resources"]["requests"]["storage"], "10Gi");
    let k3s = stdout(kflex().args([
        "render",
        "edge",
        "--type",
        "k3s",
        "--set",
        "k3s.storageClassName=local-path",
        "--set",
        "k3s.storageSize=20Gi",
    ]));
    let set = claim(&k3s, "k3s-server");
    assert_eq!(set["storageClassName"], "local-path");
    assert_eq!(set["resources"]["requests"]["storage"], "20Gi");
    let vcluster = stdout(kflex().args([
        "render",
        "vc",
        "--type",
        "vcluster",
        "--set",
        "vcluster.storageClassName=fast",
    ]));
    assert_eq!(claim(&vcluster, "vcluster")["storageClassName"], "fast");
}

#[test]
fn routes_name_their_host_so_certificates_can_too() {
    for (type_, service) in [("k8s", "cp1"), ("k3s", "k3s"), ("vcluster", "vcluster")] {
        let out = stdout(kflex().args([
            "render",
            "cp1",
            "--type",
            type_,
            "--openshift",
            "--domain",
            "apps.example.com",
        ]));
        let rendered = objects(&out);
        let route = find(&rendered, "Route", "cp1");
        assert_eq!(route["spec"]["host"], "cp1.apps.example.com", "{type_}");
        assert_eq!(route["spec"]["to"]["name"], service, "{type_}");
        assert_eq!(route["spec"]["tls"]["termination"], "passthrough");
    }
    for type_ in ["host", "external"] {
        let out = stdout(kflex().args(["render", "-f", &acceptance(&format!("cp-{type_}.yaml"))]));
        assert!(!out.contains("kind: Ingress"), "{type_} serves no API");
    }
}

/// vCluster's configuration as the Secret holds it, and the rendered objects.
fn vcluster_config(args: &[&str]) -> (Value, Vec<Value>) {
    let rendered = objects(&stdout(
        kflex()
            .args(["render", "vc1", "--type", "vcluster"])
            .args(args),
    ));
    let secret = find(&rendered, "Secret", "vc-config-vcluster");
    assert!(secret.get("data").is_none(), "readable stringData only");
    let text = secret["stringData"]["config.yaml"].as_str().expect("text");
    let config = serde_saphyr::from_str(text).expect("YAML");
    (config, rendered)
}

#[test]
fn vcluster_configuration_is_complete_and_carries_kubeflex_intent() {
    let (config, rendered) =
        vcluster_config(&["--domain", "kflex.example.com", "--external-port", "443"]);
    // vCluster reads the file strictly and fills in almost nothing: the whole tree is there.
    let top: Vec<&str> = config
        .as_object()
        .expect("mapping")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        top,
        [
            "controlPlane",
            "deploy",
            "experimental",
            "exportKubeConfig",
            "integrations",
            "logging",
            "networking",
            "plugins",
            "policies",
            "privateNodes",
            "rbac",
            "sync",
            "telemetry"
        ]
    );
    assert_eq!(config["controlPlane"]["proxy"]["port"], 8443);
    assert_eq!(config["sync"]["toHost"]["pods"]["enabled"], true);
    assert_eq!(config["experimental"]["syncSettings"]["setOwner"], true);
    // KubeFlex's intent: extra SANs, the exported server, and the names KubeFlex's CLI renames.
    assert_eq!(
        config["controlPlane"]["proxy"]["extraSANs"],
        serde_json::json!(["vc1.kflex.example.com", "kubeflex-control-plane"])
    );
    assert_eq!(
        config["exportKubeConfig"]["server"],
        "https://vc1.kflex.example.com:443"
    );
    assert_eq!(config["exportKubeConfig"]["context"], "my-vcluster");
    assert_eq!(config["telemetry"]["enabled"], false);

    // The configuration describes the pod kflex renders, not the chart's default one.
    let sts = find(&rendered, "StatefulSet", "vcluster");
    let pod = &sts["spec"]["template"]["spec"];
    let statefulset = &config["controlPlane"]["statefulSet"];
    let image = &statefulset["image"];
    assert_eq!(
        pod["containers"][0]["image"],
        format!(
            "{}/{}:{}",
            image["registry"].as_str().expect("registry"),
            image["repository"].as_str().expect("repository"),
            image["tag"].as_str().expect("tag")
        )
    );
    assert_eq!(
        pod["containers"][0]["image"],
        "ghcr.io/loft-sh/vcluster-oss:0.36.1"
    );
    let k8s = &config["controlPlane"]["distro"]["k8s"];
    assert_eq!(
        pod["initContainers"][0]["image"],
        format!(
            "{}/{}:{}",
            k8s["image"]["registry"].as_str().expect("registry"),
            k8s["image"]["repository"].as_str().expect("repository"),
            k8s["image"]["tag"].as_str().expect("tag")
        )
    );
    assert_eq!(
        pod["securityContext"],
        statefulset["security"]["podSecurityContext"]
    );
    assert_eq!(
        pod["containers"][0]["securityContext"],
        statefulset["security"]["containerSecurityContext"]
    );
    assert_eq!(
        pod["initContainers"][0]["securityContext"],
        k8s["securityContext"]
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        statefulset["persistence"]["volumeClaim"]["size"]
    );
    assert_eq!(
        find(&rendered, "Service", "vcluster")["spec"]["type"],
        config["controlPlane"]["service"]["spec"]["type"]
    );
}

#[test]
fn vcluster_pods_roll_when_its_configuration_changes() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = |args: &[&str]| {
        let rendered = objects(&stdout(
            kflex()
                .args(["render", "vc1", "--type", "vcluster"])
                .args(args),
        ));
        // The API server stores stringData base64-encoded in data: that text is hashed.
        let encoded = base64::engine::general_purpose::STANDARD.encode(
            find(&rendered, "Secret", "vc-config-vcluster")["stringData"]["config.yaml"]
                .as_str()
                .expect("text"),
        );
        let annotations = &find(&rendered, "StatefulSet", "vcluster")["spec"]["template"]["metadata"]
            ["annotations"];
        // vCluster's own formula: sha256 of the base64 text.
        let expected: String = sha2::Sha256::digest(encoded.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(annotations["vClusterConfigHash"], expected.as_str());
        assert!(annotations["kflex.kubestellar.org/config-hash"].is_string());
        expected
    };
    let default = hash(&[]);
    assert_eq!(default, hash(&[]), "the same input gives the same hash");
    assert_ne!(default, hash(&["--domain", "other.example.com"]));
}

#[test]
fn vcluster_follows_the_control_plane_kubernetes_version_and_the_mirror() {
    let (config, rendered) = vcluster_config(&["--image-registry", "mirror.example.com/hub"]);
    let pod = &find(&rendered, "StatefulSet", "vcluster")["spec"]["template"]["spec"];
    assert_eq!(
        pod["initContainers"][0]["image"],
        "mirror.example.com/hub/loft-sh/kubernetes:v1.36.0"
    );
    assert_eq!(
        config["controlPlane"]["advanced"]["defaultImageRegistry"],
        "mirror.example.com/hub"
    );
    assert_eq!(
        config["controlPlane"]["distro"]["k8s"]["image"]["registry"],
        "mirror.example.com"
    );
    assert_eq!(
        config["controlPlane"]["distro"]["k8s"]["image"]["repository"],
        "hub/loft-sh/kubernetes"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("vc.yaml");
    std::fs::write(
        &path,
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\n\
         metadata: {name: vc2}\nspec: {type: vcluster, kubernetesVersion: v1.35.9}\n",
    )
    .expect("written");
    let rendered = objects(&stdout(kflex().args(["render", "-f"]).arg(&path)));
    let pod = &find(&rendered, "StatefulSet", "vcluster")["spec"]["template"]["spec"];
    assert_eq!(
        pod["initContainers"][0]["image"],
        "ghcr.io/loft-sh/kubernetes:v1.35.9"
    );
}

/// The bad inputs of high availability and datastores: each refused with the object (its name
/// and where it was read), the field and the reason, and nothing on stdout.
#[test]
fn bad_replicas_and_backends_are_refused_with_object_field_and_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, spec, field, says) in [
        (
            "zero",
            "{type: k8s, replicas: 0}",
            "spec.replicas",
            "must be at least 1, got 0",
        ),
        (
            "edge",
            "{type: k3s, replicas: 2}",
            "spec.replicas",
            "type k3s cannot run 2 API servers: k3s keeps its data in an embedded store",
        ),
        (
            "vc",
            "{type: vcluster, backend: dedicated}",
            "spec.backend",
            "dedicated is for type k8s",
        ),
        (
            "hosted",
            "{type: host, replicas: 3}",
            "spec.replicas",
            "it runs no API server of its own",
        ),
    ] {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\n\
                 metadata: {{name: {name}}}\nspec: {spec}\n"
            ),
        )
        .expect("written");
        let stderr = refused(kflex().arg("render").arg("-f").arg(&file));
        assert!(
            stderr.contains(&format!("ControlPlane \"{name}\" ({}", file.display())),
            "{name}: the object and where it was read: {stderr}"
        );
        assert!(
            stderr.contains(&format!("{field}: ")) && stderr.contains(says),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn an_external_datastore_needs_its_secret() {
    let stderr = refused(kflex().args(["render", "--system", "--set", "postgres.mode=external"]));
    assert!(
        stderr.contains("setting postgres.external.secretName")
            && stderr.contains("is required with postgres.mode external"),
        "{stderr}"
    );
    let stderr = refused(kflex().args(["render", "cp1", "--set", "postgres.mode=External"]));
    assert!(
        stderr.contains("setting postgres.mode (from --set)")
            && stderr.contains("inCluster")
            && stderr.contains("external"),
        "{stderr}"
    );
    // From the environment, as the Argo CD plugin and the controller's ConfigMap give it.
    let rendered = stdout(
        kflex()
            .args(["render", "cp1"])
            .env("KFLEX_POSTGRES_MODE", "external")
            .env("KFLEX_POSTGRES_EXTERNAL_SECRET_NAME", "pg-admin"),
    );
    assert!(rendered.contains("secretName: pg-admin"), "{rendered}");
}

/// Bad backups and restores are refused with the object, the field and the reason, exit 1 and
/// nothing on stdout.
#[test]
fn bad_backups_and_restores_name_object_field_and_reason() {
    let cp = |name: &str, spec: &str| {
        format!(
            "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\n\
             metadata:\n  name: {name}\nspec:\n{spec}"
        )
    };
    for (input, field, reason) in [
        (
            cp(
                "cp1",
                "  type: k8s\n  backup:\n    schedule: \"61 3 * * *\"\n",
            ),
            "spec.backup.schedule",
            "the minute field \"61\"",
        ),
        (
            cp(
                "cp1",
                "  type: k8s\n  backup:\n    schedule: \"every day\"\n",
            ),
            "spec.backup.schedule",
            "needs five fields",
        ),
        (
            cp(
                "cp1",
                "  type: k8s\n  backup:\n    schedule: \"@daily\"\n    storage: tape\n",
            ),
            "spec.backup.storage",
            "no backup storage named \"tape\"; the setting backup.storage has local",
        ),
        (
            cp(
                "cp1",
                "  type: k8s\n  restoreFrom:\n    controlPlane: cp1\n    backup: b1\n    storage: tape\n",
            ),
            "spec.restoreFrom.storage",
            "no backup storage named \"tape\"",
        ),
        (
            cp("h", "  type: host\n  backup:\n    schedule: \"@daily\"\n"),
            "spec.backup",
            "type host has no datastore of kflex's",
        ),
        (
            cp(
                "ext",
                "  type: external\n  bootstrapSecretRef:\n    name: ext-bootstrap\n    \
                 namespace: kubeflex-system\n    inClusterKey: kubeconfig\n  backup:\n    \
                 schedule: \"@daily\"\n",
            ),
            "spec.backup",
            "type external has no datastore of kflex's",
        ),
        (
            cp(
                "vc",
                "  type: vcluster\n  backup:\n    schedule: \"@daily\"\n",
            ),
            "spec.backup",
            "does not back up or restore yet",
        ),
        (
            cp(
                "staging",
                "  type: k8s\n  restoreFrom:\n    controlPlane: prod\n    backup: b1\n",
            ),
            "spec.restoreFrom.controlPlane",
            "backup.allowedRestores (prod:staging)",
        ),
        (
            format!(
                "{}---\n{}",
                cp("edge", "  type: k3s\n"),
                cp(
                    "cp2",
                    "  type: k8s\n  restoreFrom:\n    controlPlane: edge\n    backup: b1\n"
                )
            ),
            "spec.restoreFrom.controlPlane",
            "ControlPlane \"edge\" is of type k3s",
        ),
    ] {
        let mut command = kflex();
        command
            .args([
                "render",
                "-f",
                "-",
                "--set",
                "backup.allowedRestores=edge:cp2",
            ])
            .write_stdin(input.clone());
        let message = refused(&mut command);
        let name = input
            .lines()
            .rfind(|l| l.starts_with("  name: "))
            .map(|l| l.trim_start_matches("  name: "))
            .unwrap_or_default()
            .to_owned();
        let object = if field == "spec.restoreFrom.controlPlane" && reason.contains("edge") {
            "cp2".to_owned()
        } else {
            name
        };
        assert!(
            message.contains(&format!("ControlPlane {object:?}"))
                && message.contains(field)
                && message.contains(reason),
            "{input}\n{message}"
        );
    }
}

#[test]
fn printing_commands_end_quietly_when_the_reader_goes_away() {
    let dir = tempfile::tempdir().expect("test setup");
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n\
         current-context: a\n",
    )
    .expect("test setup");
    for args in [
        &["render", "cp1"][..],
        &["render", "--system", "-o", "json"][..],
        &["crds"][..],
        &["completion", "bash"][..],
        &["version", "--client"][..],
        &["ctx", "get"][..],
        &["ctx", "list", "-o", "json"][..],
    ] {
        // `kflex … | head` once head has exited: the pipe has no reader.
        let (reader, writer) = std::io::pipe().expect("test setup");
        drop(reader);
        let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("kflex"))
            .env_clear()
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .stdout(writer)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// What README and examples/argocd/README.md say of the built-in database hook: its objects are
/// the control plane's (its waves, no hook annotation), its Job before the API server that needs
/// the Secret it writes; a hook of the user's comes after the control plane.
#[test]
fn the_built_in_database_hook_is_in_the_control_planes_waves() {
    let rendered = objects(&stdout(kflex().args(["render", "cp1"])));
    let wave = |object: &Value| {
        object["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .expect("a wave")
            .to_owned()
    };
    let job = find(&rendered, "Job", "db-cp1");
    assert_eq!(job["metadata"]["namespace"], "kubeflex-system");
    assert_eq!(wave(job), "3");
    assert_eq!(wave(find(&rendered, "Deployment", "kube-apiserver")), "4");
    for (kind, name) in [
        ("Job", "db-cp1"),
        ("ServiceAccount", "db-cp1"),
        ("Role", "kflex-database"),
        ("RoleBinding", "kflex-database"),
    ] {
        let annotations = &find(&rendered, kind, name)["metadata"]["annotations"];
        assert!(
            annotations["kflex.kubestellar.org/post-create-hook"].is_null(),
            "{kind} {name}: {annotations}"
        );
    }
    let dir = tempfile::tempdir().expect("test setup");
    let hooks = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/argocd/tenants/hooks/tenant-namespaces.yaml");
    let cp = dir.path().join("cp.yaml");
    std::fs::write(
        &cp,
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata: {name: cp1}\nspec: {type: k8s, postCreateHooks: [{hookName: tenant-namespaces}]}\n",
    )
    .expect("test setup");
    let rendered = objects(&stdout(
        kflex()
            .args(["render", "-f"])
            .arg(&cp)
            .arg("-f")
            .arg(&hooks),
    ));
    let job = find(&rendered, "Job", "tenant-namespaces");
    assert_eq!(
        job["metadata"]["annotations"]["kflex.kubestellar.org/post-create-hook"],
        "tenant-namespaces"
    );
    assert_eq!(wave(job), "13");
}
