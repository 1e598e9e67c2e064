//! Backups of a k8s control plane's database: the names of the objects that take and restore
//! them (a CronJob and a Job in `kubeflex-system`, with their ServiceAccounts and the Roles in
//! `<cp>-system` that let them read the control plane's own database login), and the command
//! line and volume each storage entry needs. Shared by the templates (through the context), the
//! CLI (`kflex backup`, `kflex restore`) and the bootstrap programs, so all of them agree.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::api::ControlPlane;
use crate::settings::{BackupStore, Settings};

/// The Secret in `<cp>-system` holding kine's login to the control plane's own database
/// (written by the database Job); backups and restores connect with it, never as an admin.
pub const DATASTORE_SECRET: &str = "kine-datastore";
/// The Secret in `<cp>-system` the restore Job writes once the database holds the backup; kine
/// does not start before it exists (its container reads key [`RESTORE_SECRET_KEY`]).
pub const RESTORE_SECRET: &str = "kflex-restore";
/// The key of [`RESTORE_SECRET`]: the name of the backup restored.
pub const RESTORE_SECRET_KEY: &str = "backup";
/// Where a volume-claim store is mounted.
pub const PVC_MOUNT_PATH: &str = "/var/lib/kflex/backups";
/// Where an S3 store's credentials Secret is mounted.
pub const S3_CREDENTIALS_PATH: &str = "/var/run/secrets/kflex/s3";
/// The Role in `<cp>-system` of the backup CronJob's ServiceAccount (and of the restore Job's).
pub const BACKUP_ROLE: &str = "kflex-backup";
pub const RESTORE_ROLE: &str = "kflex-restore";
/// The CronJob API's limit on a CronJob's name (its Jobs' names add 11 characters).
const MAX_CRON_JOB_NAME: usize = 52;
/// A Job's name is also a label value.
const MAX_JOB_NAME: usize = 63;

/// `<prefix>-<cp>`, or, when that is longer than `max`, the control plane's name shortened and
/// followed by 8 hex digits of its sha256 — so every control plane (up to 56 characters) gets a
/// valid name of its own.
pub fn bounded_name(prefix: &str, control_plane: &str, max: usize) -> String {
    let full = format!("{prefix}-{control_plane}");
    if full.len() <= max {
        return full;
    }
    let hash = super::config_hash::hex(&Sha256::digest(control_plane.as_bytes()));
    let keep = max.saturating_sub(prefix.len() + 1 + 9);
    let head: String = control_plane.chars().take(keep).collect();
    format!("{prefix}-{}-{}", head.trim_end_matches('-'), &hash[..8])
}

/// The backup CronJob of `control_plane` in `kubeflex-system`.
pub fn cron_job_name(control_plane: &str) -> String {
    bounded_name("backup", control_plane, MAX_CRON_JOB_NAME)
}

/// The restore Job of `control_plane` in `kubeflex-system`.
pub fn restore_job_name(control_plane: &str) -> String {
    bounded_name("restore", control_plane, MAX_JOB_NAME)
}

/// The ServiceAccount in `kubeflex-system` of the backup CronJob.
pub fn backup_service_account(control_plane: &str) -> String {
    format!("backup-{control_plane}")
}

/// The ServiceAccount in `kubeflex-system` of the restore Job.
pub fn restore_service_account(control_plane: &str) -> String {
    format!("restore-{control_plane}")
}

/// What a pod needs to reach one storage entry: its arguments and its volume.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StoreContext {
    pub name: String,
    /// `--store=…` and the entry's flags, for every `kflex bootstrap backup …` program.
    pub args: Vec<String>,
    /// The volume claim to mount at [`PVC_MOUNT_PATH`] (a `pvc` entry).
    pub claim_name: Option<String>,
    /// The credentials Secret to mount at [`S3_CREDENTIALS_PATH`] (an `s3` entry).
    pub secret_name: Option<String>,
    pub mount_path: &'static str,
}

impl StoreContext {
    /// The context of `store`.
    pub fn new(store: &BackupStore) -> Self {
        let mut args = vec![format!("--store={}", store.name)];
        let (claim_name, secret_name, mount_path) = match (&store.pvc, &store.s3) {
            (Some(pvc), _) => {
                args.push(format!("--pvc-dir={PVC_MOUNT_PATH}"));
                (Some(pvc.claim_name.clone()), None, PVC_MOUNT_PATH)
            }
            (None, Some(s3)) => {
                args.push(format!("--s3-bucket={}", s3.bucket));
                args.push(format!("--s3-region={}", s3.region));
                if !s3.endpoint.is_empty() {
                    args.push(format!("--s3-endpoint={}", s3.endpoint));
                }
                if !s3.prefix.is_empty() {
                    args.push(format!("--s3-prefix={}", s3.prefix));
                }
                args.push(format!("--s3-credentials-dir={S3_CREDENTIALS_PATH}"));
                if !s3.server_side_encryption.is_empty() {
                    args.push(format!(
                        "--s3-server-side-encryption={}",
                        s3.server_side_encryption
                    ));
                }
                if !s3.kms_key_id.is_empty() {
                    args.push(format!("--s3-kms-key-id={}", s3.kms_key_id));
                }
                if s3.allow_http {
                    args.push("--s3-allow-http".to_owned());
                }
                if s3.virtual_hosted_style {
                    args.push("--s3-virtual-hosted-style".to_owned());
                }
                (None, Some(s3.secret_name.clone()), S3_CREDENTIALS_PATH)
            }
            (None, None) => (None, None, PVC_MOUNT_PATH),
        };
        Self {
            name: store.name.clone(),
            args,
            claim_name,
            secret_name,
            mount_path,
        }
    }
}

/// `cp.backup` in templates: the backup CronJob of a k8s control plane with `spec.backup`.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackupContext {
    pub cron_job_name: String,
    pub service_account: String,
    pub schedule: String,
    pub retention: i32,
    pub store: StoreContext,
}

/// `cp.restore` in templates: the restore Job of a k8s control plane with `spec.restoreFrom`.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RestoreContext {
    pub job_name: String,
    pub service_account: String,
    pub from_control_plane: String,
    pub backup: String,
    pub store: StoreContext,
}

/// The backup and restore contexts of `cp` (type k8s only; the storage they name must exist,
/// which validation checked).
pub(crate) fn contexts(
    cp: &ControlPlane,
    settings: &Settings,
) -> (Option<BackupContext>, Option<RestoreContext>) {
    if cp.spec.type_ != crate::api::ControlPlaneType::K8s {
        return (None, None);
    }
    let name = cp.metadata.name.as_deref().unwrap_or_default();
    let backup = cp.spec.backup.as_ref().and_then(|backup| {
        let store = settings.backup.store(backup.storage.as_deref())?;
        Some(BackupContext {
            cron_job_name: cron_job_name(name),
            service_account: backup_service_account(name),
            schedule: backup.schedule.clone(),
            retention: backup.retention.unwrap_or(7),
            store: StoreContext::new(store),
        })
    });
    let restore = cp.spec.restore_from.as_ref().and_then(|restore| {
        let store = settings.backup.store(restore.storage.as_deref())?;
        Some(RestoreContext {
            job_name: restore_job_name(name),
            service_account: restore_service_account(name),
            from_control_plane: restore.control_plane.clone(),
            backup: restore.backup.clone(),
            store: StoreContext::new(store),
        })
    });
    (backup, restore)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_their_limits_and_stay_distinct() {
        assert_eq!(cron_job_name("cp1"), "backup-cp1");
        assert_eq!(restore_job_name("cp1"), "restore-cp1");
        let long = format!("a{}", "b".repeat(55));
        let other = format!("a{}c", "b".repeat(54));
        let (a, b) = (cron_job_name(&long), cron_job_name(&other));
        assert!(a.len() <= 52 && b.len() <= 52, "{a} {b}");
        assert_ne!(a, b);
        assert!(restore_job_name(&long).len() <= 63);
        assert!(a.starts_with("backup-abbb") && !a.contains("--"), "{a}");
        // Exactly at the limit: unchanged.
        let fits = "a".repeat(45);
        assert_eq!(cron_job_name(&fits), format!("backup-{fits}"));
    }

    #[test]
    fn store_arguments_name_every_setting_and_no_secret() {
        let mut settings = Settings::default();
        let local = StoreContext::new(&settings.backup.storage[0]);
        assert_eq!(
            local.args,
            ["--store=local", "--pvc-dir=/var/lib/kflex/backups"]
        );
        assert_eq!(local.claim_name.as_deref(), Some("kflex-backups"));
        settings.backup.storage[0].pvc = None;
        settings.backup.storage[0].s3 = Some(crate::settings::S3Store {
            endpoint: "https://s3.example.com".into(),
            bucket: "b".into(),
            prefix: "p/q".into(),
            region: "eu-west-1".into(),
            secret_name: "backup-s3".into(),
            server_side_encryption: "aws:kms".into(),
            kms_key_id: "alias/kflex".into(),
            allow_http: false,
            virtual_hosted_style: false,
        });
        let s3 = StoreContext::new(&settings.backup.storage[0]);
        assert_eq!(
            s3.args,
            [
                "--store=local",
                "--s3-bucket=b",
                "--s3-region=eu-west-1",
                "--s3-endpoint=https://s3.example.com",
                "--s3-prefix=p/q",
                "--s3-credentials-dir=/var/run/secrets/kflex/s3",
                "--s3-server-side-encryption=aws:kms",
                "--s3-kms-key-id=alias/kflex",
            ]
        );
        assert_eq!(s3.secret_name.as_deref(), Some("backup-s3"));
    }
}
