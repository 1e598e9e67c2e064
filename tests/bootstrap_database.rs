//! `kflex bootstrap database` against a real PostgreSQL server (TLS only, SCRAM): role and
//! database are created once, the role can reach its own database only, the Secret decides the
//! password, `--drop` removes both, and any valid control-plane name works.

mod support;

use std::collections::BTreeMap;

use kflex::bootstrap::database::{self, ConnectError, Login, Server, Target};
use kflex::bootstrap::secrets::{MemorySecrets, Outcome};
use support::postgres::Postgres;
use tokio_postgres::error::SqlState;

fn server(pg: &Postgres) -> Server {
    pg.server()
}

fn admin(pg: &Postgres) -> Login {
    pg.admin()
}

/// The target for control plane `name`, as the renderer names it.
fn target(name: &str) -> Target {
    let database = name.replace('-', "_");
    Target {
        role: database.clone(),
        database,
    }
}

fn text(store: &MemorySecrets, key: &str) -> String {
    String::from_utf8(store.data("kine-datastore").expect("the Secret")[key].clone())
        .expect("UTF-8")
}

async fn ensure(pg: &Postgres, store: &MemorySecrets, name: &str) -> database::Report {
    database::ensure(
        &server(pg),
        &admin(pg),
        &target(name),
        store,
        "kine-datastore",
        &BTreeMap::new(),
    )
    .await
    .expect("ensure")
}

/// Connects as the role kine would, with what the Secret holds.
async fn connect_as_kine(
    pg: &Postgres,
    store: &MemorySecrets,
    database: &str,
) -> Result<tokio_postgres::Client, ConnectError> {
    let login = Login {
        user: text(store, "user"),
        password: text(store, "password"),
    };
    database::connect(&server(pg), &login, database).await
}

#[tokio::test]
async fn a_control_plane_gets_its_own_role_and_database_once() {
    let pg = Postgres::start();
    let store = MemorySecrets::new("cp1-system");
    let first = ensure(&pg, &store, "cp1").await;
    assert!(first.role_created && first.database_created && first.password_set);
    assert_eq!(first.secret, Some(Outcome::Created));
    for (key, value) in [("host", "localhost"), ("user", "cp1"), ("database", "cp1")] {
        assert_eq!(text(&store, key), value);
    }
    assert_eq!(text(&store, "port"), pg.port.to_string());
    assert_eq!(
        store.data("kine-datastore").expect("Secret")["ca.crt"],
        pg.ca_pem
    );
    let client = connect_as_kine(&pg, &store, "cp1")
        .await
        .expect("kine connects");
    client
        .batch_execute("CREATE TABLE kine (id bigint); INSERT INTO kine VALUES (1)")
        .await
        .expect("the role owns its database");

    // Twice changes nothing: no new role, database, password or Secret.
    let secret = store.data("kine-datastore");
    let second = ensure(&pg, &store, "cp1").await;
    assert_eq!(
        second,
        database::Report {
            secret: Some(Outcome::Unchanged),
            ..database::Report::default()
        }
    );
    assert_eq!(store.data("kine-datastore"), secret);
}

#[tokio::test]
async fn one_control_plane_cannot_reach_another_ones_database() {
    let pg = Postgres::start();
    let first = MemorySecrets::new("cp1-system");
    let second = MemorySecrets::new("cp2-system");
    ensure(&pg, &first, "cp1").await;
    ensure(&pg, &second, "cp2").await;
    connect_as_kine(&pg, &first, "cp1")
        .await
        .expect("cp1 reaches its own")
        .batch_execute("CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('cp1 data')")
        .await
        .expect("cp1 writes its own");
    let Err(ConnectError::Other(err)) = connect_as_kine(&pg, &second, "cp1").await else {
        panic!("cp2's role connected to cp1's database");
    };
    let code = err
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
        .cloned();
    assert_eq!(code, Some(SqlState::INSUFFICIENT_PRIVILEGE), "{err:#}");
    // And PostgreSQL agrees it has no way in.
    let admin_client = database::connect(&server(&pg), &admin(&pg), "cp1")
        .await
        .expect("admin");
    let rows = admin_client
        .query(
            "SELECT has_database_privilege('cp2', 'cp1', 'CONNECT')",
            &[],
        )
        .await
        .expect("query");
    assert!(!rows[0].get::<_, bool>(0));
}

#[tokio::test]
async fn the_secret_decides_the_password() {
    let pg = Postgres::start();
    let store = MemorySecrets::new("cp1-system");
    ensure(&pg, &store, "cp1").await;
    // Someone changed the role's password: the Secret's is put back.
    let admin_client = database::connect(&server(&pg), &admin(&pg), "postgres")
        .await
        .expect("admin");
    admin_client
        .batch_execute("ALTER ROLE cp1 PASSWORD 'changed-by-hand'")
        .await
        .expect("alter");
    assert!(matches!(
        connect_as_kine(&pg, &store, "cp1").await,
        Err(ConnectError::BadPassword(_))
    ));
    let repaired = ensure(&pg, &store, "cp1").await;
    assert!(repaired.password_set && !repaired.role_created);
    connect_as_kine(&pg, &store, "cp1")
        .await
        .expect("the Secret's password works again");

    // The Secret was lost: a new password is set and written.
    let lost = MemorySecrets::new("cp1-system");
    let renewed = ensure(&pg, &lost, "cp1").await;
    assert!(renewed.password_set);
    assert_eq!(renewed.secret, Some(Outcome::Created));
    assert_ne!(text(&lost, "password"), text(&store, "password"));
    connect_as_kine(&pg, &lost, "cp1")
        .await
        .expect("the new password works");
}

#[tokio::test]
async fn drop_removes_database_and_role_and_tolerates_their_absence() {
    let pg = Postgres::start();
    let store = MemorySecrets::new("cp1-system");
    ensure(&pg, &store, "cp1").await;
    // An open connection does not stop the drop.
    let kine = connect_as_kine(&pg, &store, "cp1")
        .await
        .expect("kine connects");
    let dropped = database::drop(&server(&pg), &admin(&pg), &target("cp1"))
        .await
        .expect("drop");
    assert_eq!(
        dropped,
        database::Dropped {
            database: true,
            role: true
        }
    );
    assert!(
        kine.batch_execute("SELECT 1").await.is_err(),
        "its connection was closed"
    );
    let again = database::drop(&server(&pg), &admin(&pg), &target("cp1"))
        .await
        .expect("drop again");
    assert_eq!(again, database::Dropped::default());
    let admin_client = database::connect(&server(&pg), &admin(&pg), "postgres")
        .await
        .expect("admin");
    let remaining = admin_client
        .query(
            "SELECT (SELECT count(*) FROM pg_database WHERE datname = 'cp1') + \
                    (SELECT count(*) FROM pg_roles WHERE rolname = 'cp1')",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(remaining[0].get::<_, i64>(0), 0);
}

#[tokio::test]
async fn hostile_but_valid_control_plane_names_work() {
    let pg = Postgres::start();
    let long = format!("a{}", "-9".repeat(27) + "b");
    assert_eq!(long.len(), 56);
    for name in [
        "team-a",
        "x1-2-3",
        "select",
        "user",
        "order-by",
        long.as_str(),
    ] {
        let store = MemorySecrets::new(&format!("{name}-system"));
        let report = ensure(&pg, &store, name).await;
        assert!(report.role_created && report.database_created, "{name}");
        let database = name.replace('-', "_");
        connect_as_kine(&pg, &store, &database)
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"))
            .batch_execute("CREATE TABLE t (x int)")
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let dropped = database::drop(&server(&pg), &admin(&pg), &target(name))
            .await
            .expect("drop");
        assert_eq!(
            dropped,
            database::Dropped {
                database: true,
                role: true
            },
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_server_is_verified_by_name_and_ca() {
    let pg = Postgres::start();
    let store = MemorySecrets::new("cp1-system");
    // Another name than the certificate's: refused before any password is sent.
    let mut wrong_name = server(&pg);
    wrong_name.host = "127.0.0.1".into();
    let err = database::ensure(
        &wrong_name,
        &admin(&pg),
        &target("cp1"),
        &store,
        "kine-datastore",
        &BTreeMap::new(),
    )
    .await
    .expect_err("not the certificate's name");
    assert!(
        format!("{err:#}").contains("connecting to PostgreSQL 127.0.0.1"),
        "{err:#}"
    );
    // Another CA: refused too.
    let mut wrong_ca = server(&pg);
    let other = kflex::bootstrap::pki::Authority::generate(
        "other",
        time::OffsetDateTime::now_utc(),
        std::time::Duration::from_secs(3600),
    )
    .expect("CA");
    wrong_ca.ca_pem = other.cert_pem.into_bytes();
    assert!(
        database::ensure(
            &wrong_ca,
            &admin(&pg),
            &target("cp1"),
            &store,
            "kine-datastore",
            &BTreeMap::new()
        )
        .await
        .is_err()
    );
    assert!(store.data("kine-datastore").is_none(), "nothing written");
}
