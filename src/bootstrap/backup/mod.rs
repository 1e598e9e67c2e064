//! Backups of a k8s control plane's database: what a backup is, and the decisions about it that
//! need no I/O.
//!
//! A backup is two objects under `<control plane>/<backup>/` in a store: `kine.pgcopy`, every row
//! of the kine table as PostgreSQL's binary COPY format writes it (read in one repeatable-read
//! transaction, so it is one consistent revision of the whole table), and `manifest.json`, which
//! says what the data is (control plane, kflex version, kine schema, row count, highest revision,
//! size, sha256) so that a restore checks what it loads before it loads it. The manifest is
//! written last: a backup without one is incomplete, never listed, never restored and never
//! removed by retention (only what a manifest says is a kflex backup of that control plane is).
//!
//! `snapshot` reads and loads the database; `store` reads and writes the storage.

pub mod snapshot;
pub mod store;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What a manifest's `kind` says: this is a kflex backup.
pub const MANIFEST_KIND: &str = "kflex.kubestellar.org/backup";
/// The layout of a backup this kflex writes and reads.
pub const FORMAT: u32 = 1;
/// The object holding the data, beside the manifest.
pub const DATA_OBJECT: &str = "kine.pgcopy";
pub const MANIFEST_OBJECT: &str = "manifest.json";

/// The kine table's major schema this kflex knows: kine's nine columns, in kine's order. (kine
/// changed column types and indexes over time — integer ids became bigint, the name's collation
/// became "C" — but not the columns; a backup casts to the types below, so every kine release
/// since then restores alike.)
pub const KINE_SCHEMA: u32 = 1;
pub const KINE_COLUMNS: [(&str, &str); 9] = [
    ("id", "bigint"),
    ("name", "text"),
    ("created", "integer"),
    ("deleted", "integer"),
    ("create_revision", "bigint"),
    ("prev_revision", "bigint"),
    ("lease", "integer"),
    ("value", "bytea"),
    ("old_value", "bytea"),
];

/// The manifest of one backup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`MANIFEST_KIND`].
    pub kind: String,
    /// [`FORMAT`].
    pub format: u32,
    /// The backup's name (its directory).
    pub name: String,
    /// The control plane it was taken of.
    pub control_plane: String,
    /// Its type (`k8s`: only k8s control planes are backed up).
    pub control_plane_type: String,
    pub kflex_version: String,
    /// The kine table's major schema ([`KINE_SCHEMA`]) and its columns as written.
    pub kine_schema: u32,
    pub columns: Vec<String>,
    /// Rows in the data, and the highest revision (kine's id) among them.
    pub rows: u64,
    pub revision: i64,
    /// The data object: its name, size and sha256 (lower-case hex).
    pub data: String,
    pub bytes: u64,
    pub sha256: String,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub time: String,
}

impl Manifest {
    /// Why this manifest is not one of `control_plane`'s kflex backups named `name`, if not.
    pub fn foreign(&self, control_plane: &str, name: &str) -> Option<String> {
        if self.kind != MANIFEST_KIND {
            return Some(format!(
                "its manifest's kind is {:?}, not {MANIFEST_KIND:?}: it is not a kflex backup",
                self.kind
            ));
        }
        if self.control_plane != control_plane {
            return Some(format!(
                "its manifest says it is a backup of control plane {:?}, not of {control_plane:?}",
                self.control_plane
            ));
        }
        if self.name != name {
            return Some(format!(
                "its manifest names backup {:?}, not {name:?}",
                self.name
            ));
        }
        None
    }

    /// Why a restore must not load this backup, whatever its data: a format, type or kine
    /// schema this kflex does not know.
    pub fn unrestorable(&self) -> Option<String> {
        if self.format != FORMAT {
            return Some(format!(
                "it is in backup format {}, and this kflex ({}) reads format {FORMAT}",
                self.format,
                env!("CARGO_PKG_VERSION")
            ));
        }
        if self.control_plane_type != "k8s" {
            return Some(format!(
                "it is a backup of a {} control plane; only a k8s control plane's backup can be \
                 restored into a k8s control plane",
                self.control_plane_type
            ));
        }
        if self.kine_schema != KINE_SCHEMA {
            return Some(format!(
                "it holds kine schema {}, and this kflex ({}) knows kine schema {KINE_SCHEMA} \
                 only: restore it with a kflex that knows it",
                self.kine_schema,
                env!("CARGO_PKG_VERSION")
            ));
        }
        let expected: Vec<&str> = KINE_COLUMNS.iter().map(|(name, _)| *name).collect();
        if self.columns != expected {
            return Some(format!(
                "its manifest says kine schema {KINE_SCHEMA} but lists the columns {:?}, not {:?}: \
                 the schema does not match",
                self.columns, expected
            ));
        }
        if self.data != DATA_OBJECT {
            return Some(format!(
                "its manifest names data object {:?}, not {DATA_OBJECT:?}",
                self.data
            ));
        }
        None
    }
}

/// A backup as a listing shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub name: String,
    pub time: String,
    /// The data's size in bytes.
    pub bytes: u64,
    pub rows: u64,
    pub revision: i64,
    pub kflex_version: String,
}

impl From<&Manifest> for Listed {
    fn from(manifest: &Manifest) -> Self {
        Self {
            name: manifest.name.clone(),
            time: manifest.time.clone(),
            bytes: manifest.bytes,
            rows: manifest.rows,
            revision: manifest.revision,
            kflex_version: manifest.kflex_version.clone(),
        }
    }
}

/// A new backup's name: the time it was taken (UTC, to the second) and six random letters and
/// digits, so that two never collide and names sort by time: `20261203-041700-k3x9qa`.
pub fn new_name(now: OffsetDateTime, suffix: &str) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{suffix}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// `time` in RFC 3339 (UTC, seconds).
pub fn timestamp(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(time)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Whether `name` can be a backup's name (and so a path segment): a DNS label.
pub fn name_problem(name: &str) -> Option<String> {
    kflex_core::api::names::dns1123_label(name).map(|reason| {
        format!(
            "backup name {}: {reason}",
            kflex_core::api::names::quoted(name)
        )
    })
}

/// Of `backups` (one control plane's), the names to remove to keep the newest `keep`: the
/// oldest first. Ordered by the manifest's time, then name.
pub fn beyond_retention(backups: &[Manifest], keep: usize) -> Vec<String> {
    let mut sorted: Vec<&Manifest> = backups.iter().collect();
    sorted.sort_by(|a, b| (&a.time, &a.name).cmp(&(&b.time, &b.name)));
    let excess = sorted.len().saturating_sub(keep);
    sorted
        .into_iter()
        .take(excess)
        .map(|m| m.name.clone())
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn manifest(control_plane: &str, name: &str, time: &str) -> Manifest {
        Manifest {
            kind: MANIFEST_KIND.into(),
            format: FORMAT,
            name: name.into(),
            control_plane: control_plane.into(),
            control_plane_type: "k8s".into(),
            kflex_version: "0.1.0".into(),
            kine_schema: KINE_SCHEMA,
            columns: KINE_COLUMNS.iter().map(|(c, _)| (*c).to_owned()).collect(),
            rows: 3,
            revision: 9,
            data: DATA_OBJECT.into(),
            bytes: 100,
            sha256: "00".into(),
            time: time.into(),
        }
    }

    #[test]
    fn names_sort_by_time_and_are_labels() {
        let time = OffsetDateTime::from_unix_timestamp(1_796_271_420).unwrap();
        let name = new_name(time, "k3x9qa");
        assert_eq!(name, "20261203-041700-k3x9qa");
        assert_eq!(name_problem(&name), None);
        assert!(name_problem("../x").is_some());
        assert_eq!(timestamp(time), "2026-12-03T04:17:00Z");
    }

    #[test]
    fn retention_removes_the_oldest_beyond_the_count() {
        let backups = [
            manifest("cp1", "c", "2026-12-03T00:00:00Z"),
            manifest("cp1", "a", "2026-12-01T00:00:00Z"),
            manifest("cp1", "b", "2026-12-02T00:00:00Z"),
        ];
        assert_eq!(beyond_retention(&backups, 1), ["a", "b"]);
        assert_eq!(beyond_retention(&backups, 3), Vec::<String>::new());
        assert_eq!(beyond_retention(&backups, 7), Vec::<String>::new());
    }

    #[test]
    fn a_manifest_says_whose_and_whether_this_kflex_can_restore_it() {
        let good = manifest("cp1", "b1", "2026-12-03T00:00:00Z");
        assert_eq!(good.foreign("cp1", "b1"), None);
        assert_eq!(good.unrestorable(), None);
        assert!(good.foreign("cp2", "b1").unwrap().contains("\"cp1\""));
        assert!(good.foreign("cp1", "b2").is_some());
        let mut other = good.clone();
        other.kind = "velero".into();
        assert!(
            other
                .foreign("cp1", "b1")
                .unwrap()
                .contains("not a kflex backup")
        );
        let mut newer = good.clone();
        newer.kine_schema = 2;
        assert!(newer.unrestorable().unwrap().contains("kine schema 2"));
        let mut shuffled = good.clone();
        shuffled.columns.swap(0, 1);
        assert!(
            shuffled
                .unrestorable()
                .unwrap()
                .contains("schema does not match")
        );
        let mut k3s = good;
        k3s.control_plane_type = "k3s".into();
        assert!(k3s.unrestorable().unwrap().contains("k3s control plane"));
    }
}
