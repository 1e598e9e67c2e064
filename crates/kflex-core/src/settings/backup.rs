//! Where control planes' backups are kept (`backup.storage`), and which control plane may be
//! created from which other's backups (`backup.allowedRestores`). An administrator's settings:
//! a ControlPlane only names a storage entry, and restores from another control plane only
//! where this says so.

use serde::{Deserialize, Serialize};

/// The backup settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSettings {
    /// The storage entries; `spec.backup.storage` and `spec.restoreFrom.storage` name one,
    /// default the first.
    pub storage: Vec<BackupStore>,
    /// `SOURCE:TARGET` pairs: control plane TARGET may be created from a backup of control
    /// plane SOURCE. Without an entry a control plane restores only its own backups (a backup
    /// holds every Secret of its control plane: reading another's is a cross-tenant read).
    pub allowed_restores: Vec<String>,
}

/// One place backups are kept: exactly one of `pvc` and `s3`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupStore {
    /// How ControlPlanes refer to it (a DNS label).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcStore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Store>,
}

/// A volume claim in `kubeflex-system`, which `kflex render --system` renders.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PvcStore {
    /// The claim's name.
    #[serde(default = "default_claim_name")]
    pub claim_name: String,
    /// Its size.
    #[serde(default = "default_storage_size")]
    pub storage_size: String,
    /// Its StorageClass; empty means the cluster's default.
    #[serde(default)]
    pub storage_class_name: String,
    /// Its access mode: `ReadWriteOnce` (backups of control planes whose Jobs land on
    /// different nodes then wait for each other) or `ReadWriteMany`.
    #[serde(default = "default_access_mode")]
    pub access_mode: String,
}

/// A bucket of an S3-compatible object store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Store {
    /// The service's URL (`https://…`); empty means AWS S3 in `region`.
    #[serde(default)]
    pub endpoint: String,
    pub bucket: String,
    /// A prefix for every object kflex writes (`team-a/backups`); empty means the bucket's root.
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// The Secret in `kubeflex-system` with the credentials (keys `accessKeyId`,
    /// `secretAccessKey`, optional `sessionToken`, and `ca.crt` for an endpoint whose
    /// certificate a public CA did not issue).
    pub secret_name: String,
    /// Server-side encryption: empty (the bucket's default), `AES256`, `aws:kms` or
    /// `aws:kms:dsse`.
    #[serde(default)]
    pub server_side_encryption: String,
    /// The KMS key of `aws:kms` and `aws:kms:dsse`; empty means the account's default key.
    #[serde(default)]
    pub kms_key_id: String,
    /// Allow an `http://` endpoint (an in-cluster test store): the data, every Secret of the
    /// control plane, then crosses the network unencrypted.
    #[serde(default)]
    pub allow_http: bool,
    /// Address buckets as `<bucket>.<endpoint>` instead of `<endpoint>/<bucket>`.
    #[serde(default)]
    pub virtual_hosted_style: bool,
}

fn default_claim_name() -> String {
    "kflex-backups".to_owned()
}

fn default_storage_size() -> String {
    "10Gi".to_owned()
}

fn default_access_mode() -> String {
    "ReadWriteOnce".to_owned()
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            storage: vec![BackupStore {
                name: "local".to_owned(),
                pvc: Some(PvcStore {
                    claim_name: default_claim_name(),
                    storage_size: default_storage_size(),
                    storage_class_name: String::new(),
                    access_mode: default_access_mode(),
                }),
                s3: None,
            }],
            allowed_restores: Vec::new(),
        }
    }
}

impl BackupSettings {
    /// The store `name` names, or the first when `None`.
    pub fn store(&self, name: Option<&str>) -> Option<&BackupStore> {
        match name {
            None => self.storage.first(),
            Some(name) => self.storage.iter().find(|store| store.name == name),
        }
    }

    /// Whether control plane `target` may be created from a backup of `source`: its own, or
    /// one an administrator allows.
    pub fn may_restore(&self, source: &str, target: &str) -> bool {
        source == target
            || self
                .allowed_restores
                .iter()
                .any(|pair| pair.split_once(':') == Some((source, target)))
    }
}

/// Checks the backup settings; the error names the key.
pub(super) fn check(backup: &BackupSettings) -> Result<(), (String, String)> {
    use super::validate::{is_dns_label, is_dns_subdomain, is_quantity};
    let fail = |key: &str, reason: String| Err((key.to_owned(), reason));
    let key = "backup.storage";
    let mut names = std::collections::BTreeSet::new();
    let mut claims = std::collections::BTreeSet::new();
    for (index, store) in backup.storage.iter().enumerate() {
        let at = format!("entry {index} ({:?})", store.name);
        if !is_dns_label(&store.name) {
            return fail(
                key,
                format!("{at}: name must be a DNS label (lower-case letters, digits and '-')"),
            );
        }
        if !names.insert(store.name.as_str()) {
            return fail(key, format!("{at}: the name is used twice"));
        }
        match (&store.pvc, &store.s3) {
            (Some(pvc), None) => {
                if !is_dns_subdomain(&pvc.claim_name) {
                    return fail(key, format!("{at}: pvc.claimName is not a claim name"));
                }
                if !claims.insert(pvc.claim_name.as_str()) {
                    return fail(
                        key,
                        format!("{at}: another entry uses claim {:?}", pvc.claim_name),
                    );
                }
                if !is_quantity(&pvc.storage_size) {
                    return fail(
                        key,
                        format!(
                            "{at}: pvc.storageSize {:?} is not a storage size like 10Gi",
                            pvc.storage_size
                        ),
                    );
                }
                if !pvc.storage_class_name.is_empty() && !is_dns_subdomain(&pvc.storage_class_name)
                {
                    return fail(key, format!("{at}: pvc.storageClassName is not a DNS name"));
                }
                if !["ReadWriteOnce", "ReadWriteMany"].contains(&pvc.access_mode.as_str()) {
                    return fail(
                        key,
                        format!(
                            "{at}: pvc.accessMode must be ReadWriteOnce or ReadWriteMany, got {:?}",
                            pvc.access_mode
                        ),
                    );
                }
            }
            (None, Some(s3)) => {
                check_s3(s3).map_err(|why| (key.to_owned(), format!("{at}: s3.{why}")))?;
            }
            _ => {
                return fail(
                    key,
                    format!("{at}: give exactly one of pvc (a volume claim) and s3 (a bucket)"),
                );
            }
        }
    }
    for pair in &backup.allowed_restores {
        let valid = pair.split_once(':').is_some_and(|(source, target)| {
            crate::api::control_plane_name_problem(source).is_none()
                && crate::api::control_plane_name_problem(target).is_none()
                && source != target
        });
        if !valid {
            return fail(
                "backup.allowedRestores",
                format!(
                    "{pair:?} is not SOURCE:TARGET, two different control-plane names (TARGET may \
                     be created from backups of SOURCE)"
                ),
            );
        }
    }
    Ok(())
}

fn check_s3(s3: &S3Store) -> Result<(), String> {
    let bucket_ok = (3..=63).contains(&s3.bucket.len())
        && s3
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s3.bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s3.bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !bucket_ok {
        return Err(format!(
            "bucket {:?} is not a bucket name (3-63 lower-case letters, digits, '.' and '-')",
            s3.bucket
        ));
    }
    if !s3.endpoint.is_empty() {
        let rest = if let Some(rest) = s3.endpoint.strip_prefix("https://") {
            rest
        } else if let Some(rest) = s3.endpoint.strip_prefix("http://") {
            if !s3.allow_http {
                return Err(format!(
                    "endpoint {:?} is plain HTTP: backups hold every Secret of their control \
                     plane; use https, or set allowHttp: true for a store on a trusted network",
                    s3.endpoint
                ));
            }
            rest
        } else {
            return Err(format!(
                "endpoint {:?} must be an https:// URL",
                s3.endpoint
            ));
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@'))
        {
            return Err(format!("endpoint {:?} is not a URL", s3.endpoint));
        }
    }
    let prefix_ok = s3.prefix.is_empty()
        || (s3.prefix.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        }));
    if !prefix_ok {
        return Err(format!(
            "prefix {:?} must be path segments of letters, digits, '-', '_' and '.', separated \
             by '/' (no leading or trailing '/', no '..')",
            s3.prefix
        ));
    }
    if s3.region.is_empty()
        || !s3
            .region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "region {:?} is not a region like us-east-1",
            s3.region
        ));
    }
    if !super::validate::is_dns_subdomain(&s3.secret_name) {
        return Err(format!(
            "secretName {:?} must name the Secret in kubeflex-system with the credentials",
            s3.secret_name
        ));
    }
    match s3.server_side_encryption.as_str() {
        "" | "AES256" => {
            if !s3.kms_key_id.is_empty() {
                return Err(
                    "kmsKeyId needs serverSideEncryption aws:kms or aws:kms:dsse".to_owned(),
                );
            }
        }
        "aws:kms" | "aws:kms:dsse" => {}
        other => {
            return Err(format!(
                "serverSideEncryption {other:?} must be empty, AES256, aws:kms or aws:kms:dsse"
            ));
        }
    }
    if s3
        .kms_key_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("kmsKeyId must not contain spaces or control characters".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> S3Store {
        S3Store {
            endpoint: "https://s3.example.com".into(),
            bucket: "kflex-backups".into(),
            prefix: "prod".into(),
            region: "eu-west-1".into(),
            secret_name: "backup-s3".into(),
            server_side_encryption: String::new(),
            kms_key_id: String::new(),
            allow_http: false,
            virtual_hosted_style: false,
        }
    }

    fn with(store: S3Store) -> BackupSettings {
        BackupSettings {
            storage: vec![BackupStore {
                name: "offsite".into(),
                pvc: None,
                s3: Some(store),
            }],
            allowed_restores: Vec::new(),
        }
    }

    #[test]
    fn the_defaults_are_one_volume_claim() {
        let settings = BackupSettings::default();
        check(&settings).unwrap();
        assert_eq!(settings.store(None).unwrap().name, "local");
        assert!(settings.store(Some("offsite")).is_none());
    }

    #[test]
    fn bad_s3_stores_say_which_field() {
        check(&with(s3())).unwrap();
        for (change, says) in [
            (
                (|s: &mut S3Store| s.endpoint = "http://minio:9000".into()) as fn(&mut S3Store),
                "plain HTTP",
            ),
            (|s| s.bucket = "B".into(), "s3.bucket"),
            (|s| s.prefix = "../other".into(), "s3.prefix"),
            (|s| s.prefix = "/abs".into(), "s3.prefix"),
            (|s| s.secret_name = String::new(), "s3.secretName"),
            (
                |s| s.server_side_encryption = "rot13".into(),
                "serverSideEncryption",
            ),
            (|s| s.kms_key_id = "key".into(), "kmsKeyId needs"),
            (|s| s.endpoint = "ftp://x".into(), "https:// URL"),
        ] {
            let mut store = s3();
            change(&mut store);
            let (key, reason) = check(&with(store)).unwrap_err();
            assert_eq!(key, "backup.storage");
            assert!(reason.contains(says), "{reason}");
            assert!(reason.starts_with("entry 0 (\"offsite\")"), "{reason}");
        }
        let mut store = s3();
        store.endpoint = "http://minio.backup.svc:9000".into();
        store.allow_http = true;
        check(&with(store)).unwrap();
    }

    #[test]
    fn a_store_is_a_claim_or_a_bucket_and_names_are_unique() {
        let mut settings = with(s3());
        settings.storage[0].pvc = BackupSettings::default().storage[0].pvc.clone();
        assert!(check(&settings).unwrap_err().1.contains("exactly one"));
        let mut settings = BackupSettings::default();
        settings.storage.push(settings.storage[0].clone());
        assert!(check(&settings).unwrap_err().1.contains("used twice"));
    }

    #[test]
    fn restores_across_control_planes_need_an_entry() {
        let mut settings = BackupSettings::default();
        assert!(settings.may_restore("cp1", "cp1"));
        assert!(!settings.may_restore("prod", "staging"));
        settings.allowed_restores = vec!["prod:staging".into()];
        check(&settings).unwrap();
        assert!(settings.may_restore("prod", "staging"));
        assert!(!settings.may_restore("staging", "prod"), "one way only");
        for bad in ["prod", "prod:prod", "Prod:x", "a:b:c"] {
            settings.allowed_restores = vec![bad.into()];
            let (key, _) = check(&settings).unwrap_err();
            assert_eq!(key, "backup.allowedRestores", "{bad}");
        }
    }
}
