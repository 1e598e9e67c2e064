//! `kflex bootstrap database`: a control plane's own role and database in the shared
//! PostgreSQL, and the Secret kine connects with.
//!
//! The admin connects over TLS, verifying the server against the CA (`verify-full`). The role
//! gets a random password (sent as a SCRAM verifier, so the server never sees it in clear), owns
//! its database, and PUBLIC loses every privilege on that database, so no other control plane's
//! role can connect to it. The Secret is the password's home: when it holds one, the role is
//! made to match it; when it does not, a new one is set. `--drop` removes database and role.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio_postgres::error::SqlState;

use super::random;
use super::secrets::{Outcome, SecretData, SecretStore, upsert};

/// Length of generated role passwords (letters and digits: about 190 bits).
const PASSWORD_LENGTH: usize = 32;

/// How to reach the server and whom to trust.
#[derive(Clone, Debug)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// PEM certificates of the CAs the server's certificate must chain to.
    pub ca_pem: Vec<u8>,
}

/// A login. Its Debug form leaves the password out.
pub struct Login {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("password authentication failed for {0:?}")]
    BadPassword(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// `name` as an SQL identifier: always quoted, so any control-plane name (keywords, digits,
/// `_`) stays one identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn tls(server: &Server) -> anyhow::Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&server.ca_pem) {
        let cert = cert.context("the CA file holds an invalid PEM certificate")?;
        roots
            .add(cert)
            .context("the CA file holds a certificate rustls refuses")?;
    }
    if roots.is_empty() {
        bail!("the CA file holds no PEM certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Connects as `login` to `database`; TLS is required and the server's name and certificate
/// verified.
pub async fn connect(
    server: &Server,
    login: &Login,
    database: &str,
) -> Result<tokio_postgres::Client, ConnectError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&server.host)
        .port(server.port)
        .user(&login.user)
        .password(&login.password)
        .dbname(database)
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .application_name("kflex-bootstrap")
        .connect_timeout(std::time::Duration::from_secs(10));
    let where_ = format!(
        "PostgreSQL {}:{} as {:?}, database {database:?}",
        server.host, server.port, login.user
    );
    let (client, connection) = match config.connect(tls(server)?).await {
        Ok(pair) => pair,
        Err(err) if err.code() == Some(&SqlState::INVALID_PASSWORD) => {
            return Err(ConnectError::BadPassword(login.user.clone()));
        }
        Err(err) => {
            return Err(anyhow::Error::new(err)
                .context(format!("connecting to {where_}"))
                .into());
        }
    };
    tokio::spawn(async move {
        // The connection ends when the client is dropped; an error then is reported by the
        // next query on the client.
        let _ = connection.await;
    });
    Ok(client)
}

/// The control plane's database and role.
#[derive(Clone, Debug)]
pub struct Target {
    pub database: String,
    pub role: String,
}

/// What `ensure` did, for the log (never the password).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub role_created: bool,
    pub database_created: bool,
    pub password_set: bool,
    pub secret: Option<Outcome>,
}

async fn exists(client: &tokio_postgres::Client, sql: &str, name: &str) -> anyhow::Result<bool> {
    Ok(client
        .query_opt(sql, &[&name])
        .await
        .with_context(|| format!("looking up {name:?}"))?
        .is_some())
}

/// A failed statement as `what: message (SQLSTATE)`; never the statement, which may hold a
/// password verifier.
fn sql_error(err: tokio_postgres::Error, what: &str) -> anyhow::Error {
    let detail = err
        .as_db_error()
        .map(|db| format!("{} ({})", db.message(), db.code().code()))
        .unwrap_or_else(|| err.to_string());
    anyhow::anyhow!("{what}: {detail}")
}

/// Creates `target`'s role and database if absent, confines the database to the role, and
/// writes `secret_name` (in `store`) with what kine needs: host, port, user, password,
/// database and ca.crt.
pub async fn ensure<S: SecretStore>(
    server: &Server,
    admin: &Login,
    target: &Target,
    store: &S,
    secret_name: &str,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<Report> {
    let client = connect(server, admin, "postgres").await?;
    let role = quote_identifier(&target.role);
    let database = quote_identifier(&target.database);
    let mut report = Report::default();
    let stored = store
        .get(secret_name)
        .await?
        .and_then(|secret| secret.data.get("password").cloned())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|password| !password.is_empty());
    let password = match &stored {
        Some(password) => password.clone(),
        None => random::password(PASSWORD_LENGTH)?,
    };
    let verifier = || {
        quote_literal(&postgres_protocol::password::scram_sha_256(
            password.as_bytes(),
        ))
    };

    let mut role_exists = exists(
        &client,
        "SELECT 1 FROM pg_roles WHERE rolname = $1",
        &target.role,
    )
    .await?;
    if !role_exists {
        let statement = format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}",
            verifier()
        );
        match client.batch_execute(&statement).await {
            Ok(()) => {
                report.role_created = true;
                report.password_set = true;
            }
            // Another run created it meanwhile: go on as if it had existed.
            Err(err) if err.code() == Some(&SqlState::DUPLICATE_OBJECT) => role_exists = true,
            Err(err) => return Err(sql_error(err, &format!("creating role {role}"))),
        }
    }

    let owner = client
        .query_opt(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
            &[&target.database],
        )
        .await
        .map_err(|err| sql_error(err, "looking up the database"))?
        .map(|row| row.get::<_, String>(0));
    match owner {
        None => {
            let statement = format!("CREATE DATABASE {database} OWNER {role}");
            match client.batch_execute(&statement).await {
                Ok(()) => report.database_created = true,
                Err(err) if err.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
                Err(err) => return Err(sql_error(err, &format!("creating database {database}"))),
            }
        }
        Some(owner) if owner != target.role => {
            // A database made before kflex (KubeFlex's superuser DSN): hand it to its role.
            client
                .batch_execute(&format!("ALTER DATABASE {database} OWNER TO {role}"))
                .await
                .map_err(|err| sql_error(err, &format!("giving database {database} to {role}")))?;
        }
        Some(_) => {}
    }
    // New databases let PUBLIC connect; only the owner may here.
    client
        .batch_execute(&format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC"))
        .await
        .map_err(|err| sql_error(err, &format!("confining database {database} to {role}")))?;

    if role_exists {
        // The Secret decides the password: keep it if the role accepts it, else set it.
        let accepted = match &stored {
            Some(password) => {
                let login = Login {
                    user: target.role.clone(),
                    password: password.clone(),
                };
                match connect(server, &login, &target.database).await {
                    Ok(_) => true,
                    Err(ConnectError::BadPassword(_)) => false,
                    Err(ConnectError::Other(err)) => {
                        return Err(err.context(format!("checking the password of role {role}")));
                    }
                }
            }
            None => false,
        };
        if !accepted {
            client
                .batch_execute(&format!("ALTER ROLE {role} PASSWORD {}", verifier()))
                .await
                .map_err(|err| sql_error(err, &format!("setting the password of role {role}")))?;
            report.password_set = true;
        }
    }

    let wanted: SecretData = [
        ("host", server.host.clone().into_bytes()),
        ("port", server.port.to_string().into_bytes()),
        ("user", target.role.clone().into_bytes()),
        ("password", password.clone().into_bytes()),
        ("database", target.database.clone().into_bytes()),
        ("ca.crt", server.ca_pem.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let outcome = upsert(store, secret_name, labels, |current| {
        Ok((current != Some(&wanted)).then(|| wanted.clone()))
    })
    .await?;
    report.secret = Some(outcome);
    Ok(report)
}

/// What `drop` removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub database: bool,
    pub role: bool,
}

/// Removes `target`'s database (closing its connections) and role, if they exist.
pub async fn drop(server: &Server, admin: &Login, target: &Target) -> anyhow::Result<Dropped> {
    let client = connect(server, admin, "postgres").await?;
    let database_existed = exists(
        &client,
        "SELECT 1 FROM pg_database WHERE datname = $1",
        &target.database,
    )
    .await?;
    let role_existed = exists(
        &client,
        "SELECT 1 FROM pg_roles WHERE rolname = $1",
        &target.role,
    )
    .await?;
    let database = quote_identifier(&target.database);
    let role = quote_identifier(&target.role);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await
        .map_err(|err| sql_error(err, &format!("dropping database {database}")))?;
    client
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await
        .map_err(|err| sql_error(err, &format!("dropping role {role}")))?;
    Ok(Dropped {
        database: database_existed,
        role: role_existed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted_and_escaped() {
        assert_eq!(quote_identifier("cp_1"), "\"cp_1\"");
        assert_eq!(quote_identifier("select"), "\"select\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn a_login_never_shows_its_password() {
        let login = Login {
            user: "postgres".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{login:?}").contains("s3cret"));
    }
}
