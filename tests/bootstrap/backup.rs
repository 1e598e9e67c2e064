//! `kflex bootstrap backup` against a real PostgreSQL server (TLS only, SCRAM), connected as the
//! control plane's own role exactly as the rendered Jobs connect (the login `kflex bootstrap
//! database` writes into kine-datastore), with a directory store: a backup taken while rows are
//! written continuously is one consistent revision; a restore reproduces every row byte for
//! byte; a corrupted backup, an unknown schema and a target with data are refused with the
//! reason and nothing loaded; two control planes' backups never mix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::postgres::Postgres;
use kflex::bootstrap::backup::store::{Found, Store};
use kflex::bootstrap::backup::{DATA_OBJECT, MANIFEST_OBJECT, Manifest};
use kflex::bootstrap::database::{self, Login, Target};
use kflex::bootstrap::run::backup::{self as backup_run, Restored, datastore_login};
use kflex::bootstrap::secrets::MemorySecrets;

/// Every test here ends within this, whatever the server does.
const LIMIT: Duration = Duration::from_secs(180);

/// The control plane's database and its kine login, created as the database Job creates them.
pub(crate) async fn control_plane(pg: &Postgres, name: &str) -> tokio_postgres::Client {
    let database = name.replace('-', "_");
    let store = MemorySecrets::new(&format!("{name}-system"));
    database::ensure(
        &pg.server(),
        &pg.admin(),
        &Target {
            database: database.clone(),
            role: database,
        },
        &store,
        "kine-datastore",
        &BTreeMap::new(),
    )
    .await
    .expect("the database Job's work");
    let secret = store.data("kine-datastore").expect("kine-datastore");
    let (server, login, database) = datastore_login("kine-datastore", &secret).expect("a login");
    assert_ne!(login.user, "postgres", "kine's own role, not the superuser");
    database::connect(&server, &login, &database)
        .await
        .expect("kine's login connects")
}

/// kine's table as kine v0.14 creates it.
const KINE_TABLE: &str = "CREATE TABLE kine (id BIGSERIAL PRIMARY KEY, name text COLLATE \"C\", \
     created INTEGER, deleted INTEGER, create_revision BIGINT, prev_revision BIGINT, \
     lease INTEGER, value bytea, old_value bytea); \
     CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision)";

/// A row to insert: name, value, old value, deleted.
type Insert<'a> = (&'a str, Option<&'a [u8]>, Option<&'a [u8]>, i32);

type Row = (
    i64,
    Option<String>,
    Option<i32>,
    Option<i32>,
    Option<i64>,
    Option<i64>,
    Option<i32>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

async fn rows(client: &tokio_postgres::Client) -> Vec<Row> {
    client
        .query(
            "SELECT id::bigint, name::text, created, deleted, create_revision::bigint, \
             prev_revision::bigint, lease, value, old_value FROM kine ORDER BY id",
            &[],
        )
        .await
        .expect("kine's rows")
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
                r.get(8),
            )
        })
        .collect()
}

fn directory_store(dir: &tempfile::TempDir) -> Store {
    Store::directory("local", dir.path()).expect("a directory store")
}

async fn restore_into(
    target: &mut tokio_postgres::Client,
    store: &Store,
    from: &str,
    name: &str,
) -> anyhow::Result<Restored> {
    let manifest = backup_run::verify(store, from, name).await?;
    backup_run::load(target, store, &manifest, "target").await
}

/// Returns once the writer has committed more than `groups` groups.
async fn written_after(written: &mut tokio::sync::watch::Receiver<i32>, groups: i32) {
    written
        .wait_for(|committed| *committed > groups)
        .await
        .expect("the writer runs until told to stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_while_rows_are_written_is_one_consistent_revision() {
    crate::within(async move {
        tokio::time::timeout(LIMIT, async {
            let pg = Postgres::start();
            let mut source = control_plane(&pg, "cp1").await;
            source
                .batch_execute(KINE_TABLE)
                .await
                .expect("kine's table");
            let dir = tempfile::tempdir().expect("a directory");
            let store = directory_store(&dir);

            // kine writes each revision in one transaction; here each transaction writes a group of
            // three rows, so a torn snapshot would hold part of a group.
            let writer = control_plane(&pg, "cp1").await;
            let stop = Arc::new(AtomicBool::new(false));
            // Groups committed so far: each backup waits for new ones, so the writer is proven
            // to be writing around every backup instead of being given a fixed time.
            let (committed, mut written) = tokio::sync::watch::channel(0i32);
            let writing = {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut writer = writer;
                    let mut groups = 0i32;
                    while !stop.load(Ordering::Relaxed) && groups < 20_000 {
                        let transaction = writer.transaction().await.expect("a transaction");
                        for part in ["a", "b", "c"] {
                            transaction
                                .execute(
                                    "INSERT INTO kine (name, created, deleted, create_revision, \
                                 prev_revision, lease, value, old_value) \
                                 VALUES ($1, $2, 0, 0, 0, 0, $3, NULL)",
                                    &[
                                        &format!("/registry/groups/{groups}/{part}"),
                                        &groups,
                                        &vec![7u8; 512],
                                    ],
                                )
                                .await
                                .expect("a write");
                        }
                        transaction.commit().await.expect("a commit");
                        groups += 1;
                        committed.send_replace(groups);
                    }
                    groups
                })
            };
            written_after(&mut written, 0).await;
            let mut names = Vec::new();
            for i in 0..3 {
                let name = format!("20261203-04170{i}-concur");
                let manifest = backup_run::take(&mut source, &store, "cp1", &name)
                    .await
                    .expect("a backup");
                assert!(manifest.rows > 0);
                names.push((name, manifest));
                let so_far = *written.borrow();
                written_after(&mut written, so_far).await;
            }
            stop.store(true, Ordering::Relaxed);
            let written = writing.await.expect("the writer");
            assert!(
                written > 10,
                "the writer kept writing during the backups ({written})"
            );

            let mut previous = 0;
            for (i, (name, manifest)) in names.iter().enumerate() {
                let mut target = control_plane(&pg, &format!("restored-{i}")).await;
                let restored = restore_into(&mut target, &store, "cp1", name)
                    .await
                    .expect("a restore");
                assert_eq!(restored, Restored::Loaded(manifest.rows));
                let torn = target
                    .query(
                        "SELECT created, count(*) FROM kine GROUP BY created HAVING count(*) <> 3",
                        &[],
                    )
                    .await
                    .expect("groups");
                assert!(
                    torn.is_empty(),
                    "backup {name} tore {} revisions",
                    torn.len()
                );
                let count: i64 = target
                    .query_one("SELECT count(*) FROM kine", &[])
                    .await
                    .expect("count")
                    .get(0);
                assert_eq!(u64::try_from(count).unwrap(), manifest.rows);
                assert!(manifest.rows >= previous, "later backups hold more");
                previous = manifest.rows;
            }
        })
        .await
        .expect("within the time limit");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_reproduces_every_row_byte_for_byte() {
    crate::within(async move {
        tokio::time::timeout(LIMIT, async {
            let pg = Postgres::start();
            let mut source = control_plane(&pg, "cp1").await;
            // An older kine's table (integer ids, varchar names) backs up into today's schema.
            source
                .batch_execute(
                    "CREATE TABLE kine (id SERIAL PRIMARY KEY, name VARCHAR(630), created INTEGER, \
                 deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, \
                 value bytea, old_value bytea)",
                )
                .await
                .expect("kine's table");
            let every_byte: Vec<u8> = (0..=255u8).collect();
            let large: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
            let inserts: [Insert<'_>; 6] = [
                ("compact_rev_key", Some(b"".as_slice()), None, 0),
                ("/registry/secrets/default/s1", Some(&every_byte), None, 0),
                (
                    "/registry/configmaps/kube-system/ünïcödé",
                    Some(b"{\"a\":1}"),
                    Some(b"{}"),
                    0,
                ),
                ("/registry/pods/default/p1", None, Some(&every_byte), 1),
                ("/registry/big", Some(&large), Some(&large[..1000]), 0),
                ("/registry/leases/x", Some(b"\0\0\0"), None, -5),
            ];
            for (index, (name, value, old, deleted)) in inserts.iter().enumerate() {
                source
                    .execute(
                        "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, \
                     lease, value, old_value) VALUES ($1, 1, $2, $3, $4, 60, $5, $6)",
                        &[
                            name,
                            deleted,
                            &i32::try_from(index).unwrap(),
                            &(i32::try_from(index).unwrap() - 1),
                            value,
                            old,
                        ],
                    )
                    .await
                    .expect("a row");
            }
            // Gaps in the revisions stay gaps.
            source
                .batch_execute("DELETE FROM kine WHERE name = '/registry/leases/x'")
                .await
                .expect("a gap");
            source
            .execute(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, \
                 value) VALUES ('/registry/last', 1, 0, 0, 0, 0, 'x')",
                &[],
            )
            .await
            .expect("a row");
            let dir = tempfile::tempdir().expect("a directory");
            let store = directory_store(&dir);
            let manifest = backup_run::take(&mut source, &store, "cp1", "20261203-041700-bytes1")
                .await
                .expect("a backup");
            assert_eq!(manifest.rows, 6);
            assert_eq!(manifest.revision, 7);
            assert_eq!(manifest.kine_schema, 1);

            let mut target = control_plane(&pg, "cp1-clone").await;
            let restored = restore_into(&mut target, &store, "cp1", "20261203-041700-bytes1")
                .await
                .expect("a restore");
            assert_eq!(restored, Restored::Loaded(6));
            let (from, to) = (rows(&source).await, rows(&target).await);
            assert_eq!(from.len(), 6);
            assert_eq!(from, to, "every row, every byte");
            // kine's next revision follows the highest restored one, and the restore is marked.
            let next: i64 = target
            .query_one(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease) \
                 VALUES ('/registry/new', 1, 0, 0, 0, 0) RETURNING id",
                &[],
            )
            .await
            .expect("kine writes on")
            .get(0);
            assert_eq!(next, 8);
            // Running again (the Job after a restart) finds its own restore and changes nothing.
            let again = restore_into(&mut target, &store, "cp1", "20261203-041700-bytes1")
                .await
                .expect("again");
            assert_eq!(again, Restored::AlreadyThere);
        })
        .await
        .expect("within the time limit");
    })
    .await;
}

fn rewrite_manifest(
    dir: &std::path::Path,
    cp: &str,
    name: &str,
    change: impl FnOnce(&mut Manifest),
) {
    let path = dir.join(cp).join(name).join(MANIFEST_OBJECT);
    let mut manifest: Manifest =
        serde_json::from_slice(&std::fs::read(&path).expect("the manifest")).expect("JSON");
    change(&mut manifest);
    std::fs::write(&path, serde_json::to_vec(&manifest).expect("JSON")).expect("written");
}

fn copy_backup(dir: &std::path::Path, from: (&str, &str), to: (&str, &str)) {
    let target = dir.join(to.0).join(to.1);
    std::fs::create_dir_all(&target).expect("a directory");
    for object in [DATA_OBJECT, MANIFEST_OBJECT] {
        std::fs::copy(
            dir.join(from.0).join(from.1).join(object),
            target.join(object),
        )
        .expect("copied");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backups_and_targets_with_data_are_refused_and_nothing_is_loaded() {
    crate::within(async move {
        tokio::time::timeout(LIMIT, async {
            let pg = Postgres::start();
            let mut source = control_plane(&pg, "cp1").await;
            source
                .batch_execute(KINE_TABLE)
                .await
                .expect("kine's table");
            source
            .batch_execute(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, \
                 value) SELECT '/registry/k/' || i, 1, 0, i, 0, 0, decode(md5(i::text), 'hex') \
                 FROM generate_series(1, 200) i",
            )
            .await
            .expect("rows");
            let dir = tempfile::tempdir().expect("a directory");
            let store = directory_store(&dir);
            let good = "20261203-041700-good00";
            backup_run::take(&mut source, &store, "cp1", good)
                .await
                .expect("a backup");
            let mut target = control_plane(&pg, "cp2").await;
            let refused = |result: anyhow::Result<Restored>| format!("{:#}", result.unwrap_err());

            // A byte changed in the data.
            copy_backup(dir.path(), ("cp1", good), ("cp1", "corrupted"));
            let data = dir.path().join("cp1/corrupted").join(DATA_OBJECT);
            let mut bytes = std::fs::read(&data).expect("the data");
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x55;
            std::fs::write(&data, bytes).expect("written");
            rewrite_manifest(dir.path(), "cp1", "corrupted", |m| {
                m.name = "corrupted".into()
            });
            let message = refused(restore_into(&mut target, &store, "cp1", "corrupted").await);
            assert!(message.contains("does not match its manifest"), "{message}");
            assert!(message.contains("sha256"), "{message}");

            // A kine schema this kflex does not know, and a schema that does not match its number.
            copy_backup(dir.path(), ("cp1", good), ("cp1", "newer"));
            rewrite_manifest(dir.path(), "cp1", "newer", |m| {
                m.name = "newer".into();
                m.kine_schema = 2;
            });
            let message = refused(restore_into(&mut target, &store, "cp1", "newer").await);
            assert!(message.contains("kine schema 2"), "{message}");
            copy_backup(dir.path(), ("cp1", good), ("cp1", "columns"));
            rewrite_manifest(dir.path(), "cp1", "columns", |m| {
                m.name = "columns".into();
                m.columns.pop();
            });
            let message = refused(restore_into(&mut target, &store, "cp1", "columns").await);
            assert!(message.contains("schema does not match"), "{message}");
            // A backup that does not exist.
            let message = refused(restore_into(&mut target, &store, "cp1", "nothing-here").await);
            assert!(message.contains("no such backup"), "{message}");

            // None of that loaded anything: the target is still empty.
            let empty: bool = target
                .query_one("SELECT to_regclass('kine') IS NULL", &[])
                .await
                .expect("query")
                .get(0);
            assert!(empty, "a refused restore leaves the database as it was");

            // A database with data is never overwritten, whatever the backup.
            let message = refused(restore_into(&mut source, &store, "cp1", good).await);
            assert!(message.contains("already has data"), "{message}");
            assert!(message.contains("200 rows"), "{message}");
            assert_eq!(rows(&source).await.len(), 200);
            // The good one still loads.
            let restored = restore_into(&mut target, &store, "cp1", good)
                .await
                .expect("the good backup");
            assert_eq!(restored, Restored::Loaded(200));
        })
        .await
        .expect("within the time limit");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_backups_never_mix() {
    crate::within(async move {
    tokio::time::timeout(LIMIT, async {
        let pg = Postgres::start();
        let dir = tempfile::tempdir().expect("a directory");
        let store = directory_store(&dir);
        // "a" is a prefix of "a-b": the store must still keep them apart.
        for (cp, count) in [("a", 3), ("a-b", 5)] {
            let mut client = control_plane(&pg, cp).await;
            client.batch_execute(KINE_TABLE).await.expect("kine's table");
            client
                .execute(
                    "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, \
                     lease, value) SELECT '/' || $1::text || '/' || i, 1, 0, 0, 0, 0, 'v' \
                     FROM generate_series(1, $2::int) i",
                    &[&cp, &count],
                )
                .await
                .expect("rows");
            for day in 1..=3 {
                let name = format!("2026120{day}-000000-{}", cp.replace('-', ""));
                backup_run::take(&mut client, &store, cp, &name)
                    .await
                    .expect("a backup");
            }
        }
        let listed = |found: Vec<Found>| -> Vec<String> {
            found
                .into_iter()
                .filter_map(|f| match f {
                    Found::Backup(m) => Some(format!("{}:{}", m.control_plane, m.name)),
                    Found::NotABackup { .. } => None,
                })
                .collect()
        };
        assert_eq!(
            listed(store.list("a").await.expect("a list")),
            [
                "a:20261201-000000-a",
                "a:20261202-000000-a",
                "a:20261203-000000-a"
            ]
        );
        assert_eq!(store.list("a-b").await.expect("a list").len(), 3);

        // Retention for "a" removes only a's oldest.
        let removed = backup_run::apply_retention(&store, "a", 1, "20261203-000000-a")
            .await
            .expect("retention");
        assert_eq!(removed, ["20261201-000000-a", "20261202-000000-a"]);
        assert_eq!(store.list("a-b").await.expect("a list").len(), 3);

        // A backup of "a-b" put among a's is neither listed, removed nor restored as a's.
        copy_backup(
            dir.path(),
            ("a-b", "20261201-000000-ab"),
            ("a", "20261201-000000-ab"),
        );
        let found = store.list("a").await.expect("a list");
        assert!(found.iter().any(|f| matches!(f,
            Found::NotABackup { name, why } if name == "20261201-000000-ab" && why.contains("\"a-b\""))));
        let removed = backup_run::apply_retention(&store, "a", 1, "")
            .await
            .expect("retention");
        assert!(removed.is_empty(), "{removed:?}");
        assert!(dir.path().join("a/20261201-000000-ab").join(DATA_OBJECT).exists());
        let mut target = control_plane(&pg, "c").await;
        let message = format!(
            "{:#}",
            restore_into(&mut target, &store, "a", "20261201-000000-ab")
                .await
                .unwrap_err()
        );
        assert!(message.contains("backup of control plane \"a-b\""), "{message}");

        // The role of one control plane cannot read another's database to back it up.
        let a_login = {
            let store = MemorySecrets::new("a-system");
            database::ensure(
                &pg.server(),
                &pg.admin(),
                &Target {
                    database: "a".into(),
                    role: "a".into(),
                },
                &store,
                "kine-datastore",
                &BTreeMap::new(),
            )
            .await
            .expect("a's login");
            let secret = store.data("kine-datastore").expect("kine-datastore");
            datastore_login("kine-datastore", &secret).expect("login").1
        };
        let refused = database::connect(
            &pg.server(),
            &Login {
                user: a_login.user,
                password: a_login.password,
            },
            "a_b",
        )
        .await;
        assert!(refused.is_err(), "a's role reached a-b's database");
    })
    .await
    .expect("within the time limit");
    })
    .await;
}
