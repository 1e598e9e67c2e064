//! Kubeconfig editing through the `kflex` binary (`ctx`, `config set-hosting`) on fixture files:
//! kubectl's `$KUBECONFIG` list rules, other tools' extensions kept, KubeFlex's format read,
//! atomic writes that keep permissions and symbolic links. No cluster is involved.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kubeconfig");

/// A temporary directory with copies of the fixtures.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("test setup");
        for name in ["main.yaml", "second.yaml"] {
            std::fs::copy(Path::new(FIXTURES).join(name), dir.path().join(name))
                .expect("test setup");
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `kflex` with `$KUBECONFIG` listing `files`, and no HOME (nothing else may be touched).
    fn kflex(&self, files: &[&str]) -> Command {
        let list = std::env::join_paths(files.iter().map(|f| self.path(f))).expect("test setup");
        let mut command = Command::cargo_bin("kflex").expect("test setup");
        command
            .env_clear()
            .env("KUBECONFIG", list)
            .current_dir(self.dir.path());
        command
    }

    fn read(&self, name: &str) -> Value {
        let text = std::fs::read_to_string(self.path(name)).expect("test setup");
        serde_saphyr::from_str(&text).expect("test setup")
    }

    fn bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("test setup")
    }
}

fn named<'a>(document: &'a Value, section: &str, name: &str) -> Option<&'a Value> {
    document[section]
        .as_array()?
        .iter()
        .find(|entry| entry["name"] == name)
}

fn kubeflex_data(owner: &Value) -> &Value {
    owner["extensions"]
        .as_array()
        .and_then(|list| list.iter().find(|e| e["name"] == "kubeflex"))
        .map_or(&Value::Null, |e| &e["extension"]["data"])
}

#[test]
fn ctx_list_merges_a_kubeconfig_list_like_kubectl() {
    let home = Home::new();
    let output = home
        .kflex(&["main.yaml", "second.yaml"])
        .args(["ctx", "list", "-o", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        rows,
        json!([
            {"name": "kind-kubeflex", "current": true, "managed": false, "hosting": true, "controlPlane": null},
            {"name": "cp1", "current": false, "managed": true, "hosting": false, "controlPlane": "cp1"},
            {"name": "staging", "current": false, "managed": false, "hosting": false, "controlPlane": null},
        ])
    );
    let table = home
        .kflex(&["main.yaml", "second.yaml"])
        .args(["ctx", "list"])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("* kind-kubeflex") && line.contains("hosting")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("  cp1") && line.trim_end().ends_with("cp1")),
        "{table}"
    );
}

#[test]
fn switching_writes_only_the_file_holding_the_current_context() {
    let home = Home::new();
    let second_before = home.bytes("second.yaml");
    home.kflex(&["main.yaml", "second.yaml"])
        .args(["ctx", "staging"])
        .assert()
        .success();
    assert_eq!(home.read("main.yaml")["current-context"], "staging");
    assert_eq!(
        home.bytes("second.yaml"),
        second_before,
        "the file that sets no current context is left alone"
    );
    // No name: back to the hosting cluster, found through KubeFlex's legacy key.
    home.kflex(&["main.yaml", "second.yaml"])
        .arg("ctx")
        .assert()
        .success();
    assert_eq!(home.read("main.yaml")["current-context"], "kind-kubeflex");
}

#[test]
fn rename_moves_the_cluster_and_user_and_keeps_every_extension() {
    let home = Home::new();
    home.kflex(&["main.yaml"])
        .args(["ctx", "rename", "cp1", "prod", "--switch"])
        .assert()
        .success();
    let document = home.read("main.yaml");
    let context = named(&document, "contexts", "prod").expect("context prod");
    assert_eq!(context["context"]["cluster"], "prod-cluster");
    assert_eq!(context["context"]["user"], "prod-admin");
    assert_eq!(
        kubeflex_data(&context["context"])["controlplane-name"],
        "cp1",
        "the context still reaches control plane cp1"
    );
    assert_eq!(
        context["context"]["extensions"][0],
        json!({"name": "other-tool", "extension": {"pinned": "yes"}})
    );
    assert_eq!(
        named(&document, "clusters", "prod-cluster").unwrap()["cluster"]["server"],
        "https://cp1.localtest.me:9443"
    );
    for (section, old) in [
        ("contexts", "cp1"),
        ("clusters", "cp1-cluster"),
        ("users", "cp1-admin"),
    ] {
        assert!(named(&document, section, old).is_none(), "{old} is gone");
    }
    assert_eq!(document["current-context"], "prod");
    assert_eq!(
        document["extensions"][0],
        json!({"name": "other-tool", "extension": {"color": "blue"}})
    );
}

#[test]
fn an_unmanaged_context_is_deleted_only_with_force() {
    let home = Home::new();
    let before = home.bytes("second.yaml");
    let refused = home
        .kflex(&["second.yaml"])
        .args(["ctx", "delete", "staging"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(home.bytes("second.yaml"), before, "nothing changed");

    home.kflex(&["second.yaml"])
        .args(["ctx", "delete", "staging", "--force"])
        .assert()
        .success();
    let document = home.read("second.yaml");
    assert!(named(&document, "contexts", "staging").is_none());
    assert!(named(&document, "clusters", "staging").is_none());
    assert!(named(&document, "users", "staging").is_none());
    assert!(
        named(&document, "clusters", "kind-kubeflex").is_some(),
        "entries of other contexts stay"
    );
}

#[test]
fn a_cluster_another_context_uses_stays_when_one_context_goes() {
    let home = Home::new();
    std::fs::write(
        home.path("shared.yaml"),
        "clusters:\n- name: x\n  cluster: {server: 'https://x'}\n\
         users:\n- name: u\n  user: {token: t}\n\
         contexts:\n- name: a\n  context: {cluster: x, user: u}\n- name: b\n  context: {cluster: x, user: u}\n\
         current-context: a\n",
    )
    .unwrap();
    home.kflex(&["shared.yaml"])
        .args(["ctx", "delete", "a", "--force"])
        .assert()
        .success();
    let document = home.read("shared.yaml");
    assert!(named(&document, "clusters", "x").is_some());
    assert!(named(&document, "users", "u").is_some());
    assert!(
        document.get("current-context").is_none(),
        "the deleted context is not current any more"
    );
}

#[test]
fn recording_the_hosting_cluster_moves_its_mark_and_keeps_kubeflex_fields() {
    let home = Home::new();
    let files = ["main.yaml", "second.yaml"];
    home.kflex(&files)
        .args(["config", "set-hosting", "staging"])
        .assert()
        .success();
    let main = home.read("main.yaml");
    let extension = main["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "kubeflex")
        .unwrap();
    assert_eq!(
        extension["extension"]["data"],
        json!({"hosting-cluster-ctx-name": "staging"}),
        "the legacy key is replaced"
    );
    assert_eq!(
        extension["extension"]["metadata"]["creationTimestamp"], "2025-01-01T00:00:00Z",
        "KubeFlex's fields are kept, not rewritten"
    );
    let staging = named(&home.read("second.yaml"), "contexts", "staging")
        .cloned()
        .unwrap();
    assert_eq!(
        kubeflex_data(&staging["context"])["is-hosting-cluster-ctx"],
        "true"
    );

    home.kflex(&files)
        .args(["config", "set-hosting", "kind-kubeflex"])
        .assert()
        .success();
    let staging = named(&home.read("second.yaml"), "contexts", "staging")
        .cloned()
        .unwrap();
    assert!(
        kubeflex_data(&staging["context"])
            .get("is-hosting-cluster-ctx")
            .is_none(),
        "a previous hosting context loses its mark: {staging}"
    );
    let unknown = home
        .kflex(&files)
        .args(["config", "set-hosting", "nowhere"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("\"nowhere\""));
}

#[cfg(unix)]
#[test]
fn writes_keep_permissions_follow_symbolic_links_and_leave_no_temporary_files() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = Home::new();
    std::fs::set_permissions(
        home.path("main.yaml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink(home.path("main.yaml"), home.path("link.yaml")).unwrap();
    home.kflex(&["link.yaml"])
        .args(["ctx", "cp1"])
        .assert()
        .success();
    assert!(
        std::fs::symlink_metadata(home.path("link.yaml"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link is still a link"
    );
    assert_eq!(home.read("main.yaml")["current-context"], "cp1");
    let mode = std::fs::metadata(home.path("main.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    let names: Vec<String> = std::fs::read_dir(home.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|name| !name.starts_with(".kflex-kubeconfig")),
        "{names:?}"
    );
}

/// The write fails half-way through whoever runs the tests: a file-size limit of zero makes
/// the first write to the temporary file fail (`EFBIG`, root included, unlike a read-only
/// directory, which root writes into regardless), with the signal that would kill kflex
/// ignored so it reports the error itself.
#[cfg(unix)]
#[test]
fn a_failed_write_leaves_the_kubeconfig_as_it_was() {
    let home = Home::new();
    let before = home.bytes("main.yaml");
    let limited = |limit: &str| {
        let kflex = home.kflex(&["main.yaml"]).get_program().to_owned();
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "trap '' XFSZ; ulimit -f {limit}; exec \"$0\" ctx cp1"
            ))
            .arg(kflex)
            .env_clear()
            .env("KUBECONFIG", home.path("main.yaml"))
            .current_dir(home.dir.path())
            .output()
            .expect("test setup");
        let leftovers: Vec<String> = std::fs::read_dir(home.dir.path())
            .expect("test setup")
            .map(|entry| {
                entry
                    .expect("test setup")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.starts_with(".kflex-kubeconfig"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        output
    };
    let output = limited("0");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "writing kubeconfig {}",
            home.path("main.yaml")
                .canonicalize()
                .expect("test setup")
                .display()
        )) && stderr.contains("File too large"),
        "{stderr}"
    );
    assert_eq!(home.bytes("main.yaml"), before);
    // The same command without the limit writes: the limit, not the command, failed above.
    let output = limited("unlimited");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(home.read("main.yaml")["current-context"], "cp1");
}

#[test]
fn a_broken_kubeconfig_is_named_and_nothing_is_written() {
    let home = Home::new();
    std::fs::write(home.path("broken.yaml"), "contexts: [unclosed\n").unwrap();
    let output = home
        .kflex(&["main.yaml", "broken.yaml"])
        .args(["ctx", "staging"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.yaml"), "{stderr}");
    assert_eq!(
        std::fs::read(home.path("main.yaml")).unwrap(),
        std::fs::read(Path::new(FIXTURES).join("main.yaml")).unwrap()
    );
}

#[test]
fn without_any_kubeconfig_source_the_error_says_where_it_looked() {
    let output = Command::cargo_bin("kflex")
        .unwrap()
        .env_clear()
        .args(["ctx", "list"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("$KUBECONFIG"));
}

/// A context entry for `name` on the hosting cluster's cluster and user.
fn context_entry(name: &str) -> Value {
    json!({"name": name, "context": {"cluster": "kind-kubeflex", "user": "kind-kubeflex"}})
}

#[test]
fn edits_from_copies_read_before_other_writes_lose_nothing() {
    use kflex::cli::kubeconfig::{Kubeconfigs, Section, Sources};
    let home = Home::new();
    let sources = Sources::resolve(Some(&home.path("main.yaml")), None, None).unwrap();
    const WRITERS: usize = 8;
    // Every writer reads the file before any of them writes, as parallel `kflex create`s do
    // (each reads at its start and writes once its control plane is Ready).
    let all_read = std::sync::Barrier::new(WRITERS);
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (sources, all_read) = (&sources, &all_read);
            scope.spawn(move || {
                let mut stale = Kubeconfigs::load(sources).unwrap();
                all_read.wait();
                stale
                    .update(|kubeconfigs| {
                        kubeconfigs.upsert(Section::Contexts, context_entry(&format!("w{writer}")))
                    })
                    .unwrap();
            });
        }
    });
    let written = home.read("main.yaml");
    for writer in 0..WRITERS {
        let name = format!("w{writer}");
        assert!(
            named(&written, "contexts", &name).is_some(),
            "{name} was lost"
        );
    }
    assert!(named(&written, "contexts", "cp1").is_some());
    assert!(!home.path("main.yaml.lock").exists());
}

#[test]
fn a_kubeconfig_locked_by_another_program_is_not_written() {
    use kflex::cli::kubeconfig::{Kubeconfigs, Section, Sources};
    let home = Home::new();
    let before = home.bytes("main.yaml");
    // kubectl's lock file, left by a kubectl that is writing (or crashed while writing).
    std::fs::write(home.path("main.yaml.lock"), "").unwrap();
    let sources = Sources::resolve(Some(&home.path("main.yaml")), None, None).unwrap();
    let mut kubeconfigs = Kubeconfigs::load(&sources).unwrap();
    let err = kubeconfigs
        .update_waiting(std::time::Duration::from_millis(100), |kubeconfigs| {
            kubeconfigs.upsert(Section::Contexts, context_entry("late"))
        })
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("main.yaml.lock exists"), "{message}");
    assert!(message.contains("remove that file"), "{message}");
    assert_eq!(home.bytes("main.yaml"), before);
    assert!(
        !kubeconfigs.has_context("late"),
        "the failed edit is not kept"
    );
    assert!(
        home.path("main.yaml.lock").exists(),
        "another program's lock is not removed"
    );
}

#[test]
fn a_command_waits_for_the_lock_and_then_edits_what_the_other_program_wrote() {
    let home = Home::new();
    let lock = home.path("main.yaml.lock");
    std::fs::write(&lock, "").unwrap();
    let mut rename = std::process::Command::new(assert_cmd::cargo::cargo_bin!("kflex"))
        .env_clear()
        .env("KUBECONFIG", home.path("main.yaml"))
        .args(["ctx", "rename", "cp1", "prod"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Waiting, and saying so: the first line it writes, while the lock is still held.
    let mut stderr = std::io::BufReader::new(rename.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(
        first.contains("is locked by another program") && first.contains("waiting up to"),
        "{first}"
    );
    assert!(
        rename.try_wait().unwrap().is_none(),
        "kflex must wait while the lock is held"
    );
    assert!(named(&home.read("main.yaml"), "contexts", "cp1").is_some());
    // The other program writes a context, then releases its lock.
    let mut document = home.read("main.yaml");
    document["contexts"]
        .as_array_mut()
        .unwrap()
        .push(context_entry("added-meanwhile"));
    std::fs::write(
        home.path("main.yaml"),
        serde_json::to_string(&document).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(&lock).unwrap();
    let output = rename.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let written = home.read("main.yaml");
    assert!(named(&written, "contexts", "prod").is_some());
    assert!(named(&written, "contexts", "cp1").is_none());
    assert!(
        named(&written, "contexts", "added-meanwhile").is_some(),
        "kflex edits the file as it is after the wait, not as it read it before"
    );
    assert!(!lock.exists());
}

/// A kubeconfig holds tokens and keys: when it does not parse, the error names the file, line
/// and column, and never shows the lines around the error or a value (they end up in CI logs).
#[test]
fn a_broken_kubeconfig_is_located_but_never_shown() {
    let marker = "SECRET-TOKEN-123";
    let home = Home::new();
    let valid_start = "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
                       clusters:\n- name: c\n  cluster: {server: https://127.0.0.1:9}\n\
                       contexts:\n- name: c\n  context: {cluster: c, user: u}\n";
    for (case, text) in [
        (
            "a syntax error between two tokens",
            format!(
                "{valid_start}users:\n- name: u\n  user:\n    token: {marker}\n    client-key-data: [{marker}\nx: {marker}\n"
            ),
        ),
        (
            "a token of the wrong type",
            format!("{valid_start}users:\n- name: u\n  user:\n    token: {{value: {marker}}}\n"),
        ),
        (
            "a key given twice",
            format!(
                "{valid_start}users:\n- name: u\n  user:\n    token: {marker}\n    token: {marker}\n"
            ),
        ),
    ] {
        std::fs::write(home.path("broken.yaml"), &text).expect("test setup");
        {
            let output = home
                .kflex(&["broken.yaml"])
                .arg("list")
                .output()
                .expect("runs");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{case}: {stderr}");
            assert!(
                stderr.contains("broken.yaml") && stderr.contains("line "),
                "{case}: names the file and line: {stderr}"
            );
            assert!(!stderr.contains(marker), "{case}: {stderr}");
            assert!(!String::from_utf8_lossy(&output.stdout).contains(marker));
        }
    }
}
