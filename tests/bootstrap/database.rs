//! `kflex bootstrap database` against a real PostgreSQL server (TLS only, SCRAM): role and
//! database are created once, the role can reach its own database only, the Secret decides the
//! password, `--drop` removes both, and any valid control-plane name works.

use std::collections::BTreeMap;

use crate::support::postgres::Postgres;
use kflex::bootstrap::database::{self, ConnectError, Login, Server, Target};
use kflex::bootstrap::secrets::{MemorySecrets, Outcome};
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
    crate::within(async move {
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
    })
    .await;
}

#[tokio::test]
async fn one_control_plane_cannot_reach_another_ones_database() {
    crate::within(async move {
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
    })
    .await;
}

#[tokio::test]
async fn the_secret_decides_the_password() {
    crate::within(async move {
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
            Err(ConnectError::BadPassword { .. })
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
    })
    .await;
}

#[tokio::test]
async fn drop_removes_database_and_role_and_tolerates_their_absence() {
    crate::within(async move {
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
    })
    .await;
}

#[tokio::test]
async fn hostile_but_valid_control_plane_names_work() {
    crate::within(async move {
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
    })
    .await;
}

#[tokio::test]
async fn the_server_is_verified_by_name_and_ca() {
    crate::within(async move {
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
    })
    .await;
}

/// The account an administrator gives kflex on a server it does not own (a managed service,
/// CloudNativePG, …): CREATEROLE and CREATEDB, not a superuser.
async fn external_admin(pg: &Postgres, name: &str) -> Login {
    let password = kflex::bootstrap::random::password(24).expect("a password");
    database::connect(&pg.server(), &admin(pg), "postgres")
        .await
        .expect("superuser")
        .batch_execute(&format!(
            "CREATE ROLE {name} LOGIN NOSUPERUSER CREATEROLE CREATEDB PASSWORD '{password}'"
        ))
        .await
        .expect("the admin account");
    Login {
        user: name.to_owned(),
        password,
    }
}

/// The server and account as `kflex bootstrap database --server-dir` reads them from the
/// Secret an administrator writes.
fn from_secret(pg: &Postgres, login: &Login, extra: &[(&str, &[u8])]) -> (Server, Login) {
    let mut files: BTreeMap<String, Vec<u8>> = [
        ("host", b"localhost".to_vec()),
        ("port", pg.port.to_string().into_bytes()),
        ("username", login.user.clone().into_bytes()),
        ("password", login.password.clone().into_bytes()),
        ("ca.crt", pg.ca_pem.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (key, value) in extra {
        files.insert((*key).to_owned(), value.to_vec());
    }
    database::external_server("pg-admin", &files, || {
        anyhow::bail!("no system CAs in tests")
    })
    .expect("a valid Secret")
}

async fn ensure_as(
    server: &Server,
    login: &Login,
    store: &MemorySecrets,
    name: &str,
) -> anyhow::Result<database::Report> {
    database::ensure(
        server,
        login,
        &target(name),
        store,
        "kine-datastore",
        &BTreeMap::new(),
    )
    .await
}

async fn connect_with(
    server: &Server,
    store: &MemorySecrets,
    database: &str,
) -> Result<tokio_postgres::Client, ConnectError> {
    let login = Login {
        user: text(store, "user"),
        password: text(store, "password"),
    };
    database::connect(server, &login, database).await
}

#[tokio::test]
async fn an_external_admin_with_createrole_and_createdb_is_enough() {
    crate::within(async move {
        let pg = Postgres::start();
        let account = external_admin(&pg, "kflex_admin").await;
        let (server, login) = from_secret(&pg, &account, &[]);
        assert_eq!(server.sslmode, database::SslMode::VerifyFull, "the default");
        let first = MemorySecrets::new("cp1-system");
        let second = MemorySecrets::new("cp2-system");
        let report = ensure_as(&server, &login, &first, "cp1")
            .await
            .expect("cp1 as a non-superuser admin");
        assert!(report.role_created && report.database_created);
        ensure_as(&server, &login, &second, "cp2")
            .await
            .expect("cp2");
        assert_eq!(text(&first, "sslmode"), "verify-full");
        assert_eq!(
            first.data("kine-datastore").expect("Secret")["ca.crt"],
            pg.ca_pem,
            "kine verifies the server with the Secret's CA"
        );
        // Each role reaches its own database only.
        connect_with(&server, &first, "cp1")
            .await
            .expect("cp1 reaches its own")
            .batch_execute("CREATE TABLE kine (v text); INSERT INTO kine VALUES ('cp1 data')")
            .await
            .expect("cp1 owns its database");
        let Err(ConnectError::Other(err)) = connect_with(&server, &second, "cp1").await else {
            panic!("cp2's role connected to cp1's database");
        };
        let code = err
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.code())
            .cloned();
        assert_eq!(code, Some(SqlState::INSUFFICIENT_PRIVILEGE), "{err:#}");
        // Neither role got any of the admin's powers.
        let superuser = database::connect(&pg.server(), &admin(&pg), "postgres")
            .await
            .expect("superuser");
        let rows = superuser
            .query(
                "SELECT rolname FROM pg_roles WHERE rolname IN ('cp1', 'cp2') AND \
             (rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls)",
                &[],
            )
            .await
            .expect("query");
        assert!(rows.is_empty(), "a control plane's role has no attribute");
        // Running again changes nothing; the Secret's password is kept.
        let again = ensure_as(&server, &login, &first, "cp1")
            .await
            .expect("again");
        assert_eq!(
            again,
            database::Report {
                secret: Some(kflex::bootstrap::secrets::Outcome::Unchanged),
                ..database::Report::default()
            }
        );
        // Deleting a control plane drops its database (closing kine's connection) and role.
        let kine = connect_with(&server, &first, "cp1").await.expect("kine");
        let dropped = database::drop(&server, &login, &target("cp1"))
            .await
            .expect("drop as the non-superuser admin");
        assert_eq!(
            dropped,
            database::Dropped {
                database: true,
                role: true
            }
        );
        assert!(kine.batch_execute("SELECT 1").await.is_err(), "closed");
        let again = database::drop(&server, &login, &target("cp1"))
            .await
            .expect("drop again");
        assert_eq!(again, database::Dropped::default());
        connect_with(&server, &second, "cp2")
            .await
            .expect("cp2 is untouched");
    })
    .await;
}

#[tokio::test]
async fn on_a_server_kflex_does_not_own_it_takes_no_one_elses_role_or_database() {
    crate::within(async move {
        let pg = Postgres::start();
        let account = external_admin(&pg, "kflex_admin").await;
        let other_cluster = external_admin(&pg, "other_kflex").await;
        let (server, login) = from_secret(&pg, &account, &[]);
        // An application already on the server: role `billing` owning database `billing`, and
        // database `ledger` owned by it too.
        let superuser = database::connect(&pg.server(), &admin(&pg), "postgres")
            .await
            .expect("superuser");
        for statement in [
            "CREATE ROLE billing LOGIN PASSWORD 'billing-password'",
            "CREATE DATABASE billing OWNER billing",
            "CREATE DATABASE ledger OWNER billing",
        ] {
            superuser
                .batch_execute(statement)
                .await
                .expect("the application");
        }
        let billing = Login {
            user: "billing".into(),
            password: "billing-password".into(),
        };
        for (name, says) in [
            ("billing", "role \"billing\" exists"),
            ("ledger", "database \"ledger\" exists"),
            ("kflex-admin", "is the account kflex connects to"),
        ] {
            let store = MemorySecrets::new(&format!("{name}-system"));
            let err = ensure_as(&server, &login, &store, name)
                .await
                .expect_err("someone else's");
            let message = format!("{err:#}");
            assert!(message.contains(says), "{name}: {message}");
            assert!(
                message.contains(&format!("localhost:{}", pg.port)),
                "{name}: the server is named: {message}"
            );
            assert!(store.data("kine-datastore").is_none(), "{name}: no Secret");
            let err = database::drop(&server, &login, &target(name))
                .await
                .expect_err("not dropped either");
            assert!(format!("{err:#}").contains(says), "{name}: {err:#}");
        }
        // A role of the same name without a database of its own is not taken either.
        superuser
            .batch_execute("CREATE ROLE reports LOGIN PASSWORD 'reports-password'")
            .await
            .expect("another role");
        let store = MemorySecrets::new("reports-system");
        let err = ensure_as(&server, &login, &store, "reports")
            .await
            .expect_err("not kflex's role");
        assert!(
            format!("{err:#}").contains("was not created by kflex"),
            "{err:#}"
        );
        // Nothing of theirs changed: the application still logs in with its own password.
        database::connect(&server, &billing, "billing")
            .await
            .expect("billing's password is unchanged");
        database::connect(&server, &billing, "ledger")
            .await
            .expect("ledger is still billing's");
        // A control plane of another hosting cluster (its own admin account) is not taken over.
        let (_, other_login) = from_secret(&pg, &other_cluster, &[]);
        let theirs = MemorySecrets::new("cp1-system");
        ensure_as(&server, &other_login, &theirs, "cp1")
            .await
            .expect("the other cluster's cp1");
        let ours = MemorySecrets::new("cp1-system");
        let err = ensure_as(&server, &login, &ours, "cp1")
            .await
            .expect_err("another account's role");
        assert!(
            format!("{err:#}")
                .contains("was not created by kflex with the account \"kflex_admin\""),
            "{err:#}"
        );
        connect_with(&server, &theirs, "cp1")
            .await
            .expect("the other cluster's password is unchanged");
    })
    .await;
}

#[tokio::test]
async fn an_external_server_is_verified_and_errors_name_it_never_the_password() {
    crate::within(async move {
        let pg = Postgres::start();
        let account = external_admin(&pg, "kflex_admin").await;
        let address = format!("localhost:{}", pg.port);

        // A wrong password: a clear error naming the server and the account.
        let wrong = Login {
            user: account.user.clone(),
            password: "not-the-password-1234".into(),
        };
        let (server, login) = from_secret(&pg, &wrong, &[]);
        let store = MemorySecrets::new("cp1-system");
        let message = format!(
            "{:#}",
            ensure_as(&server, &login, &store, "cp1")
                .await
                .expect_err("wrong password")
        );
        assert!(
            message.contains(&format!(
                "password authentication failed for user \"kflex_admin\" at PostgreSQL {address}"
            )),
            "{message}"
        );
        assert!(!message.contains("not-the-password"), "{message}");
        assert!(!message.contains(&account.password), "{message}");

        // A certificate from another CA than the Secret's: refused before any password is sent.
        let other = kflex::bootstrap::pki::Authority::generate(
            "other",
            time::OffsetDateTime::now_utc(),
            std::time::Duration::from_secs(3600),
        )
        .expect("CA");
        let (server, login) = from_secret(&pg, &account, &[("ca.crt", other.cert_pem.as_bytes())]);
        let message = format!(
            "{:#}",
            ensure_as(&server, &login, &store, "cp1")
                .await
                .expect_err("unverifiable")
        );
        assert!(
            message.contains(&format!("connecting to PostgreSQL {address} (verify-full)")),
            "{message}"
        );
        assert!(message.contains("certificate"), "{message}");
        assert!(!message.contains(&account.password), "{message}");
        assert!(store.data("kine-datastore").is_none(), "nothing written");

        // By address rather than the certificate's name: verify-full refuses it, verify-ca (the
        // Secret's sslmode) accepts a certificate of the right CA for any name.
        let mut files_host = from_secret(&pg, &account, &[("host", b"127.0.0.1")]);
        assert!(
            ensure_as(&files_host.0, &files_host.1, &store, "cp1")
                .await
                .is_err(),
            "verify-full checks the name"
        );
        files_host = from_secret(
            &pg,
            &account,
            &[("host", b"127.0.0.1"), ("sslmode", b"verify-ca")],
        );
        ensure_as(&files_host.0, &files_host.1, &store, "cp1")
            .await
            .expect("verify-ca checks the CA only");
        assert_eq!(
            text(&store, "sslmode"),
            "verify-ca",
            "kine is told the same"
        );
        assert_eq!(text(&store, "host"), "127.0.0.1");
        // verify-ca still refuses another CA.
        let (server, login) = from_secret(
            &pg,
            &account,
            &[
                ("host", b"127.0.0.1"),
                ("sslmode", b"verify-ca"),
                ("ca.crt", other.cert_pem.as_bytes()),
            ],
        );
        assert!(
            ensure_as(&server, &login, &MemorySecrets::new("cp1-system"), "cp1")
                .await
                .is_err()
        );
    })
    .await;
}
