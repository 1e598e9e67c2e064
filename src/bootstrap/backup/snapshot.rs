//! Reading a control plane's kine table out of PostgreSQL, and loading it into a new database.
//!
//! Both connect as the control plane's own role (the login kine uses, from `kine-datastore`),
//! never as an administrator: that role owns its database and can reach no other.
//!
//! A snapshot is one `COPY … TO STDOUT (FORMAT binary)` inside a repeatable-read, read-only
//! transaction: every row it returns is from one moment, so no revision is torn (kine writes a
//! revision in one transaction). Columns are cast to kine schema 1's types, so a table created
//! by an older kine (integer ids, varchar names) gives the same data. A load creates the table
//! as kine does, copies the data in with `COPY … FROM STDIN (FORMAT binary)`, checks the row
//! count, size and sha256 against the manifest, moves kine's id sequence past the highest
//! revision, adds the unique index kine's correctness depends on, marks the table with the
//! backup it came from, and commits — all in one transaction, so a load that fails leaves the
//! database as empty as it was.

use anyhow::Context as _;
use bytes::Bytes;
use futures::{SinkExt as _, Stream, StreamExt as _};
use sha2::{Digest as _, Sha256};
use tokio_postgres::{Client, IsolationLevel};

use super::{KINE_COLUMNS, KINE_SCHEMA, Manifest, hex};

/// What a snapshot read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    pub rows: u64,
    pub revision: i64,
    pub bytes: u64,
    pub sha256: String,
    pub columns: Vec<String>,
}

/// Where a snapshot's data goes, chunk by chunk.
pub trait DataSink {
    fn write(&mut self, chunk: Bytes) -> impl Future<Output = anyhow::Result<()>>;
}

fn sql_error(what: &str, err: &tokio_postgres::Error) -> anyhow::Error {
    let detail = err
        .as_db_error()
        .map(|db| format!("{} ({})", db.message(), db.code().code()))
        .unwrap_or_else(|| err.to_string());
    anyhow::anyhow!("{what}: {detail}")
}

/// The columns of table `kine` in the connection's schema, in order; `None` if there is none.
async fn kine_columns(
    client: &impl tokio_postgres::GenericClient,
) -> anyhow::Result<Option<Vec<String>>> {
    let rows = client
        .query(
            "SELECT a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             WHERE c.oid = to_regclass('kine') AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[],
        )
        .await
        .map_err(|err| sql_error("reading the columns of table kine", &err))?;
    Ok((!rows.is_empty()).then(|| rows.iter().map(|row| row.get(0)).collect()))
}

/// Reads every row of the kine table, consistently, into `sink`.
pub async fn take(client: &mut Client, sink: &mut impl DataSink) -> anyhow::Result<Taken> {
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|err| sql_error("starting a repeatable-read transaction", &err))?;
    let Some(columns) = kine_columns(&transaction).await? else {
        anyhow::bail!(
            "the database has no table kine: kine has not started on it yet, so there is nothing \
             to back up"
        );
    };
    let mut expected: Vec<&str> = KINE_COLUMNS.iter().map(|(name, _)| *name).collect();
    let mut found: Vec<&str> = columns.iter().map(String::as_str).collect();
    expected.sort_unstable();
    found.sort_unstable();
    if found != expected {
        anyhow::bail!(
            "table kine has the columns {columns:?}; this kflex knows kine schema {KINE_SCHEMA} \
             ({:?}) and does not back up a table it could not restore",
            KINE_COLUMNS
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
        );
    }
    let counted = transaction
        .query_one(
            "SELECT count(*), coalesce(max(id), 0)::bigint FROM kine",
            &[],
        )
        .await
        .map_err(|err| sql_error("counting the rows of table kine", &err))?;
    let rows = u64::try_from(counted.get::<_, i64>(0)).unwrap_or(0);
    let revision: i64 = counted.get(1);
    let select = KINE_COLUMNS
        .iter()
        .map(|(name, type_)| format!("{name}::{type_}"))
        .collect::<Vec<_>>()
        .join(", ");
    let copy = transaction
        .copy_out(&format!(
            "COPY (SELECT {select} FROM kine ORDER BY id) TO STDOUT (FORMAT binary)"
        ))
        .await
        .map_err(|err| sql_error("reading table kine", &err))?;
    futures::pin_mut!(copy);
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = copy.next().await {
        let chunk = chunk.map_err(|err| sql_error("reading table kine", &err))?;
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        sink.write(chunk).await?;
    }
    transaction
        .commit()
        .await
        .map_err(|err| sql_error("ending the snapshot's transaction", &err))?;
    Ok(Taken {
        rows,
        revision,
        bytes,
        sha256: hex(&hasher.finalize()),
        columns: KINE_COLUMNS
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect(),
    })
}

/// What the target database holds before a load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// No kine table: a new database.
    Empty,
    /// A kine table a restore of `backup` made (its comment says so).
    RestoredFrom { backup: String },
    /// A kine table of anything else, with its row count.
    HasData { rows: i64 },
}

const MARK: &str = "kflex: restored from backup ";

/// What the database holds.
pub async fn target(client: &Client) -> anyhow::Result<Target> {
    if kine_columns(client).await?.is_none() {
        return Ok(Target::Empty);
    }
    let row = client
        .query_one(
            "SELECT obj_description(to_regclass('kine'), 'pg_class'), (SELECT count(*) FROM kine)",
            &[],
        )
        .await
        .map_err(|err| sql_error("looking at table kine", &err))?;
    let comment: Option<String> = row.get(0);
    if let Some(backup) = comment
        .as_deref()
        .and_then(|c| c.strip_prefix(MARK))
        .and_then(|rest| rest.split(' ').next())
    {
        return Ok(Target::RestoredFrom {
            backup: backup.to_owned(),
        });
    }
    Ok(Target::HasData { rows: row.get(1) })
}

/// Hashes a backup's data without loading it: its size and sha256.
pub async fn digest(
    data: impl Stream<Item = anyhow::Result<Bytes>>,
) -> anyhow::Result<(u64, String)> {
    futures::pin_mut!(data);
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = data.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
    }
    Ok((bytes, hex(&hasher.finalize())))
}

/// Why `data` (of `bytes` and `sha256`) is not what `manifest` describes, if it is not.
pub fn mismatch(manifest: &Manifest, bytes: u64, sha256: &str) -> Option<String> {
    (bytes != manifest.bytes || sha256 != manifest.sha256).then(|| {
        format!(
            "its data does not match its manifest: the manifest says {} bytes with sha256 {}, \
             the data is {bytes} bytes with sha256 {sha256} (the backup is corrupted or was \
             changed)",
            manifest.bytes, manifest.sha256
        )
    })
}

/// Loads `data`, the data of the backup `manifest` describes, into the empty database of
/// `client`, in one transaction. Returns the rows loaded.
pub async fn load(
    client: &mut Client,
    manifest: &Manifest,
    data: impl Stream<Item = anyhow::Result<Bytes>>,
) -> anyhow::Result<u64> {
    let transaction = client
        .transaction()
        .await
        .map_err(|err| sql_error("starting the restore's transaction", &err))?;
    // kine's own table (kine creates the remaining indexes itself when it starts).
    transaction
        .batch_execute(
            "CREATE TABLE kine (\
               id BIGSERIAL PRIMARY KEY, \
               name text COLLATE \"C\", \
               created INTEGER, \
               deleted INTEGER, \
               create_revision BIGINT, \
               prev_revision BIGINT, \
               lease INTEGER, \
               value bytea, \
               old_value bytea)",
        )
        .await
        .map_err(|err| sql_error("creating table kine", &err))?;
    let columns = KINE_COLUMNS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    let sink = transaction
        .copy_in::<_, Bytes>(&format!("COPY kine ({columns}) FROM STDIN (FORMAT binary)"))
        .await
        .map_err(|err| sql_error("loading table kine", &err))?;
    futures::pin_mut!(sink);
    futures::pin_mut!(data);
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = data.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        sink.send(chunk)
            .await
            .map_err(|err| sql_error("loading table kine", &err))?;
    }
    // Checked before the copy ends: data that changed since it was verified is never committed.
    if let Some(why) = mismatch(manifest, bytes, &hex(&hasher.finalize())) {
        anyhow::bail!("backup {}: {why}", manifest.name);
    }
    let rows = sink
        .as_mut()
        .finish()
        .await
        .map_err(|err| sql_error("loading table kine", &err))?;
    if rows != manifest.rows {
        anyhow::bail!(
            "backup {}: its manifest says {} rows, the data held {rows}",
            manifest.name,
            manifest.rows
        );
    }
    transaction
        .batch_execute(
            "SELECT setval(pg_get_serial_sequence('kine', 'id'), max(id)) FROM kine HAVING count(*) > 0; \
             CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision)",
        )
        .await
        .map_err(|err| sql_error("preparing table kine for kine", &err))?;
    let comment = format!(
        "{MARK}{} of control plane {} (sha256 {})",
        manifest.name, manifest.control_plane, manifest.sha256
    );
    transaction
        .batch_execute(&format!(
            "COMMENT ON TABLE kine IS '{}'",
            comment.replace('\'', "''")
        ))
        .await
        .map_err(|err| sql_error("marking table kine as restored", &err))?;
    transaction
        .commit()
        .await
        .context("committing the restore")?;
    Ok(rows)
}
