//! `kflex bootstrap backup create | list | restore`: a k8s control plane's database to and from
//! a backup store. The rendered CronJob `backup-<cp>` runs `create`, Job `restore-<cp>` runs
//! `restore`, and `kflex backup list` runs `list` in a Job of its own.
//!
//! The database login is the control plane's own (Secret `kine-datastore` in `<cp>-system`,
//! read through the API), the store's from flags and a mounted Secret: no secret is on the
//! command line. Each prints what it did on stderr and its result as one line of JSON on
//! stdout, which `kflex backup` reads from the pod's log.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{client, labels, now, report};
use crate::bootstrap::backup::snapshot::{self, DataSink, Target};
use crate::bootstrap::backup::store::{DataWriter, Found, Store, StoreArgs};
use crate::bootstrap::backup::{self, Listed, Manifest};
use crate::bootstrap::database::{self, Login, Server};
use crate::bootstrap::random;
use crate::bootstrap::secrets::{KubeSecrets, SecretData, SecretStore, upsert};

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Takes a backup of a control plane's database now, then keeps only the newest
    /// `--retention` of its backups.
    Create(CreateArgs),
    /// Lists a control plane's backups in a store (one line of JSON on stdout).
    List(ListArgs),
    /// Loads a backup into a new control plane's empty database, then writes the Secret kine
    /// waits for.
    Restore(RestoreArgs),
}

/// Where the control plane's database login is.
#[derive(Debug, Clone, Args)]
pub struct DatastoreArgs {
    /// The control plane's namespace, `<cp>-system`.
    #[arg(long)]
    datastore_namespace: String,
    /// kine's Secret there (keys host, port, user, password, database, sslmode, ca.crt).
    #[arg(long, default_value = kflex_core::render::backup::DATASTORE_SECRET)]
    datastore_secret: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long, value_parser = crate::cli::control_plane_name)]
    control_plane: String,
    #[command(flatten)]
    datastore: DatastoreArgs,
    /// How many of the control plane's backups to keep, this one included.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
    retention: u32,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = crate::cli::control_plane_name)]
    control_plane: String,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The control plane whose database is restored.
    #[arg(long, value_parser = crate::cli::control_plane_name)]
    control_plane: String,
    /// The control plane the backup was taken of.
    #[arg(long, value_parser = crate::cli::control_plane_name)]
    from_control_plane: String,
    /// The backup's name.
    #[arg(long)]
    backup: String,
    #[command(flatten)]
    datastore: DatastoreArgs,
    /// The Secret in the control plane's namespace written once the backup is loaded (kine
    /// waits for it).
    #[arg(long, default_value = kflex_core::render::backup::RESTORE_SECRET)]
    restore_secret: String,
    /// How long to wait for the database Job to write kine's Secret.
    #[arg(long, default_value = "10m", value_parser = crate::bootstrap::duration::parse)]
    wait_for_datastore: Duration,
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    match args.command {
        BackupCommand::Create(args) => create(args).await,
        BackupCommand::List(args) => list(args).await,
        BackupCommand::Restore(args) => restore(args).await,
    }
}

/// Prints `value` as one line of JSON on stdout: the result `kflex backup` reads.
fn result(value: &impl Serialize) -> anyhow::Result<()> {
    use std::io::Write as _;
    let line = serde_json::to_string(value).context("writing the result")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("writing the result")
}

/// The control plane's own database login, from kine's Secret: server, role and database.
pub fn datastore_login(secret: &str, data: &SecretData) -> anyhow::Result<(Server, Login, String)> {
    let text = |key: &str| -> anyhow::Result<String> {
        let bytes = data
            .get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| anyhow::anyhow!("Secret {secret} has no key {key}"))?;
        String::from_utf8(bytes.clone())
            .map_err(|_| anyhow::anyhow!("Secret {secret}: key {key} is not UTF-8 text"))
    };
    let port = text("port")?;
    let port = port
        .parse::<u16>()
        .map_err(|_| anyhow::anyhow!("Secret {secret}: key port is not a port number"))?;
    let sslmode = match data.get("sslmode").filter(|v| !v.is_empty()) {
        None => database::SslMode::VerifyFull,
        Some(_) => text("sslmode")?
            .parse()
            .map_err(|why| anyhow::anyhow!("Secret {secret}: key sslmode: {why}"))?,
    };
    let server = Server {
        host: text("host")?,
        port,
        ca_pem: data
            .get("ca.crt")
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("Secret {secret} has no key ca.crt"))?,
        sslmode,
    };
    let login = Login {
        user: text("user")?,
        password: text("password")?,
    };
    Ok((server, login, text("database")?))
}

async fn read_datastore(
    store: &KubeSecrets,
    name: &str,
) -> anyhow::Result<Option<(Server, Login, String)>> {
    let Some(secret) = store.get(name).await? else {
        return Ok(None);
    };
    let described = format!("{}/{name}", store.namespace());
    datastore_login(&described, &secret.data).map(Some)
}

/// A snapshot's data, written to the store as it is read.
struct Upload<'a> {
    store: &'a Store,
    writer: &'a mut DataWriter,
    name: &'a str,
}

impl DataSink for Upload<'_> {
    async fn write(&mut self, chunk: bytes::Bytes) -> anyhow::Result<()> {
        self.store.write_data(self.writer, &chunk, self.name).await
    }
}

/// What `create` prints.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Created {
    #[serde(flatten)]
    backup: Listed,
    control_plane: String,
    store: String,
    /// Backups removed by retention.
    removed: Vec<String>,
}

/// Takes a backup of the database `client` is connected to into `store`, as `control_plane`'s
/// backup named `name`; returns its manifest.
pub async fn take(
    client: &mut tokio_postgres::Client,
    store: &Store,
    control_plane: &str,
    name: &str,
) -> anyhow::Result<Manifest> {
    if store.exists(control_plane, name).await? {
        anyhow::bail!(
            "backup {name} of {control_plane} exists already in {}; a backup is never overwritten",
            store.describe()
        );
    }
    let started = now();
    let mut writer = store.data_writer(control_plane, name).await?;
    let mut upload = Upload {
        store,
        writer: &mut writer,
        name,
    };
    let taken = match snapshot::take(client, &mut upload).await {
        Ok(taken) => taken,
        Err(err) => {
            store.abort_data(writer).await;
            return Err(err.context(format!("backup {name} of {control_plane}")));
        }
    };
    store.finish_data(writer, name).await?;
    let manifest = Manifest {
        kind: backup::MANIFEST_KIND.to_owned(),
        format: backup::FORMAT,
        name: name.to_owned(),
        control_plane: control_plane.to_owned(),
        control_plane_type: "k8s".to_owned(),
        kflex_version: env!("CARGO_PKG_VERSION").to_owned(),
        kine_schema: backup::KINE_SCHEMA,
        columns: taken.columns,
        rows: taken.rows,
        revision: taken.revision,
        data: backup::DATA_OBJECT.to_owned(),
        bytes: taken.bytes,
        sha256: taken.sha256,
        time: backup::timestamp(started),
    };
    store.put_manifest(&manifest).await?;
    Ok(manifest)
}

/// Removes `control_plane`'s kflex backups beyond the newest `keep` (never `except`), and
/// returns their names; anything else under its prefix is left alone, with a warning.
pub async fn apply_retention(
    store: &Store,
    control_plane: &str,
    keep: usize,
    except: &str,
) -> anyhow::Result<Vec<String>> {
    let mut backups = Vec::new();
    for found in store.list(control_plane).await? {
        match found {
            Found::Backup(manifest) => backups.push(manifest),
            Found::NotABackup { name, why } => {
                eprintln!(
                    "warning: {}/{name} in {} is left alone: {why}",
                    control_plane,
                    store.describe()
                );
            }
        }
    }
    let mut removed = Vec::new();
    for name in backup::beyond_retention(&backups, keep) {
        if name == except {
            continue;
        }
        store.remove(control_plane, &name).await?;
        eprintln!("backup {name} of {control_plane}: removed (retention {keep})");
        removed.push(name);
    }
    Ok(removed)
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let store = args.store.open()?;
    let secrets = KubeSecrets::new(client().await?, &args.datastore.datastore_namespace);
    let Some((server, login, database)) =
        read_datastore(&secrets, &args.datastore.datastore_secret).await?
    else {
        anyhow::bail!(
            "Secret {}/{} does not exist yet: the control plane's database Job has not run, so \
             there is nothing to back up",
            args.datastore.datastore_namespace,
            args.datastore.datastore_secret
        );
    };
    let mut client = database::connect(&server, &login, &database)
        .await
        .map_err(anyhow::Error::from)?;
    let name = backup::new_name(now(), &random::password(6)?.to_ascii_lowercase());
    let manifest = take(&mut client, &store, &args.control_plane, &name).await?;
    eprintln!(
        "backup {name} of {}: {} rows (revision {}), {} bytes, sha256 {}, to {}",
        args.control_plane,
        manifest.rows,
        manifest.revision,
        manifest.bytes,
        manifest.sha256,
        store.describe()
    );
    let removed = apply_retention(
        &store,
        &args.control_plane,
        usize::try_from(args.retention).unwrap_or(usize::MAX),
        &name,
    )
    .await?;
    result(&Created {
        backup: Listed::from(&manifest),
        control_plane: args.control_plane,
        store: store.name().to_owned(),
        removed,
    })
}

/// What `list` prints.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Listing {
    control_plane: String,
    store: String,
    backups: Vec<Listed>,
}

/// `control_plane`'s kflex backups in `store`, newest last.
pub async fn backups(store: &Store, control_plane: &str) -> anyhow::Result<Vec<Listed>> {
    let mut listed = Vec::new();
    for found in store.list(control_plane).await? {
        match found {
            Found::Backup(manifest) => listed.push(Listed::from(&manifest)),
            Found::NotABackup { name, why } => {
                eprintln!("warning: {control_plane}/{name} is not listed: {why}");
            }
        }
    }
    listed.sort_by(|a, b| (&a.time, &a.name).cmp(&(&b.time, &b.name)));
    Ok(listed)
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let store = args.store.open()?;
    let backups = backups(&store, &args.control_plane).await?;
    eprintln!(
        "{} backups of {} in {}",
        backups.len(),
        args.control_plane,
        store.describe()
    );
    result(&Listing {
        control_plane: args.control_plane,
        store: store.name().to_owned(),
        backups,
    })
}

/// Checks `from`'s backup `name` in `store` — its manifest, then its data against the
/// manifest — without loading anything; returns the manifest.
pub async fn verify(store: &Store, from: &str, name: &str) -> anyhow::Result<Manifest> {
    let refuse =
        |why: String| anyhow::anyhow!("backup {name} of {from} in {}: {why}", store.describe());
    if let Some(why) = backup::name_problem(name) {
        return Err(refuse(why));
    }
    let Some(manifest) = store.manifest(from, name).await? else {
        return Err(refuse(
            "there is no such backup (kflex backup list shows the backups)".to_owned(),
        ));
    };
    if let Some(why) = manifest
        .foreign(from, name)
        .or_else(|| manifest.unrestorable())
    {
        return Err(refuse(why));
    }
    let (bytes, sha256) = snapshot::digest(store.data(from, name).await?).await?;
    if let Some(why) = snapshot::mismatch(&manifest, bytes, &sha256) {
        return Err(refuse(why));
    }
    Ok(manifest)
}

/// What a restore did.
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Restored {
    /// Loaded now, with this many rows.
    Loaded(u64),
    /// The database already held this backup (an earlier run loaded it).
    AlreadyThere,
}

/// Loads `manifest`'s backup from `store` into the database of `client`, which must be empty
/// (or hold exactly this backup, loaded by an earlier run).
pub async fn load(
    client: &mut tokio_postgres::Client,
    store: &Store,
    manifest: &Manifest,
    database: &str,
) -> anyhow::Result<Restored> {
    match snapshot::target(client).await? {
        Target::Empty => {}
        Target::RestoredFrom { backup } if backup == manifest.name => {
            return Ok(Restored::AlreadyThere);
        }
        Target::RestoredFrom { backup } => anyhow::bail!(
            "database {database:?} already holds backup {backup}; a restore loads only into a \
             new, empty database"
        ),
        Target::HasData { rows } => anyhow::bail!(
            "database {database:?} already has data (table kine with {rows} rows); a restore \
             loads only into a new, empty database, so kflex does not overwrite it"
        ),
    }
    let data = store.data(&manifest.control_plane, &manifest.name).await?;
    let rows = snapshot::load(client, manifest, data).await?;
    Ok(Restored::Loaded(rows))
}

async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let secrets = KubeSecrets::new(client().await?, &args.datastore.datastore_namespace);
    let namespace = args.datastore.datastore_namespace.clone();
    let key = kflex_core::render::backup::RESTORE_SECRET_KEY;
    if let Some(done) = secrets.get(&args.restore_secret).await? {
        let restored = done
            .data
            .get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        if restored == args.backup {
            eprintln!(
                "backup {} of {}: already restored into {} (Secret {namespace}/{} says so)",
                args.backup, args.from_control_plane, args.control_plane, args.restore_secret
            );
            return result(&Restored::AlreadyThere);
        }
        anyhow::bail!(
            "control plane {} was restored from backup {restored:?} already (Secret \
             {namespace}/{}); spec.restoreFrom acts only when the control plane is created",
            args.control_plane,
            args.restore_secret
        );
    }
    let store = args.store.open()?;
    let manifest = verify(&store, &args.from_control_plane, &args.backup).await?;
    eprintln!(
        "backup {} of {}: {} rows, {} bytes, sha256 {} — matches its manifest",
        manifest.name, manifest.control_plane, manifest.rows, manifest.bytes, manifest.sha256
    );
    let deadline = tokio::time::Instant::now() + args.wait_for_datastore;
    let (server, login, database) = loop {
        if let Some(found) = read_datastore(&secrets, &args.datastore.datastore_secret).await? {
            break found;
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "Secret {namespace}/{} did not appear within {:?}: the control plane's database \
                 Job has not created its database",
                args.datastore.datastore_secret,
                args.wait_for_datastore
            );
        }
        eprintln!(
            "waiting for Secret {namespace}/{} (the control plane's database Job writes it)",
            args.datastore.datastore_secret
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    let mut client = database::connect(&server, &login, &database)
        .await
        .map_err(anyhow::Error::from)?;
    let restored = load(&mut client, &store, &manifest, &database).await?;
    match &restored {
        Restored::Loaded(rows) => eprintln!(
            "database {database:?}: {rows} rows of backup {} of {} loaded",
            manifest.name, manifest.control_plane
        ),
        Restored::AlreadyThere => eprintln!(
            "database {database:?}: holds backup {} already",
            manifest.name
        ),
    }
    let wanted: SecretData = BTreeMap::from([
        (key.to_owned(), manifest.name.clone().into_bytes()),
        (
            "controlPlane".to_owned(),
            manifest.control_plane.clone().into_bytes(),
        ),
        ("sha256".to_owned(), manifest.sha256.clone().into_bytes()),
    ]);
    let outcome = upsert(
        &secrets,
        &args.restore_secret,
        &labels(Some(&args.control_plane)),
        |current| Ok((current != Some(&wanted)).then(|| wanted.clone())),
    )
    .await?;
    report("Secret", &namespace, &args.restore_secret, outcome);
    result(&restored)
}
