//! `kflex bootstrap database`: a control plane's own role and database in a PostgreSQL server —
//! the shared one (kflex's in `kubeflex-system`, or an existing server of the administrator's),
//! or the control plane's dedicated one — and the Secret kine connects with.
//!
//! The admin connects over TLS, verifying the server against the CA (`verify-full`, or
//! `verify-ca` where an existing server's Secret says so). The role gets a random password (sent
//! as a SCRAM verifier, so the server never sees it in clear), owns its database, and PUBLIC
//! loses every privilege on that database, so no other control plane's role can connect to it.
//! The Secret is the password's home: when it holds one, the role is made to match it; when it
//! does not, a new one is set. `--drop` removes database and role.
//!
//! The admin need not be a superuser: an account with CREATEROLE and CREATEDB is enough (it is
//! made a member of each role it creates, which PostgreSQL requires to create, hand over and drop
//! that role's database). On a server kflex does not own — its admin is not a superuser — roles
//! and databases there may belong to others, so kflex touches only the roles it created itself
//! (marked by a comment naming the admin account) and their databases: a control plane named
//! after someone else's role or database is refused, never given it.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
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
    /// How the server's certificate is checked.
    pub sslmode: SslMode,
}

impl Server {
    /// `host:port`, as messages name the server.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How the server's certificate is checked: always against the CA; with `VerifyFull` (the
/// default, libpq's name) also for the host name. Weaker modes are refused: a control plane's
/// data never goes to a server that was not verified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    #[default]
    VerifyFull,
    VerifyCa,
}

impl SslMode {
    /// libpq's name, as kine reads it from `PGSSLMODE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyFull => "verify-full",
            Self::VerifyCa => "verify-ca",
        }
    }
}

impl std::str::FromStr for SslMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "verify-full" => Ok(Self::VerifyFull),
            "verify-ca" => Ok(Self::VerifyCa),
            "disable" | "allow" | "prefer" | "require" => Err(format!(
                "sslmode {text} does not verify the server's certificate; kflex accepts \
                 verify-full (the default) or verify-ca"
            )),
            other => Err(format!(
                "{:?} is not an sslmode; kflex accepts verify-full (the default) or verify-ca",
                kflex_core::text::escape_unsafe(other)
            )),
        }
    }
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
    #[error("password authentication failed for user {user:?} at PostgreSQL {server}")]
    BadPassword { user: String, server: String },
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match server.sslmode {
        SslMode::VerifyFull => builder.with_root_certificates(roots).with_no_client_auth(),
        SslMode::VerifyCa => {
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .context("a certificate verifier for the CA")?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
                .with_no_client_auth()
        }
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `verify-ca`: the certificate must chain to the CA and be valid, for whatever name. The
/// WebPKI verifier checks the chain before the name, so a name error means the chain was good.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
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
        "PostgreSQL {} ({}) as {:?}, database {database:?}",
        server.address(),
        server.sslmode.as_str(),
        login.user
    );
    let (client, connection) = match config.connect(tls(server)?).await {
        Ok(pair) => pair,
        Err(err) if err.code() == Some(&SqlState::INVALID_PASSWORD) => {
            return Err(ConnectError::BadPassword {
                user: login.user.clone(),
                server: server.address(),
            });
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

/// A failed statement as `what: message (SQLSTATE)`; never the statement, which may hold a
/// password verifier.
fn sql_error(err: tokio_postgres::Error, what: &str) -> anyhow::Error {
    let detail = err
        .as_db_error()
        .map(|db| format!("{} ({})", db.message(), db.code().code()))
        .unwrap_or_else(|| err.to_string());
    anyhow::anyhow!("{what}: {detail}")
}

/// What a connected admin may do on the server: everything on kflex's own (a superuser), or
/// only what it created itself on someone else's.
struct Admin<'a> {
    client: tokio_postgres::Client,
    login: &'a Login,
    server: &'a Server,
    superuser: bool,
}

/// An existing role, as far as kflex cares.
struct RoleFacts {
    /// Attributes a control plane's role must not have.
    privileges: Vec<&'static str>,
    comment: Option<String>,
}

impl<'a> Admin<'a> {
    async fn connect(server: &'a Server, login: &'a Login) -> anyhow::Result<Self> {
        let client = connect(server, login, "postgres").await?;
        let superuser = client
            .query_one(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(|err| sql_error(err, "looking up the admin account"))?
            .get::<_, bool>(0);
        Ok(Self {
            client,
            login,
            server,
            superuser,
        })
    }

    /// The comment that marks a role as one this admin created for a control plane. Naming the
    /// account keeps two hosting clusters with their own accounts on one server from taking
    /// each other's roles.
    fn marker(&self) -> String {
        format!(
            "kflex: the role of a control plane's database, managed by {:?}",
            self.login.user
        )
    }

    async fn role(&self, role: &str) -> anyhow::Result<Option<RoleFacts>> {
        let row = self
            .client
            .query_opt(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, \
                 shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
                &[&role],
            )
            .await
            .map_err(|err| {
                sql_error(err, &format!("looking up role {}", quote_identifier(role)))
            })?;
        Ok(row.map(|row| {
            let privileges = [
                "SUPERUSER",
                "CREATEROLE",
                "CREATEDB",
                "REPLICATION",
                "BYPASSRLS",
            ]
            .into_iter()
            .enumerate()
            .filter(|(index, _)| row.get::<_, bool>(*index))
            .map(|(_, name)| name)
            .collect();
            RoleFacts {
                privileges,
                comment: row.get(5),
            }
        }))
    }

    /// Refuses `role` (which exists) when a control plane must not be given it.
    fn refuse_foreign_role(&self, role: &str, facts: &RoleFacts) -> anyhow::Result<()> {
        let quoted = quote_identifier(role);
        if !facts.privileges.is_empty() {
            bail!(
                "role {quoted} on PostgreSQL {} has {}: a control plane's role has no such \
                 attribute, so kflex does not use it (rename the control plane, or drop the role)",
                self.server.address(),
                facts.privileges.join(", ")
            );
        }
        if !self.superuser && facts.comment.as_deref() != Some(self.marker().as_str()) {
            bail!(
                "role {quoted} exists on PostgreSQL {} and was not created by kflex with the \
                 account {:?}: on a server kflex does not own, it touches only the roles it \
                 created (rename the control plane, or drop the role if it is a leftover)",
                self.server.address(),
                self.login.user
            );
        }
        Ok(())
    }

    /// Who owns `database`, if it exists.
    async fn owner(&self, database: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .client
            .query_opt(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                &[&database],
            )
            .await
            .map_err(|err| sql_error(err, "looking up the database"))?
            .map(|row| row.get::<_, String>(0)))
    }

    /// Refuses `database`, owned by `owner`, when it is not `role`'s and may not be handed to
    /// it: on a server kflex owns, a database made before kflex (KubeFlex connected as the
    /// superuser) is handed over; elsewhere it is someone else's.
    fn refuse_foreign_database(
        &self,
        database: &str,
        owner: &str,
        role: &str,
    ) -> anyhow::Result<()> {
        if owner != role && !self.superuser {
            bail!(
                "database {} exists on PostgreSQL {}, owned by {}, not by the control plane's \
                 role {}: on a server kflex does not own, it touches only the databases of the \
                 roles it created",
                quote_identifier(database),
                self.server.address(),
                quote_identifier(owner),
                quote_identifier(role)
            );
        }
        Ok(())
    }

    /// A superuser may do anything with a role's database; an account with CREATEROLE must be
    /// a member of the role to create, hand over, confine or drop the database it owns, and to
    /// close its connections.
    async fn act_as(&self, role: &str) -> anyhow::Result<()> {
        if self.superuser {
            return Ok(());
        }
        let role = quote_identifier(role);
        self.client
            .batch_execute(&format!("GRANT {role} TO CURRENT_USER"))
            .await
            .map_err(|err| {
                sql_error(
                    err,
                    &format!(
                        "making the admin account {:?} a member of {role} (it needs CREATEROLE)",
                        self.login.user
                    ),
                )
            })
    }
}

/// Refuses a control plane whose role would be the admin account itself.
fn refuse_admin_role(server: &Server, admin: &Login, target: &Target) -> anyhow::Result<()> {
    if target.role == admin.user {
        bail!(
            "the control plane's role {} is the account kflex connects to PostgreSQL {} as; \
             rename the control plane or use another account",
            quote_identifier(&target.role),
            server.address()
        );
    }
    Ok(())
}

/// Creates `target`'s role and database if absent, confines the database to the role, and
/// writes `secret_name` (in `store`) with what kine needs: host, port, user, password,
/// database, sslmode and ca.crt.
pub async fn ensure<S: SecretStore>(
    server: &Server,
    admin: &Login,
    target: &Target,
    store: &S,
    secret_name: &str,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<Report> {
    refuse_admin_role(server, admin, target)?;
    let admin = Admin::connect(server, admin).await?;
    let client = &admin.client;
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

    // Someone else's database is refused before anything is created.
    let owner = admin.owner(&target.database).await?;
    if let Some(owner) = &owner {
        admin.refuse_foreign_database(&target.database, owner, &target.role)?;
    }
    let mut facts = admin.role(&target.role).await?;
    if let Some(facts) = &facts {
        admin.refuse_foreign_role(&target.role, facts)?;
    } else {
        let statement = format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {}",
            verifier()
        );
        match client.batch_execute(&statement).await {
            Ok(()) => {
                report.role_created = true;
                report.password_set = true;
            }
            // Another run created it meanwhile: judge it as one that existed.
            Err(err) if err.code() == Some(&SqlState::DUPLICATE_OBJECT) => {
                facts = admin.role(&target.role).await?;
            }
            Err(err) => return Err(sql_error(err, &format!("creating role {role}"))),
        }
    }
    let role_existed = facts.is_some();
    if let Some(facts) = &facts {
        // Checked again: another run may have created it meanwhile.
        admin.refuse_foreign_role(&target.role, facts)?;
    }
    let marker = admin.marker();
    if facts.and_then(|f| f.comment).as_deref() != Some(marker.as_str()) {
        client
            .batch_execute(&format!(
                "COMMENT ON ROLE {role} IS {}",
                quote_literal(&marker)
            ))
            .await
            .map_err(|err| sql_error(err, &format!("marking role {role} as kflex's")))?;
    }
    admin.act_as(&target.role).await?;

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

    if role_existed {
        // The Secret decides the password: keep it if the role accepts it, else set it.
        let accepted = match &stored {
            Some(password) => {
                let login = Login {
                    user: target.role.clone(),
                    password: password.clone(),
                };
                match connect(server, &login, &target.database).await {
                    Ok(_) => true,
                    Err(ConnectError::BadPassword { .. }) => false,
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
        ("sslmode", server.sslmode.as_str().as_bytes().to_vec()),
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

/// Removes `target`'s database (closing its connections) and role, if they exist — on a server
/// kflex does not own, only if kflex created them.
pub async fn drop(server: &Server, admin: &Login, target: &Target) -> anyhow::Result<Dropped> {
    refuse_admin_role(server, admin, target)?;
    let admin = Admin::connect(server, admin).await?;
    let facts = admin.role(&target.role).await?;
    if let Some(facts) = &facts {
        admin.refuse_foreign_role(&target.role, facts)?;
    }
    let owner = admin.owner(&target.database).await?;
    if let Some(owner) = &owner {
        admin.refuse_foreign_database(&target.database, owner, &target.role)?;
    }
    if facts.is_some() {
        admin.act_as(&target.role).await?;
    }
    let database = quote_identifier(&target.database);
    let role = quote_identifier(&target.role);
    admin
        .client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await
        .map_err(|err| sql_error(err, &format!("dropping database {database}")))?;
    admin
        .client
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await
        .map_err(|err| sql_error(err, &format!("dropping role {role}")))?;
    Ok(Dropped {
        database: owner.is_some(),
        role: facts.is_some(),
    })
}

/// The server and admin account of an existing PostgreSQL, from the files of its Secret (keys
/// `host`, `port`, `username`, `password`, optional `sslmode` and `ca.crt`) as a volume mounts
/// them; `system_roots` gives the CAs to trust when there is no `ca.crt`. Errors name the key,
/// never a value that may be the password.
pub fn external_server(
    secret: &str,
    files: &BTreeMap<String, Vec<u8>>,
    system_roots: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(Server, Login)> {
    let text = |key: &str| -> anyhow::Result<Option<String>> {
        let Some(bytes) = files.get(key) else {
            return Ok(None);
        };
        let value = String::from_utf8(bytes.clone())
            .map_err(|_| anyhow::anyhow!("Secret {secret}: key {key} is not UTF-8 text"))?;
        Ok(Some(value.trim_end_matches(['\n', '\r']).to_owned()))
    };
    let required = |key: &str| -> anyhow::Result<String> {
        text(key)?
            .filter(|value| !value.is_empty())
            .ok_or_else(|| anyhow::anyhow!("Secret {secret}: key {key} is missing or empty"))
    };
    let host = required("host")?;
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        bail!(
            "Secret {secret}: key host must be a DNS name or an IP address, got {:?}",
            kflex_core::text::escape_unsafe(&host)
        );
    }
    let port_text = required("port")?;
    let port = port_text
        .parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "Secret {secret}: key port must be a port number, got {:?}",
                kflex_core::text::escape_unsafe(&port_text)
            )
        })?;
    let user = required("username")?;
    let password = required("password")?;
    let sslmode = match text("sslmode")?.filter(|mode| !mode.is_empty()) {
        None => SslMode::VerifyFull,
        Some(mode) => mode
            .parse()
            .map_err(|reason| anyhow::anyhow!("Secret {secret}: key sslmode: {reason}"))?,
    };
    let ca_pem = match files.get("ca.crt").filter(|ca| !ca.is_empty()) {
        Some(ca) => ca.clone(),
        None => system_roots().with_context(|| {
            format!(
                "Secret {secret} has no ca.crt, so PostgreSQL {host}:{port} must present a \
                 certificate of a CA the system trusts"
            )
        })?,
    };
    Ok((
        Server {
            host,
            port,
            ca_pem,
            sslmode,
        },
        Login { user, password },
    ))
}

/// The CAs the system trusts (the kflex image's bundle), as PEM: what the server is verified
/// with, and what kine is given, when an existing server's Secret has no `ca.crt`.
pub fn system_roots_pem() -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        bail!("the system's CA certificates could not be read: {why}");
    }
    let mut pem = String::new();
    for cert in &found.certs {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    Ok(pem.into_bytes())
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

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn an_external_server_is_read_from_its_secret() {
        let (server, login) = external_server(
            "pg-admin",
            &files(&[
                ("host", "db.example.com\n"),
                ("port", "5433"),
                ("username", "kflex"),
                ("password", "s3cret\n"),
                ("ca.crt", CA),
            ]),
            || bail!("not needed"),
        )
        .unwrap();
        assert_eq!(server.address(), "db.example.com:5433");
        assert_eq!(server.sslmode, SslMode::VerifyFull, "the default");
        assert_eq!(server.ca_pem, CA.as_bytes());
        assert_eq!(
            (login.user.as_str(), login.password.as_str()),
            ("kflex", "s3cret")
        );
        let (server, _) = external_server(
            "pg-admin",
            &files(&[
                ("host", "10.0.0.5"),
                ("port", "5432"),
                ("username", "kflex"),
                ("password", "x"),
                ("sslmode", "verify-ca"),
            ]),
            || Ok(b"system roots".to_vec()),
        )
        .unwrap();
        assert_eq!(server.sslmode, SslMode::VerifyCa);
        assert_eq!(
            server.ca_pem, b"system roots",
            "no ca.crt: the system's CAs"
        );
    }

    #[test]
    fn a_bad_secret_names_the_key_and_never_the_password() {
        let base = [
            ("host", "db"),
            ("port", "5432"),
            ("username", "kflex"),
            ("password", "hunter2-do-not-print"),
            ("ca.crt", CA),
        ];
        for (key, value, says) in [
            ("port", "http", "key port must be a port number"),
            ("port", "0", "key port must be a port number"),
            ("host", "db /x", "key host must be"),
            (
                "sslmode",
                "require",
                "does not verify the server's certificate",
            ),
            (
                "sslmode",
                "disable",
                "does not verify the server's certificate",
            ),
            ("sslmode", "verify_full", "is not an sslmode"),
            ("username", "", "key username is missing or empty"),
            ("password", "", "key password is missing or empty"),
        ] {
            let mut given = files(&base);
            given.insert(key.to_owned(), value.as_bytes().to_vec());
            let err = external_server("pg-admin", &given, || bail!("no roots"))
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(err.contains("Secret pg-admin"), "{key}={value}: {err}");
            assert!(err.contains(says), "{key}={value}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let mut missing = files(&base);
        missing.remove("host");
        let err = external_server("pg-admin", &missing, || bail!("no roots")).unwrap_err();
        assert!(err.to_string().contains("key host is missing"), "{err}");
    }

    #[test]
    fn only_verifying_ssl_modes_are_accepted() {
        assert_eq!("verify-full".parse(), Ok(SslMode::VerifyFull));
        assert_eq!("verify-ca".parse(), Ok(SslMode::VerifyCa));
        for weak in ["disable", "allow", "prefer", "require"] {
            assert!(weak.parse::<SslMode>().is_err(), "{weak}");
        }
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
