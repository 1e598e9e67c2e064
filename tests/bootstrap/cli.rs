//! The `kflex bootstrap` programs as the rendered Jobs run them: the binary, its flags, its
//! exit status and what it prints (never a secret).

use std::collections::BTreeMap;
use std::process::Output;

use crate::support::postgres::Postgres;
use assert_cmd::Command;
use kflex::bootstrap::database::{self, Target};
use kflex::bootstrap::secrets::MemorySecrets;

fn kflex(args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("kflex").expect("binary built");
    cmd.env_clear().args(args);
    cmd
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes the files the database Job mounts: the admin password and the CA.
fn mounted(pg: &Postgres) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let password = dir.path().join("password");
    std::fs::write(&password, &pg.admin_password).expect("written");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &pg.ca_pem).expect("written");
    let path = |p: std::path::PathBuf| p.to_str().expect("UTF-8").to_owned();
    (dir, path(password), path(ca))
}

fn database_args<'a>(pg_port: &'a str, password: &'a str, ca: &'a str) -> Vec<&'a str> {
    vec![
        "bootstrap",
        "database",
        "--control-plane=cp-1",
        "--host=localhost",
        "--port",
        pg_port,
        "--admin-user=postgres",
        "--admin-password-file",
        password,
        "--ca-file",
        ca,
        "--database=cp_1",
        "--role=cp_1",
        "--secret-namespace=cp-1-system",
        "--secret=kine-datastore",
    ]
}

async fn role_exists(pg: &Postgres) -> bool {
    let (server, admin) = (pg.server(), pg.admin());
    let client = database::connect(&server, &admin, "postgres")
        .await
        .expect("admin connects");
    client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = 'cp_1'", &[])
        .await
        .expect("query")
        .is_some()
}

#[tokio::test]
async fn the_database_program_drops_what_it_made() {
    crate::within(async move {
    let pg = Postgres::start();
    let (server, admin) = (pg.server(), pg.admin());
    let target = Target {
        database: "cp_1".into(),
        role: "cp_1".into(),
    };
    database::ensure(
        &server,
        &admin,
        &target,
        &MemorySecrets::new("cp-1-system"),
        "kine-datastore",
        &BTreeMap::new(),
    )
    .await
    .expect("made");
    let (_dir, password, ca) = mounted(&pg);
    let port = pg.port.to_string();
    let mut args = database_args(&port, &password, &ca);
    args.push("--drop");
    let output = kflex(&args).output().expect("runs");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "database \"cp_1\" on localhost:{port}: dropped\nrole \"cp_1\" on localhost:{port}: \
             dropped\n"
        )
    );
    assert!(!role_exists(&pg).await);
    assert!(output.stdout.is_empty());
    })
    .await;
}

#[tokio::test]
async fn without_the_kubernetes_api_nothing_is_changed_and_no_secret_is_printed() {
    crate::within(async move {
    let pg = Postgres::start();
    let (dir, password, ca) = mounted(&pg);
    // A kubeconfig whose API server is not there.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:9\n\
         contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .expect("written");
    let port = pg.port.to_string();
    let output = kflex(&database_args(&port, &password, &ca))
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.starts_with("error: ") && text.contains("Secret cp-1-system/kine-datastore"),
        "{text}"
    );
    assert!(
        !text.contains(&pg.admin_password),
        "the admin password must never be printed"
    );
    assert!(
        !role_exists(&pg).await,
        "the Secret is read before anything is created"
    );
    })
    .await;
}

/// An existing server's Secret, mounted as the external database Job mounts it: one file per
/// key, behind the kubelet's `..data` link.
fn mounted_secret(pg: &Postgres, password: &str, ca: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir(&data).expect("created");
    let port = pg.port.to_string();
    for (key, value) in [
        ("host", b"localhost".as_slice()),
        ("port", port.as_bytes()),
        ("username", b"postgres".as_slice()),
        ("password", password.as_bytes()),
        ("ca.crt", ca),
    ] {
        std::fs::write(data.join(key), value).expect("written");
    }
    std::os::unix::fs::symlink(&data, dir.path().join("..data")).expect("linked");
    for key in ["host", "port", "username", "password", "ca.crt"] {
        std::os::unix::fs::symlink(format!("..data/{key}"), dir.path().join(key)).expect("linked");
    }
    dir
}

fn server_dir_args(dir: &std::path::Path) -> Vec<String> {
    [
        "bootstrap",
        "database",
        "--drop",
        "--control-plane=cp-1",
        "--database=cp_1",
        "--role=cp_1",
        "--secret-namespace=cp-1-system",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([format!("--server-dir={}", dir.display())])
    .collect()
}

#[tokio::test]
async fn an_existing_server_is_read_from_its_mounted_secret() {
    crate::within(async move {
        let pg = Postgres::start();
        let dir = mounted_secret(&pg, &pg.admin_password, &pg.ca_pem);
        let args = server_dir_args(dir.path());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = kflex(&args).output().expect("runs");
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stderr(&output).contains(&format!(
                "role \"cp_1\" on localhost:{}: already absent",
                pg.port
            )),
            "{}",
            stderr(&output)
        );
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_or_an_unverifiable_server_is_named_never_the_password() {
    crate::within(async move {
        let pg = Postgres::start();
        let wrong = "wrong-password-that-must-not-show";
        let dir = mounted_secret(&pg, wrong, &pg.ca_pem);
        let args = server_dir_args(dir.path());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = kflex(&args).output().expect("runs");
        assert_eq!(output.status.code(), Some(1));
        let text = stderr(&output);
        assert!(
            text.contains(&format!(
                "password authentication failed for user \"postgres\" at PostgreSQL localhost:{}",
                pg.port
            )),
            "{text}"
        );
        assert!(
            !text.contains(wrong) && !text.contains(&pg.admin_password),
            "{text}"
        );

        let other = kflex::bootstrap::pki::Authority::generate(
            "other",
            time::OffsetDateTime::now_utc(),
            std::time::Duration::from_secs(3600),
        )
        .expect("CA");
        let dir = mounted_secret(&pg, &pg.admin_password, other.cert_pem.as_bytes());
        let args = server_dir_args(dir.path());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = kflex(&args).output().expect("runs");
        assert_eq!(output.status.code(), Some(1));
        let text = stderr(&output);
        assert!(
            text.contains(&format!(
                "connecting to PostgreSQL localhost:{} (verify-full)",
                pg.port
            )) && text.contains("certificate"),
            "{text}"
        );
        assert!(!text.contains(&pg.admin_password), "{text}");
    })
    .await;
}

#[test]
fn a_server_dir_excludes_the_server_flags() {
    let output = kflex(&[
        "bootstrap",
        "database",
        "--control-plane=cp-1",
        "--server-dir=/var/run/secrets/kflex/postgres",
        "--host=db",
        "--database=cp_1",
        "--role=cp_1",
        "--secret-namespace=cp-1-system",
    ])
    .output()
    .expect("runs");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = kflex(&[
        "bootstrap",
        "database",
        "--control-plane=cp-1",
        "--database=cp_1",
        "--role=cp_1",
        "--secret-namespace=cp-1-system",
    ])
    .output()
    .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(2),
        "neither a server nor a directory"
    );
}

#[test]
fn a_missing_password_file_is_named() {
    let output = kflex(&database_args(
        "5432",
        "/nonexistent/password",
        "/nonexistent/ca.crt",
    ))
    .output()
    .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("reading /nonexistent/password"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn flags_that_do_not_fit_together_are_refused_before_anything_runs() {
    // Two sources at once.
    let output = kflex(&[
        "bootstrap",
        "publish-kubeconfig",
        "--namespace=x",
        "--secret=s",
        "--kubeconfig-file=/k",
        "--from-secret=v",
        "--from-key=config",
        "--in-cluster-key=c",
        "--in-cluster-server=https://x",
    ])
    .output()
    .expect("runs");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    // A duration that is not one.
    let output = kflex(&[
        "bootstrap",
        "pki",
        "--namespace=x",
        "--dns-name=a",
        "--leaf-validity=1y",
    ])
    .output()
    .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not a duration like 8760h"),
        "{}",
        stderr(&output)
    );
}

/// Runs `kflex ARGS` with `$KUBECONFIG`, off the runtime serving a fake API.
async fn kflex_with(kubeconfig: &std::path::Path, args: &[&str]) -> Output {
    let mut command = kflex(args);
    command
        .env("KUBECONFIG", kubeconfig)
        .timeout(std::time::Duration::from_secs(60));
    tokio::task::spawn_blocking(move || command.output().expect("runs"))
        .await
        .expect("ran")
}

/// A kubeconfig the programs read — their own, the bootstrap Secret's, the one a server wrote —
/// holds tokens and keys: when it does not parse, the error says where, never what is there.
#[tokio::test]
async fn a_broken_kubeconfig_is_located_but_never_shown() {
    crate::within(async move {
    use base64::Engine as _;
    let marker = "SECRET-TOKEN-123";
    let broken = format!(
        "apiVersion: v1\nusers:\n- name: u\n  user:\n    token: {marker}\n    key: [{marker}\nx: {marker}\n"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let broken_file = dir.path().join("broken");
    std::fs::write(&broken_file, &broken).expect("written");
    let broken_path = broken_file.to_str().expect("UTF-8");
    let adopt = [
        "bootstrap",
        "adopt",
        "--control-plane=cp",
        "--bootstrap-namespace=cp-system",
        "--bootstrap-secret=bootstrap",
        "--namespace=cp-system",
    ];
    let publish_from_secret = [
        "bootstrap",
        "publish-kubeconfig",
        "--namespace=cp-system",
        "--secret=admin",
        "--from-secret=vc",
        "--from-key=config",
        "--in-cluster-key=incluster",
        "--in-cluster-server=https://cp.cp-system",
    ];
    let publish_from_file = [
        "bootstrap",
        "publish-kubeconfig",
        "--namespace=cp-system",
        "--secret=admin",
        &format!("--kubeconfig-file={broken_path}"),
        "--in-cluster-key=incluster",
        "--in-cluster-server=https://cp.cp-system",
    ];
    let check = |case: &str, output: &Output, location: &str| {
        let text = stderr(output);
        assert_eq!(output.status.code(), Some(1), "{case}: {text}");
        assert!(text.contains(location), "{case}: says where: {text}");
        assert!(!text.contains(marker), "{case}: {text}");
        assert!(output.stdout.is_empty(), "{case}");
    };

    // The program's own kubeconfig: nothing is reached.
    for args in [&adopt[..], &publish_from_secret[..]] {
        let output = kflex_with(&broken_file, args).await;
        check(
            args[1],
            &output,
            "the kubeconfig does not parse: line 7, column 2",
        );
    }

    // The kubeconfigs it reads from Secrets and files, with a fake API.
    let fake = kflex_testkit::FakeApi::new();
    let address = fake.serve_http().await.expect("serves");
    let config = dir.path().join("config");
    std::fs::write(&config, kflex_testkit::FakeApi::kubeconfig(address)).expect("written");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&broken);
    for (name, key) in [("bootstrap", "kubeconfig-incluster"), ("vc", "config")] {
        fake.put(
            "",
            "secrets",
            serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "cp-system"},
                "data": {key: encoded}}),
        );
    }
    let output = kflex_with(&config, &adopt).await;
    check(
        "adopt",
        &output,
        "Secret cp-system/bootstrap, key \"kubeconfig-incluster\"",
    );
    check(
        "adopt",
        &output,
        "the kubeconfig does not parse: line 7, column 2",
    );
    for args in [&publish_from_secret[..], &publish_from_file[..]] {
        let output = kflex_with(&config, args).await;
        check(
            "publish",
            &output,
            "the kubeconfig does not parse: line 7, column 2",
        );
    }
    })
    .await;
}
