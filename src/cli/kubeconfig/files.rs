//! Which kubeconfig files a command uses, reading them, and writing them back atomically.
//!
//! The precedence is kubectl's: `--kubeconfig`, else every file `$KUBECONFIG` lists, else
//! `~/.kube/config`. Documents are kept as plain values, so whatever kflex does not edit (other
//! tools' extensions, preferences, fields it does not know) is written back as it was read.
//! A file that is not YAML is refused with the line and column, never quoted: a kubeconfig
//! holds tokens and keys.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use kflex_core::yaml;
use serde_json::{Map, Value};

use crate::read::Reader;

/// Where the user's kubeconfig comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources {
    /// In precedence order; the first file defining an entry wins.
    pub paths: Vec<PathBuf>,
}

impl Sources {
    /// kubectl's rules: an explicit path, else the `$KUBECONFIG` list (empty items skipped,
    /// duplicates once), else `$HOME/.kube/config`.
    pub fn resolve(
        explicit: Option<&Path>,
        kubeconfig_env: Option<OsString>,
        home: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        if let Some(path) = explicit {
            return Ok(Self {
                paths: vec![path.to_owned()],
            });
        }
        if let Some(list) = kubeconfig_env {
            let mut paths: Vec<PathBuf> = Vec::new();
            for path in std::env::split_paths(&list) {
                if !path.as_os_str().is_empty() && !paths.contains(&path) {
                    paths.push(path);
                }
            }
            if !paths.is_empty() {
                return Ok(Self { paths });
            }
        }
        let home = home.context(
            "cannot find a kubeconfig: no --kubeconfig, no $KUBECONFIG and no $HOME for \
             ~/.kube/config",
        )?;
        Ok(Self {
            paths: vec![home.join(".kube").join("config")],
        })
    }

    /// From this process's environment.
    pub fn from_env(explicit: Option<&Path>) -> anyhow::Result<Self> {
        Self::resolve(
            explicit,
            std::env::var_os("KUBECONFIG"),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }
}

/// One kubeconfig file as read.
#[derive(Clone, Debug)]
pub struct File {
    pub path: PathBuf,
    pub document: Map<String, Value>,
    pub existed: bool,
    pub changed: bool,
}

impl File {
    /// Reads `path`; a missing file is an empty document (kubectl creates it on first write).
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = Reader::default()
            .read_path_if_exists(path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?;
        let Some(text) = text else {
            return Ok(Self {
                path: path.to_owned(),
                document: Map::new(),
                existed: false,
                changed: false,
            });
        };
        let document = parse(&text).with_context(|| format!("kubeconfig {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            document,
            existed: true,
            changed: false,
        })
    }

    /// Writes the document back: to a temporary file beside it, flushed, then renamed over it,
    /// so a reader sees the old file or the new one and never half of one. The file keeps its
    /// permissions (a new one is readable by its owner only), and a
    /// symbolic link is written through, not replaced.
    pub fn write(&self) -> anyhow::Result<()> {
        let target = match std::fs::canonicalize(&self.path) {
            Ok(resolved) => resolved,
            Err(_) => self.path.clone(),
        };
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        create_private_dir(&directory)?;
        let text = kflex_core::manifest::to_yaml_document(&Value::Object(self.document.clone()))
            .with_context(|| format!("encoding kubeconfig {}", self.path.display()))?;
        let mut temporary = tempfile::Builder::new()
            .prefix(".kflex-kubeconfig-")
            .tempfile_in(&directory)
            .with_context(|| {
                format!(
                    "creating a temporary file in {} to write the kubeconfig",
                    directory.display()
                )
            })?;
        let context = || format!("writing kubeconfig {}", target.display());
        temporary.write_all(text.as_bytes()).with_context(context)?;
        temporary.as_file().sync_all().with_context(context)?;
        // A new file keeps tempfile's owner-only mode: a kubeconfig holds credentials.
        if let Ok(metadata) = std::fs::metadata(&target) {
            std::fs::set_permissions(temporary.path(), metadata.permissions())
                .with_context(context)?;
        }
        temporary
            .persist(&target)
            .map_err(|err| err.error)
            .with_context(context)?;
        Ok(())
    }
}

/// Parses one kubeconfig document; an empty file is an empty document.
pub fn parse(text: &str) -> anyhow::Result<Map<String, Value>> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let value: Value = yaml::from_str(text, yaml::Limits::default())
        .map_err(|err| anyhow::anyhow!("not valid YAML: {err}"))?;
    match value {
        Value::Object(document) => Ok(document),
        Value::Null => Ok(Map::new()),
        other => bail!(
            "not a kubeconfig: the document is {}, not a mapping",
            kflex_core::manifest::type_name(&other)
        ),
    }
}

pub(super) fn create_private_dir(directory: &Path) -> anyhow::Result<()> {
    if directory.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(directory).with_context(|| {
        format!(
            "creating directory {} for the kubeconfig",
            directory.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_wins_over_the_environment() {
        let sources = Sources::resolve(
            Some(Path::new("/given")),
            Some("/a:/b".into()),
            Some("/home/u".into()),
        )
        .unwrap();
        assert_eq!(sources.paths, vec![PathBuf::from("/given")]);
    }

    #[test]
    fn kubeconfig_is_a_list_like_kubectl_reads_it() {
        let sources =
            Sources::resolve(None, Some("/a::/b:/a".into()), Some("/home/u".into())).unwrap();
        assert_eq!(
            sources.paths,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }

    #[test]
    fn without_either_the_home_kubeconfig_is_used() {
        let sources = Sources::resolve(None, Some("".into()), Some("/home/u".into())).unwrap();
        assert_eq!(sources.paths, vec![PathBuf::from("/home/u/.kube/config")]);
        let err = Sources::resolve(None, None, None).unwrap_err();
        assert!(err.to_string().contains("$HOME"), "{err}");
    }

    #[test]
    fn a_broken_kubeconfig_is_located_not_quoted() {
        let err = parse("users:\n- name: u\n  user: {token: SECRET-TOKEN-123\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("not valid YAML: line "), "{err}");
        assert!(!err.contains("SECRET-TOKEN-123"), "{err}");
    }

    #[test]
    fn a_kubeconfig_that_is_not_a_mapping_is_refused() {
        let err = parse("- a\n- b\n").unwrap_err();
        assert!(err.to_string().contains("a list"), "{err}");
        assert!(parse("").unwrap().is_empty());
    }
}
