//! Backup storage: a directory (the volume claim of a `pvc` entry, mounted into the pod) or a
//! bucket of an S3-compatible object store, both through the `object_store` crate. Backups of
//! control plane `<cp>` live under `[<prefix>/]<cp>/<backup>/`; nothing here reads or writes
//! outside the prefix of the control plane it is asked about.
//!
//! Errors name the store, the bucket or directory and what failed, and never a credential:
//! every message from the object store passes through [`Store::clean`], which removes the
//! access key, the secret key and the session token wherever they appear (S3 error bodies echo
//! the access key id).

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, WriteMultipart};

use super::{DATA_OBJECT, MANIFEST_OBJECT, Manifest};

/// An S3 bucket and how to reach it.
#[derive(Clone, Debug, Default)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// Empty: AWS S3 in `region`.
    pub endpoint: String,
    pub prefix: String,
    pub server_side_encryption: String,
    pub kms_key_id: String,
    pub allow_http: bool,
    pub virtual_hosted_style: bool,
}

/// S3 credentials, from the Secret named in the settings. Debug leaves them out.
#[derive(Clone, Default)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// PEM CAs for an endpoint whose certificate no public CA issued.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads the credentials Secret mounted at `dir` (keys `accessKeyId`, `secretAccessKey`,
    /// optional `sessionToken` and `ca.crt`). Errors name the key, never a value.
    pub fn from_dir(dir: &FsPath) -> anyhow::Result<Self> {
        let read = |key: &str| -> anyhow::Result<Option<Vec<u8>>> {
            let path = dir.join(key);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => {
                    Err(anyhow::Error::new(err).context(format!("reading {}", path.display())))
                }
            }
        };
        let text = |key: &str| -> anyhow::Result<Option<String>> {
            read(key)?
                .map(|bytes| {
                    String::from_utf8(bytes)
                        .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                        .map_err(|_| {
                            anyhow::anyhow!("the credentials' key {key} is not UTF-8 text")
                        })
                })
                .transpose()
                .map(|value| value.filter(|v| !v.is_empty()))
        };
        let required = |key: &str| -> anyhow::Result<String> {
            text(key)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "the credentials Secret mounted at {} has no key {key} (it needs accessKeyId \
                     and secretAccessKey)",
                    dir.display()
                )
            })
        };
        Ok(Self {
            access_key_id: required("accessKeyId")?,
            secret_access_key: required("secretAccessKey")?,
            session_token: text("sessionToken")?,
            ca_pem: read("ca.crt")?.filter(|ca| !ca.is_empty()),
        })
    }
}

/// Where one storage entry keeps its backups.
#[derive(Debug)]
pub struct Store {
    /// The entry's name in the settings.
    name: String,
    inner: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    /// "store offsite (bucket b at https://…)" for messages.
    described: String,
    /// Strings no message may contain.
    secrets: Vec<String>,
}

/// A complete backup, or why something under a control plane's prefix is not one.
#[derive(Debug)]
pub enum Found {
    Backup(Manifest),
    /// A directory without a manifest (a backup being written, or one that failed), or with a
    /// manifest that is not this control plane's kflex backup: left alone.
    NotABackup {
        name: String,
        why: String,
    },
}

impl Store {
    /// A directory store (a mounted volume claim).
    pub fn directory(name: &str, dir: &FsPath) -> anyhow::Result<Self> {
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("backup store {name}: directory {}", dir.display()))?;
        Ok(Self {
            name: name.to_owned(),
            inner: Arc::new(local),
            prefix: None,
            described: format!("backup store {name} (directory {})", dir.display()),
            secrets: Vec::new(),
        })
    }

    /// An S3 store.
    pub fn s3(name: &str, config: &S3Config, credentials: &Credentials) -> anyhow::Result<Self> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        // reqwest's TLS uses the process's rustls provider: ring, as everywhere in kflex.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let at = if config.endpoint.is_empty() {
            format!("AWS S3 {}", config.region)
        } else {
            config.endpoint.clone()
        };
        let described = format!("backup store {name} (bucket {} at {at})", config.bucket);
        if config.endpoint.starts_with("http://") && !config.allow_http {
            anyhow::bail!(
                "{described}: the endpoint is plain HTTP, which carries every Secret of the \
                 control plane unencrypted; use https, or allowHttp in the setting backup.storage \
                 (--s3-allow-http) for a store on a trusted network"
            );
        }
        let mut options = object_store::ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout(Duration::from_secs(300))
            .with_allow_http(config.allow_http);
        if let Some(ca) = &credentials.ca_pem {
            for certificate in object_store::Certificate::from_pem_bundle(ca)
                .with_context(|| format!("{described}: the credentials' ca.crt"))?
            {
                options = options.with_root_certificate(certificate);
            }
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key)
            .with_allow_http(config.allow_http)
            .with_virtual_hosted_style_request(config.virtual_hosted_style)
            .with_client_options(options)
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
            });
        if !config.endpoint.is_empty() {
            builder = builder.with_endpoint(&config.endpoint);
        }
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token);
        }
        for (key, value) in [
            ("aws_server_side_encryption", &config.server_side_encryption),
            ("aws_sse_kms_key_id", &config.kms_key_id),
        ] {
            if !value.is_empty() {
                let key: AmazonS3ConfigKey = key
                    .parse()
                    .map_err(|err| anyhow::anyhow!("{described}: {err}"))?;
                builder = builder.with_config(key, value);
            }
        }
        let mut secrets = vec![
            credentials.access_key_id.clone(),
            credentials.secret_access_key.clone(),
        ];
        secrets.extend(credentials.session_token.clone());
        secrets.retain(|s| !s.is_empty());
        let store = Self {
            name: name.to_owned(),
            inner: Arc::new(builder.build().map_err(|err| {
                anyhow::anyhow!("{described}: {}", clean_text(&err.to_string(), &[]))
            })?),
            prefix: (!config.prefix.is_empty()).then(|| Path::from(config.prefix.as_str())),
            described,
            secrets,
        };
        Ok(store)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn describe(&self) -> &str {
        &self.described
    }

    fn path(&self, parts: &[&str]) -> Path {
        let mut path = self.prefix.clone().unwrap_or_default();
        for part in parts {
            path = path.join(*part);
        }
        path
    }

    /// An object-store error as a message of this layer: what failed, where, and the cause in
    /// words, with every credential removed.
    fn clean(&self, what: &str, err: &object_store::Error) -> anyhow::Error {
        let detail = clean_text(&err.to_string(), &self.secrets);
        let hint = if detail.contains("NoSuchBucket") {
            " (the bucket does not exist: create it, or correct the bucket in the setting \
             backup.storage)"
        } else if detail.contains("InvalidAccessKeyId")
            || detail.contains("SignatureDoesNotMatch")
            || detail.contains("InvalidClientTokenId")
            || detail.contains("403")
        {
            " (the store refused the credentials: check the Secret named by secretName in the \
             setting backup.storage)"
        } else {
            ""
        };
        anyhow::anyhow!("{what} in {}: {detail}{hint}", self.described)
    }

    /// Every kflex backup of `control_plane` (complete, with a manifest that says it is that
    /// control plane's), and what else is under its prefix.
    pub async fn list(&self, control_plane: &str) -> anyhow::Result<Vec<Found>> {
        let dir = self.path(&[control_plane]);
        let listing = self
            .inner
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|err| self.clean(&format!("listing the backups of {control_plane}"), &err))?;
        let mut found = Vec::new();
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        names.sort();
        for name in names {
            found.push(match self.manifest(control_plane, &name).await? {
                Some(manifest) => match manifest.foreign(control_plane, &name) {
                    None => Found::Backup(manifest),
                    Some(why) => Found::NotABackup { name, why },
                },
                None => Found::NotABackup {
                    name,
                    why: "it has no manifest (a backup being written, or one that failed)"
                        .to_owned(),
                },
            });
        }
        Ok(found)
    }

    /// The manifest of `control_plane`'s backup `name`, if there is one.
    pub async fn manifest(
        &self,
        control_plane: &str,
        name: &str,
    ) -> anyhow::Result<Option<Manifest>> {
        let path = self.path(&[control_plane, name, MANIFEST_OBJECT]);
        let what = format!("reading the manifest of backup {name} of {control_plane}");
        let bytes = match self.inner.get(&path).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|err| self.clean(&what, &err))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(self.clean(&what, &err)),
        };
        let manifest = serde_json::from_slice(&bytes).map_err(|err| {
            anyhow::anyhow!(
                "{what} in {}: it is not a kflex manifest ({err})",
                self.described
            )
        })?;
        Ok(Some(manifest))
    }

    /// Whether anything exists under `control_plane`'s backup `name`.
    pub async fn exists(&self, control_plane: &str, name: &str) -> anyhow::Result<bool> {
        let mut objects = self.inner.list(Some(&self.path(&[control_plane, name])));
        match objects.next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(err)) => Err(self.clean(&format!("looking for backup {name}"), &err)),
        }
    }

    /// A writer of `control_plane`'s backup `name`'s data.
    pub async fn data_writer(&self, control_plane: &str, name: &str) -> anyhow::Result<DataWriter> {
        let path = self.path(&[control_plane, name, DATA_OBJECT]);
        let upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|err| self.clean(&format!("starting to write backup {name}"), &err))?;
        Ok(DataWriter {
            upload: Some(WriteMultipart::new(upload)),
        })
    }

    /// Finishes writing data (or, on `Err`, abandons it).
    pub async fn finish_data(&self, writer: DataWriter, name: &str) -> anyhow::Result<()> {
        let Some(upload) = writer.upload else {
            return Ok(());
        };
        upload
            .finish()
            .await
            .map(|_| ())
            .map_err(|err| self.clean(&format!("writing the data of backup {name}"), &err))
    }

    /// Writes a chunk of data.
    pub async fn write_data(
        &self,
        writer: &mut DataWriter,
        chunk: &[u8],
        name: &str,
    ) -> anyhow::Result<()> {
        if let Some(upload) = writer.upload.as_mut() {
            upload
                .wait_for_capacity(4)
                .await
                .map_err(|err| self.clean(&format!("writing the data of backup {name}"), &err))?;
            upload.write(chunk);
        }
        Ok(())
    }

    /// Abandons a data upload (after a failure).
    pub async fn abort_data(&self, writer: DataWriter) {
        if let Some(upload) = writer.upload {
            let _ = upload.abort().await;
        }
    }

    /// Writes the manifest, which makes the backup complete.
    pub async fn put_manifest(&self, manifest: &Manifest) -> anyhow::Result<()> {
        let path = self.path(&[&manifest.control_plane, &manifest.name, MANIFEST_OBJECT]);
        let body = serde_json::to_vec_pretty(manifest).context("writing the manifest")?;
        self.inner
            .put(&path, PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(|err| {
                self.clean(
                    &format!("writing the manifest of backup {}", manifest.name),
                    &err,
                )
            })
    }

    /// The data of `control_plane`'s backup `name`, chunk by chunk.
    pub async fn data(
        &self,
        control_plane: &str,
        name: &str,
    ) -> anyhow::Result<BoxStream<'static, anyhow::Result<Bytes>>> {
        let path = self.path(&[control_plane, name, DATA_OBJECT]);
        let what = format!("reading the data of backup {name} of {control_plane}");
        let result = match self.inner.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => anyhow::bail!(
                "{what} in {}: its data object {DATA_OBJECT} is missing",
                self.described
            ),
            Err(err) => return Err(self.clean(&what, &err)),
        };
        let described = self.described.clone();
        let secrets = self.secrets.clone();
        Ok(result
            .into_stream()
            .map(move |chunk| {
                chunk.map_err(|err| {
                    anyhow::anyhow!(
                        "{what} in {described}: {}",
                        clean_text(&err.to_string(), &secrets)
                    )
                })
            })
            .boxed())
    }

    /// Removes `control_plane`'s backup `name`: its data, then its manifest (so an interrupted
    /// removal is found again by the next retention pass and finished).
    pub async fn remove(&self, control_plane: &str, name: &str) -> anyhow::Result<()> {
        for object in [DATA_OBJECT, MANIFEST_OBJECT] {
            let path = self.path(&[control_plane, name, object]);
            match self.inner.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => {
                    return Err(
                        self.clean(&format!("removing backup {name} of {control_plane}"), &err)
                    );
                }
            }
        }
        Ok(())
    }
}

/// An upload of a backup's data in progress.
pub struct DataWriter {
    upload: Option<WriteMultipart>,
}

impl std::fmt::Debug for DataWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataWriter").finish_non_exhaustive()
    }
}

/// `text` with every one of `secrets` replaced.
pub fn clean_text(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "[redacted]");
    }
    kflex_core::text::escape_unsafe(&text).into_owned()
}

/// The storage flags every `kflex bootstrap backup` program takes.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The storage entry's name (setting backup.storage).
    #[arg(long)]
    pub store: String,
    /// A directory store: where the volume claim is mounted.
    #[arg(
        long,
        conflicts_with = "s3_bucket",
        required_unless_present = "s3_bucket"
    )]
    pub pvc_dir: Option<PathBuf>,
    #[arg(long, requires_all = ["s3_region", "s3_credentials_dir"])]
    pub s3_bucket: Option<String>,
    #[arg(long)]
    pub s3_region: Option<String>,
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    #[arg(long)]
    pub s3_prefix: Option<String>,
    /// Where the credentials Secret is mounted (keys accessKeyId, secretAccessKey, optional
    /// sessionToken and ca.crt).
    #[arg(long)]
    pub s3_credentials_dir: Option<PathBuf>,
    #[arg(long)]
    pub s3_server_side_encryption: Option<String>,
    #[arg(long)]
    pub s3_kms_key_id: Option<String>,
    #[arg(long)]
    pub s3_allow_http: bool,
    #[arg(long)]
    pub s3_virtual_hosted_style: bool,
}

impl StoreArgs {
    /// Opens the store the flags describe.
    pub fn open(&self) -> anyhow::Result<Store> {
        if let Some(dir) = &self.pvc_dir {
            return Store::directory(&self.store, dir);
        }
        let (Some(bucket), Some(region), Some(dir)) =
            (&self.s3_bucket, &self.s3_region, &self.s3_credentials_dir)
        else {
            anyhow::bail!(
                "--pvc-dir, or --s3-bucket with --s3-region and --s3-credentials-dir, is required"
            );
        };
        let config = S3Config {
            bucket: bucket.clone(),
            region: region.clone(),
            endpoint: self.s3_endpoint.clone().unwrap_or_default(),
            prefix: self.s3_prefix.clone().unwrap_or_default(),
            server_side_encryption: self.s3_server_side_encryption.clone().unwrap_or_default(),
            kms_key_id: self.s3_kms_key_id.clone().unwrap_or_default(),
            allow_http: self.s3_allow_http,
            virtual_hosted_style: self.s3_virtual_hosted_style,
        };
        let credentials =
            Credentials::from_dir(dir).with_context(|| format!("backup store {}", self.store))?;
        Store::s3(&self.store, &config, &credentials)
    }
}
