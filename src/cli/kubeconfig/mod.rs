//! The user's kubeconfig, as kflex edits it for `ctx`, `create`, `delete` and `init`: one or more
//! files read and written with kubectl's rules (see [`files`]), the entries of a control plane
//! (context `<cp>`, cluster `<cp>-cluster`, user `<cp>-admin`), and kflex's own extension
//! ([`extension`]). It never talks to a cluster.

pub mod extension;
pub mod files;
pub mod lock;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};

pub use files::Sources;

/// A named-entry list of a kubeconfig.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Clusters,
    Users,
    Contexts,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Self::Clusters => "clusters",
            Self::Users => "users",
            Self::Contexts => "contexts",
        }
    }

    /// The key of an entry's body (`cluster`, `user`, `context`).
    fn body(self) -> &'static str {
        match self {
            Self::Clusters => "cluster",
            Self::Users => "user",
            Self::Contexts => "context",
        }
    }
}

/// The names of a control plane's entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryNames {
    pub context: String,
    pub cluster: String,
    pub user: String,
}

impl EntryNames {
    /// kflex's (and KubeFlex's) convention for control plane `name`.
    pub fn of(name: &str) -> Self {
        Self {
            context: name.to_owned(),
            cluster: format!("{name}-cluster"),
            user: format!("{name}-admin"),
        }
    }
}

/// The user's kubeconfig files, merged for reading, each written back only if it changed.
#[derive(Clone, Debug)]
pub struct Kubeconfigs {
    files: Vec<files::File>,
}

impl Kubeconfigs {
    /// Reads every file of `sources` (missing ones are empty).
    pub fn load(sources: &Sources) -> anyhow::Result<Self> {
        let files = sources
            .paths
            .iter()
            .map(|path| files::File::read(path))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { files })
    }

    /// The paths read, in precedence order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|file| file.path.as_path())
    }

    /// Where new entries go: kubectl's choice, the first file that exists, else the last.
    fn default_file(&self) -> usize {
        self.files
            .iter()
            .position(|file| file.existed)
            .unwrap_or(self.files.len().saturating_sub(1))
    }

    fn entries(document: &Map<String, Value>, section: Section) -> &[Value] {
        match document.get(section.key()) {
            Some(Value::Array(entries)) => entries,
            _ => &[],
        }
    }

    fn position(document: &Map<String, Value>, section: Section, name: &str) -> Option<usize> {
        Self::entries(document, section)
            .iter()
            .position(|entry| entry.get("name").and_then(Value::as_str) == Some(name))
    }

    /// The file and index defining entry `name`: the first file wins, as when kubectl reads.
    fn locate(&self, section: Section, name: &str) -> Option<(usize, usize)> {
        self.files.iter().enumerate().find_map(|(file, content)| {
            Self::position(&content.document, section, name).map(|index| (file, index))
        })
    }

    /// Entry `name` of `section` (the whole `{name, <body>}` item).
    pub fn entry(&self, section: Section, name: &str) -> Option<&Value> {
        let (file, index) = self.locate(section, name)?;
        Self::entries(&self.files[file].document, section).get(index)
    }

    /// Entry `name` and the file defining it (file references in it are relative to that file).
    pub fn entry_with_file(
        &self,
        section: Section,
        name: &str,
    ) -> Option<(&std::path::Path, &Value)> {
        let (file, index) = self.locate(section, name)?;
        let file = &self.files[file];
        Some((
            file.path.as_path(),
            Self::entries(&file.document, section).get(index)?,
        ))
    }

    /// The body of entry `name` (`cluster`, `user` or `context`).
    pub fn body(&self, section: Section, name: &str) -> Option<&Map<String, Value>> {
        self.entry(section, name)?
            .get(section.body())
            .and_then(Value::as_object)
    }

    pub fn has_context(&self, name: &str) -> bool {
        self.locate(Section::Contexts, name).is_some()
    }

    /// Every context name, merged, in file order without duplicates.
    pub fn context_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for file in &self.files {
            for entry in Self::entries(&file.document, Section::Contexts) {
                if let Some(name) = entry.get("name").and_then(Value::as_str)
                    && !names.iter().any(|known| known == name)
                {
                    names.push(name.to_owned());
                }
            }
        }
        names
    }

    /// Adds entry `item` (which carries its `name`) or replaces it where it is defined.
    pub fn upsert(&mut self, section: Section, item: Value) -> anyhow::Result<()> {
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .context("a kubeconfig entry without a name")?
            .to_owned();
        let (file, index) = match self.locate(section, &name) {
            Some((file, index)) => (file, Some(index)),
            None => (self.default_file(), None),
        };
        let file = self
            .files
            .get_mut(file)
            .context("no kubeconfig file to write to")?;
        let list = file
            .document
            .entry(section.key())
            .or_insert_with(|| Value::Array(Vec::new()));
        if list.is_null() {
            *list = Value::Array(Vec::new());
        }
        let Value::Array(list) = list else {
            bail!(
                "kubeconfig {}: {} is not a list",
                file.path.display(),
                section.key()
            );
        };
        match index {
            Some(index) => list[index] = item,
            None => list.push(item),
        }
        file.changed = true;
        Ok(())
    }

    /// Removes entry `name` from every file defining it; whether there was one.
    pub fn remove(&mut self, section: Section, name: &str) -> bool {
        let mut removed = false;
        for file in &mut self.files {
            if let Some(Value::Array(list)) = file.document.get_mut(section.key()) {
                let before = list.len();
                list.retain(|entry| entry.get("name").and_then(Value::as_str) != Some(name));
                if list.len() != before {
                    removed = true;
                    file.changed = true;
                }
            }
        }
        removed
    }

    /// The merged current context: from the first file that sets one.
    pub fn current_context(&self) -> Option<&str> {
        self.files.iter().find_map(|file| {
            file.document
                .get("current-context")
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
        })
    }

    /// Sets the current context, in the file that sets it now (else the default file).
    pub fn set_current_context(&mut self, name: &str) -> anyhow::Result<()> {
        if !self.has_context(name) {
            bail!("there is no context {name:?} in the kubeconfig");
        }
        if self.current_context() == Some(name) {
            return Ok(());
        }
        let index = self
            .files
            .iter()
            .position(|file| {
                file.document
                    .get("current-context")
                    .and_then(Value::as_str)
                    .is_some_and(|current| !current.is_empty())
            })
            .unwrap_or(self.default_file());
        let file = self
            .files
            .get_mut(index)
            .context("no kubeconfig file to write to")?;
        file.document
            .insert("current-context".into(), Value::String(name.to_owned()));
        file.changed = true;
        Ok(())
    }

    /// Clears the current context wherever it is set.
    pub fn clear_current_context(&mut self) {
        for file in &mut self.files {
            if file.document.remove("current-context").is_some() {
                file.changed = true;
            }
        }
    }

    /// A mutable context body, for extension edits.
    fn context_body_mut(&mut self, name: &str) -> Option<&mut Map<String, Value>> {
        let (file, index) = self.locate(Section::Contexts, name)?;
        let file = self.files.get_mut(file)?;
        file.changed = true;
        let entry = file
            .document
            .get_mut(Section::Contexts.key())?
            .as_array_mut()?
            .get_mut(index)?
            .as_object_mut()?;
        let body = entry
            .entry("context")
            .or_insert_with(|| Value::Object(Map::new()));
        if !body.is_object() {
            *body = Value::Object(Map::new());
        }
        body.as_object_mut()
    }

    /// The top-level document holding (or to hold) the global extension.
    fn global_document_mut(&mut self) -> Option<&mut Map<String, Value>> {
        let index = self
            .files
            .iter()
            .position(|file| extension::find(&file.document).is_some())
            .unwrap_or(self.default_file());
        let file = self.files.get_mut(index)?;
        file.changed = true;
        Some(&mut file.document)
    }

    /// The global kflex extension's data, from the first file holding one.
    pub fn global_extension(&self) -> Option<Map<String, Value>> {
        self.files
            .iter()
            .find_map(|file| extension::find(&file.document))
    }

    /// A context's kflex extension data.
    pub fn context_extension(&self, context: &str) -> Option<Map<String, Value>> {
        extension::find(self.body(Section::Contexts, context)?)
    }

    /// Applies `edit` to the files as they are on disk now, under kubectl's lock (see
    /// [`lock`]), and writes back every file that changed; `self` becomes the result. Reading
    /// again matters: `create` waits minutes for Ready, and writing back the copy it read at the
    /// start would drop whatever other commands wrote meanwhile. On an error nothing is written.
    pub fn update<T>(
        &mut self,
        edit: impl FnOnce(&mut Self) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.update_waiting(lock::DEFAULT_WAIT, edit)
    }

    /// [`Self::update`], waiting at most `wait` for other programs' locks.
    pub fn update_waiting<T>(
        &mut self,
        wait: Duration,
        edit: impl FnOnce(&mut Self) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let paths: Vec<PathBuf> = self.paths().map(Path::to_owned).collect();
        let _locks = lock::Locks::acquire(&paths, wait)?;
        let mut current = Self::load(&Sources { paths })?;
        let result = edit(&mut current)?;
        current.save()?;
        *self = current;
        Ok(result)
    }

    /// Writes every file that changed, each atomically.
    fn save(&self) -> anyhow::Result<()> {
        for file in self.files.iter().filter(|file| file.changed) {
            file.write()?;
        }
        Ok(())
    }
}

/// kflex's extension data key naming the hosting cluster's context.
pub const HOSTING_CONTEXT: &str = "hosting-cluster-ctx-name";
/// KubeFlex's older name for it, still read.
const LEGACY_HOSTING_CONTEXT: &str = "kflex-initial-ctx-name";
/// A context's control plane.
pub const CONTROL_PLANE: &str = "controlplane-name";
/// Marks the hosting cluster's context.
pub const IS_HOSTING: &str = "is-hosting-cluster-ctx";

impl Kubeconfigs {
    /// The recorded hosting context, if recorded.
    pub fn hosting_context(&self) -> Option<String> {
        let data = self.global_extension()?;
        [HOSTING_CONTEXT, LEGACY_HOSTING_CONTEXT]
            .iter()
            .find_map(|key| data.get(*key).and_then(Value::as_str))
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
    }

    /// Records `context` as the hosting cluster's: in the global extension, and marked on that
    /// context alone (a previously recorded one loses its mark). Other extensions and other
    /// keys of kflex's own are kept.
    pub fn set_hosting_context(&mut self, context: &str) -> anyhow::Result<()> {
        if !self.has_context(context) {
            bail!(
                "there is no context {context:?} in the kubeconfig ({})",
                self.describe_paths()
            );
        }
        let marked: Vec<String> = self
            .context_names()
            .into_iter()
            .filter(|name| {
                name != context
                    && self
                        .context_extension(name)
                        .is_some_and(|data| data.contains_key(IS_HOSTING))
            })
            .collect();
        for name in marked {
            if let Some(body) = self.context_body_mut(&name) {
                extension::update(body, |data| {
                    data.remove(IS_HOSTING);
                });
            }
        }
        let body = self
            .context_body_mut(context)
            .with_context(|| format!("context {context:?} cannot be edited"))?;
        extension::update(body, |data| {
            data.insert(IS_HOSTING.into(), Value::String("true".into()));
        });
        let document = self
            .global_document_mut()
            .context("no kubeconfig file to write to")?;
        extension::update(document, |data| {
            data.remove(LEGACY_HOSTING_CONTEXT);
            data.insert(HOSTING_CONTEXT.into(), Value::String(context.to_owned()));
        });
        Ok(())
    }

    /// Records that `context` reaches control plane `control_plane`.
    pub fn set_control_plane(&mut self, context: &str, control_plane: &str) -> anyhow::Result<()> {
        let body = self
            .context_body_mut(context)
            .with_context(|| format!("there is no context {context:?} in the kubeconfig"))?;
        extension::update(body, |data| {
            data.insert(
                CONTROL_PLANE.into(),
                Value::String(control_plane.to_owned()),
            );
        });
        Ok(())
    }

    /// The files, for messages: "a, b".
    /// Whether any of the files exists (a missing one reads as empty).
    pub fn any_exists(&self) -> bool {
        self.files.iter().any(|file| file.existed)
    }

    pub fn describe_paths(&self) -> String {
        self.paths()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
