//! Backups in an S3-compatible store run locally: moto in server mode (`tests/support/
//! moto_s3.py`), which checks signatures against an account it creates, with a real PostgreSQL
//! as the datastore. Upload, list, retention and download through the same code the Jobs run,
//! and failures — a bucket that does not exist, a wrong secret key, an unknown access key, a
//! store that does not answer — that say what is wrong and never print a credential.
//!
//! moto comes from the Python named by `KFLEX_MOTO_PYTHON` (`.ci/run` installs moto[server],
//! pinned, in its virtualenv and sets it); without the variable these tests say they were
//! skipped, and with it they fail if moto cannot run.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::backup::control_plane;
use crate::support::postgres::Postgres;
use kflex::bootstrap::backup::store::{Credentials, S3Config, Store};
use kflex::bootstrap::run::backup::{self as backup_run, Restored};

const LIMIT: Duration = Duration::from_secs(180);

struct Moto {
    child: Child,
    endpoint: String,
    access_key_id: String,
    secret_access_key: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The S3 server, or `None` (the test is skipped, saying so) when `KFLEX_MOTO_PYTHON` is not
/// set. Only that Python is used — not whatever `python3` has — because moto releases before the
/// one `.ci/run` pins check signatures differently; when it is set and cannot run moto, the test
/// fails.
fn moto(test: &str) -> Option<Moto> {
    let Ok(python) = std::env::var("KFLEX_MOTO_PYTHON") else {
        eprintln!(
            "SKIPPED {test}: KFLEX_MOTO_PYTHON does not name a Python with moto[server] (.ci/run \
             sets it)"
        );
        return None;
    };
    let available = Command::new(&python)
        .args(["-c", "import moto.server, boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        available,
        "KFLEX_MOTO_PYTHON={python} cannot import moto.server and boto3 (moto[server])"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/moto_s3.py");
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("its stdout"))
        .read_line(&mut line)
        .expect("moto says where it is");
    let started: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|err| panic!("moto did not start ({err}): {line:?}"));
    let text = |key: &str| started[key].as_str().expect("a string").to_owned();
    Some(Moto {
        endpoint: text("endpoint"),
        access_key_id: text("accessKeyId"),
        secret_access_key: text("secretAccessKey"),
        child,
    })
}

impl Moto {
    fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            bucket: bucket.to_owned(),
            region: "us-east-1".to_owned(),
            endpoint: self.endpoint.clone(),
            prefix: "hosting-1/backups".to_owned(),
            server_side_encryption: "AES256".to_owned(),
            kms_key_id: String::new(),
            allow_http: true,
            virtual_hosted_style: false,
        }
    }

    fn credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: None,
            ca_pem: None,
        }
    }

    fn store(&self) -> Store {
        Store::s3(
            "offsite",
            &self.config("kflex-backups"),
            &self.credentials(),
        )
        .expect("a store")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_upload_list_expire_and_restore_through_s3() {
    crate::within(async move {
        let Some(moto) = moto("backups_upload_list_expire_and_restore_through_s3") else {
            return;
        };
        tokio::time::timeout(LIMIT, async {
            let pg = Postgres::start();
            let mut source = control_plane(&pg, "cp1").await;
            source
                .batch_execute(
                    "CREATE TABLE kine (id BIGSERIAL PRIMARY KEY, name text COLLATE \"C\", \
                 created INTEGER, deleted INTEGER, create_revision BIGINT, prev_revision BIGINT, \
                 lease INTEGER, value bytea, old_value bytea); \
                 INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, \
                 value) SELECT '/registry/k/' || i, 1, 0, i, 0, 0, \
                 decode(repeat(md5(i::text), 128), 'hex') FROM generate_series(1, 3000) i",
                )
                .await
                .expect("kine's rows");
            let store = moto.store();
            let names = [
                "20261201-021700-aaaaaa",
                "20261202-021700-bbbbbb",
                "20261203-021700-cccccc",
            ];
            let mut manifests = Vec::new();
            for name in names {
                manifests.push(
                    backup_run::take(&mut source, &store, "cp1", name)
                        .await
                        .expect("a backup to S3"),
                );
            }
            // Several megabytes: the upload is a multipart one.
            assert!(manifests[0].bytes > 5_000_000, "{}", manifests[0].bytes);
            assert!(
                backup_run::take(&mut source, &store, "cp1", names[0])
                    .await
                    .unwrap_err()
                    .to_string()
                    .contains("never overwritten")
            );
            let listed = backup_run::backups(&store, "cp1").await.expect("a listing");
            assert_eq!(
                listed.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
                names
            );
            assert_eq!(listed[2].rows, 3000);
            assert_eq!(listed[2].bytes, manifests[2].bytes);

            let removed = backup_run::apply_retention(&store, "cp1", 2, names[2])
                .await
                .expect("retention");
            assert_eq!(removed, [names[0]]);
            let listed = backup_run::backups(&store, "cp1").await.expect("a listing");
            assert_eq!(listed.len(), 2);
            assert!(
                backup_run::backups(&store, "cp2")
                    .await
                    .expect("a listing")
                    .is_empty()
            );

            let manifest = backup_run::verify(&store, "cp1", names[2])
                .await
                .expect("the backup matches its manifest");
            let mut target = control_plane(&pg, "cp1-restored").await;
            let restored = backup_run::load(&mut target, &store, &manifest, "cp1_restored")
                .await
                .expect("a restore from S3");
            assert_eq!(restored, Restored::Loaded(3000));
            let same: bool = target
                .query_one(
                    "SELECT md5(string_agg(name || encode(value, 'hex'), ',' ORDER BY id)) = $1 \
                 FROM kine",
                    &[&source
                        .query_one(
                            "SELECT md5(string_agg(name || encode(value, 'hex'), ',' ORDER BY id)) \
                         FROM kine",
                            &[],
                        )
                        .await
                        .expect("the source's digest")
                        .get::<_, String>(0)],
                )
                .await
                .expect("the target's digest")
                .get(0);
            assert!(same, "the restored rows are the source's");
        })
        .await
        .expect("within the time limit");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_failures_say_what_is_wrong_and_never_print_a_credential() {
    crate::within(async move {
        let Some(moto) = moto("s3_failures_say_what_is_wrong_and_never_print_a_credential") else {
            return;
        };
        tokio::time::timeout(LIMIT, async {
            let secrets = [moto.access_key_id.clone(), moto.secret_access_key.clone()];
            let shows_none = |message: &str| {
                for secret in &secrets {
                    assert!(
                        !message.contains(secret.as_str()),
                        "a credential in: {message}"
                    );
                }
            };
            // The bucket does not exist.
            let missing = Store::s3(
                "offsite",
                &moto.config("no-such-bucket"),
                &moto.credentials(),
            )
            .expect("a store");
            let message = format!(
                "{:#}",
                backup_run::backups(&missing, "cp1").await.unwrap_err()
            );
            assert!(message.contains("bucket does not exist"), "{message}");
            assert!(message.contains("no-such-bucket"), "{message}");
            assert!(message.contains("backup store offsite"), "{message}");
            shows_none(&message);

            // A wrong secret key, and an access key the store does not know.
            let mut wrong = moto.credentials();
            wrong.secret_access_key = "not-the-secret-key-0123456789".to_owned();
            let store =
                Store::s3("offsite", &moto.config("kflex-backups"), &wrong).expect("a store");
            let message = format!(
                "{:#}",
                backup_run::backups(&store, "cp1").await.unwrap_err()
            );
            assert!(message.contains("refused the credentials"), "{message}");
            shows_none(&message);
            assert!(!message.contains("not-the-secret-key"), "{message}");
            let mut unknown = moto.credentials();
            unknown.access_key_id = "AKIAUNKNOWNKEY000000".to_owned();
            let store =
                Store::s3("offsite", &moto.config("kflex-backups"), &unknown).expect("a store");
            let message = format!(
                "{:#}",
                backup_run::backups(&store, "cp1").await.unwrap_err()
            );
            assert!(message.contains("refused the credentials"), "{message}");
            assert!(!message.contains("AKIAUNKNOWNKEY000000"), "{message}");
            shows_none(&message);

            // A store that does not answer: named, quickly.
            let closed = std::net::TcpListener::bind("127.0.0.1:0")
                .expect("a port")
                .local_addr()
                .expect("an address")
                .port();
            let mut config = moto.config("kflex-backups");
            config.endpoint = format!("http://127.0.0.1:{closed}");
            let store = Store::s3("offsite", &config, &moto.credentials()).expect("a store");
            let started = std::time::Instant::now();
            let message = format!(
                "{:#}",
                backup_run::backups(&store, "cp1").await.unwrap_err()
            );
            assert!(
                message.contains(&format!("127.0.0.1:{closed}")),
                "{message}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{:?}",
                started.elapsed()
            );
            shows_none(&message);

            // Plain HTTP is refused unless the settings allow it.
            let mut config = moto.config("kflex-backups");
            config.allow_http = false;
            let message = format!(
                "{:#}",
                Store::s3("offsite", &config, &moto.credentials()).unwrap_err()
            );
            assert!(message.contains("plain HTTP"), "{message}");
            shows_none(&message);
        })
        .await
        .expect("within the time limit");
    })
    .await;
}

#[test]
fn credentials_come_from_the_mounted_secret_and_never_show() {
    let dir = tempfile::tempdir().expect("a directory");
    std::fs::write(dir.path().join("accessKeyId"), "AKIAEXAMPLE\n").expect("written");
    let message = format!("{:#}", Credentials::from_dir(dir.path()).unwrap_err());
    assert!(message.contains("has no key secretAccessKey"), "{message}");
    std::fs::write(dir.path().join("secretAccessKey"), "s3cr3t-value").expect("written");
    let credentials = Credentials::from_dir(dir.path()).expect("credentials");
    assert_eq!(credentials.access_key_id, "AKIAEXAMPLE");
    assert_eq!(credentials.session_token, None);
    let shown = format!("{credentials:?}");
    assert!(
        !shown.contains("AKIAEXAMPLE") && !shown.contains("s3cr3t"),
        "{shown}"
    );
}
