//! Writing rendered manifests: one stream on stdout, or one file per object in a directory.
//! Formatting ([`finish`]) happens where the objects were rendered (on worker threads);
//! [`write()`] then writes everything at once, so an error leaves stdout empty.
//!
//! A directory is a mirror of one run: each set's directory is replaced as a whole, and a set
//! directory an earlier run wrote that this run does not render (a ControlPlane removed from the
//! input) is removed, so GitOps tools reading the directory never apply stale objects. Only
//! directories kflex wrote are replaced or removed: it recognises them by the first line of
//! their `kustomization.yaml`, and they hold files only. Anything else in the directory is left
//! alone, and a file, symbolic link or other directory where a set must go is refused.
//!
//! The directory changes all or nothing. Every set is written to one staging directory inside
//! it (the same filesystem), then swapped in by renames, the sets it replaces and the stale ones
//! moved into the staging directory; on any error every rename is undone, so the directory is
//! exactly as it was, and the staging directory is removed. Every path written is checked to be
//! one plain name inside the directory, whatever the renderer made of the objects' names.

use std::io::{Read as _, Write as _};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};
use kflex_core::manifest::{EmitError, Manifest, file_name, to_json_list, to_yaml_stream};

/// Where and how output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub json: bool,
    /// `None` for stdout.
    pub dir: Option<PathBuf>,
}

/// One rendered set (`system` or a control plane), ready to be written.
#[derive(Debug)]
pub enum Formatted {
    /// A YAML stream, for stdout.
    Yaml(String),
    /// Objects kept for a single JSON list on stdout.
    Objects(Vec<Manifest>),
    /// File name and content, for a directory.
    Files(Vec<(String, String)>),
}

/// Formats one set's objects for `target`.
pub fn finish(manifests: Vec<Manifest>, target: &Target) -> Result<Formatted, EmitError> {
    match (&target.dir, target.json) {
        (None, false) => to_yaml_stream(&manifests).map(Formatted::Yaml),
        (None, true) => Ok(Formatted::Objects(manifests)),
        (Some(_), json) => files(&manifests, json).map(Formatted::Files),
    }
}

/// Writes every set: to stdout in one write, or each to `dir/<set name>/`.
pub fn write(target: &Target, sets: Vec<(String, Formatted)>) -> anyhow::Result<()> {
    match &target.dir {
        Some(dir) => {
            let mut files = Vec::with_capacity(sets.len());
            for (set, formatted) in sets {
                let Formatted::Files(content) = formatted else {
                    bail!("internal: set {set} was not formatted as files");
                };
                files.push((set, content));
            }
            Ok(write_dir(dir, files, &mut |from, to| {
                std::fs::rename(from, to)
            })?)
        }
        None => {
            let mut text = String::new();
            let mut objects = Vec::new();
            for (_, formatted) in sets {
                match formatted {
                    Formatted::Yaml(part) => text.push_str(&part),
                    Formatted::Objects(part) => objects.extend(part),
                    Formatted::Files(_) => bail!("files cannot be printed to stdout"),
                }
            }
            if target.json {
                text = to_json_list(&objects)?;
            }
            print(&text)
        }
    }
}

/// Writes `text` to stdout: every command's output goes through here. A reader that went away
/// (`kflex list | head`) is not an error: nothing is left to tell it, so the command ends as it
/// would have (`println!` would panic and exit 101 instead).
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("failed to write to stdout"),
    }
}

/// [`print`] with a newline.
pub fn print_line(text: &str) -> anyhow::Result<()> {
    print(&format!("{text}\n"))
}

/// One file per object with a stable name, plus a `kustomization.yaml` listing them in install
/// order.
fn files(manifests: &[Manifest], json: bool) -> Result<Vec<(String, String)>, EmitError> {
    let mut files = Vec::with_capacity(manifests.len() + 1);
    for manifest in manifests {
        let single = std::slice::from_ref(manifest);
        if json {
            let list = to_json_list(single)?;
            let item: serde_json::Value = serde_json::from_str(&list).map_err(EmitError::Json)?;
            let mut text =
                serde_json::to_string_pretty(&item["items"][0]).map_err(EmitError::Json)?;
            text.push('\n');
            let name = file_name(manifest);
            let stem = name.strip_suffix(".yaml").unwrap_or(&name);
            files.push((format!("{stem}.json"), text));
        } else {
            let stream = to_yaml_stream(single)?;
            let text = stream.strip_prefix("---\n").unwrap_or(&stream).to_owned();
            files.push((file_name(manifest), text));
        }
    }
    let resources: String = files
        .iter()
        .map(|(name, _)| format!("- {name}\n"))
        .collect();
    files.push((
        KUSTOMIZATION.to_owned(),
        format!(
            "{MARKER}: the objects of this directory in install order.\n\
             apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{resources}"
        ),
    ));
    Ok(files)
}

/// The file listing a set's objects, which Flux, kustomize and `kubectl apply -k` read.
const KUSTOMIZATION: &str = "kustomization.yaml";
/// How a set's `kustomization.yaml` starts: marks the directory as kflex's to replace or remove.
const MARKER: &str = "# Written by kflex render";
/// Prefix of the staging directory inside the output directory. Set names never start with a
/// dot, so it is never a set's name.
const STAGING_PREFIX: &str = ".kflex-staging-";
/// A file in the staging directory marking it as kflex's, so that one an interrupted run left
/// behind (killed; an error removes it) is removed by the next run.
const STAGING_MARKER: &str = "kflex-render-staging";
/// The longest file name most filesystems take.
const MAX_NAME_BYTES: usize = 255;

/// A set's files: name and content.
type SetFiles = (String, Vec<(String, String)>);

/// Writing to the output directory failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "two rendered sets would both be written to {path}: rename the control plane {name:?} or render the system manifests to another directory"
    )]
    DuplicateSet { path: String, name: String },
    #[error("{what} {name:?} cannot be written as a name in {dir}: {reason}")]
    UnsafeName {
        what: &'static str,
        name: String,
        dir: String,
        reason: &'static str,
    },
    #[error("two objects of set {set:?} would both be written to {file}")]
    DuplicateFile { set: String, file: String },
    #[error(
        "{path} is {what}; kflex replaces or removes only set directories it wrote (their \
         {KUSTOMIZATION} starts with {MARKER:?}, and they hold files only), so nothing was \
         changed: move it away, or choose another --output-dir"
    )]
    NotKflex { path: String, what: String },
    #[error("{path} is not a directory")]
    NotADirectory { path: String },
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {dir}; nothing in it was changed")]
    RolledBack {
        dir: String,
        #[source]
        source: Box<OutputError>,
    },
    #[error(
        "failed to write {dir}, and then failed to undo the changes already made ({undo}); \
         the sets as they were before are in {backup}"
    )]
    UndoFailed {
        dir: String,
        undo: String,
        backup: String,
        #[source]
        source: Box<OutputError>,
    },
    #[error(
        "wrote every set to {dir}, but failed to remove the staging directory {staging} with the \
         sets it replaced: remove it before a GitOps tool reads {dir}"
    )]
    Cleanup {
        dir: String,
        staging: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OutputError {
    let path = path.display().to_string();
    move |source| OutputError::Io {
        action,
        path,
        source,
    }
}

/// Why `name` is not one plain path component, if it is not.
fn unsafe_name(name: &str) -> Option<&'static str> {
    let mut components = Path::new(name).components();
    let single = matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(part)), None) if part == name
    );
    if name.is_empty() {
        Some("it is empty")
    } else if name.contains('\0') {
        Some("it contains a NUL character")
    } else if !single || name.contains('/') || name.contains('\\') {
        Some("it is not a single plain name (a path separator, `.` or `..`)")
    } else if name.starts_with('.') {
        Some("it starts with a dot")
    } else if name.len() > MAX_NAME_BYTES {
        Some("it is longer than 255 bytes")
    } else {
        None
    }
}

/// What an existing entry of the output directory is.
#[derive(Debug)]
enum Found {
    /// A set directory kflex wrote.
    Set,
    /// A set directory kflex wrote that someone added a subdirectory to.
    SetWithSubdirectory(String),
    /// Something else, described.
    Other(&'static str),
}

impl Found {
    fn describe(&self) -> String {
        match self {
            Self::Set => "a set directory kflex wrote".to_owned(),
            Self::SetWithSubdirectory(name) => {
                format!("a set directory kflex wrote that now also holds the subdirectory {name:?}")
            }
            Self::Other(what) => (*what).to_owned(),
        }
    }
}

/// What the existing entry `path` is.
fn inspect(path: &Path) -> Result<Found, OutputError> {
    let metadata = std::fs::symlink_metadata(path).map_err(io("inspect", path))?;
    if metadata.file_type().is_symlink() {
        return Ok(Found::Other("a symbolic link"));
    }
    if !metadata.is_dir() {
        return Ok(Found::Other("a file"));
    }
    let kustomization = path.join(KUSTOMIZATION);
    match std::fs::symlink_metadata(&kustomization) {
        Ok(metadata) if metadata.is_file() => {
            // Only the marker's bytes are read, whatever the file's size.
            let mut start = Vec::with_capacity(MARKER.len());
            std::fs::File::open(&kustomization)
                .and_then(|file| file.take(MARKER.len() as u64).read_to_end(&mut start))
                .map_err(io("read", &kustomization))?;
            if start != MARKER.as_bytes() {
                return Ok(Found::Other(
                    "a directory whose kustomization.yaml does not start with kflex's mark",
                ));
            }
        }
        Ok(_) => {
            return Ok(Found::Other(
                "a directory whose kustomization.yaml is not a regular file",
            ));
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Found::Other("a directory without kustomization.yaml"));
        }
        Err(err) => return Err(io("inspect", &kustomization)(err)),
    }
    // A set kflex wrote holds files only; a subdirectory is someone else's, and removing it
    // could fail half-way.
    for entry in std::fs::read_dir(path).map_err(io("read", path))? {
        let entry = entry.map_err(io("read", path))?;
        if entry
            .file_type()
            .map_err(io("inspect", &entry.path()))?
            .is_dir()
        {
            return Ok(Found::SetWithSubdirectory(
                entry.file_name().to_string_lossy().into_owned(),
            ));
        }
    }
    Ok(Found::Set)
}

/// Whether `path` is a staging directory an interrupted run left behind.
fn leftover_staging(path: &Path, name: &str) -> bool {
    name.starts_with(STAGING_PREFIX)
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        && std::fs::symlink_metadata(path.join(STAGING_MARKER)).is_ok_and(|m| m.is_file())
}

/// Makes `dir` hold exactly `sets` (each `dir/<set>/`) plus what else it held that is not
/// kflex's, all or nothing (see the module documentation). `rename` moves directories: always
/// `std::fs::rename`, except in tests that make it fail.
fn write_dir(
    dir: &Path,
    sets: Vec<SetFiles>,
    rename: &mut dyn FnMut(&Path, &Path) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    check_names(dir, &sets)?;
    let created = create_output_dir(dir)?;
    let result = write_existing_dir(dir, &sets, rename);
    if result.is_err() {
        // Directories this run created go again, deepest first; they hold nothing now.
        for path in created.iter().rev() {
            let _ = std::fs::remove_dir(path);
        }
    }
    result
}

/// Refuses set and file names that are not one plain name, and names used twice.
fn check_names(dir: &Path, sets: &[SetFiles]) -> Result<(), OutputError> {
    let mut names: Vec<&str> = Vec::with_capacity(sets.len());
    for (set, files) in sets {
        if let Some(reason) = unsafe_name(set) {
            return Err(OutputError::UnsafeName {
                what: "set",
                name: set.clone(),
                dir: dir.display().to_string(),
                reason,
            });
        }
        let set_dir = dir.join(set).display().to_string();
        let mut file_names: Vec<&str> = Vec::with_capacity(files.len());
        for (file, _) in files {
            if let Some(reason) = unsafe_name(file) {
                return Err(OutputError::UnsafeName {
                    what: "file",
                    name: file.clone(),
                    dir: set_dir,
                    reason,
                });
            }
            file_names.push(file);
        }
        file_names.sort_unstable();
        if let Some(pair) = file_names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(OutputError::DuplicateFile {
                set: set.clone(),
                file: pair[0].to_owned(),
            });
        }
        names.push(set);
    }
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(OutputError::DuplicateSet {
            path: dir.join(pair[0]).display().to_string(),
            name: pair[0].to_owned(),
        });
    }
    Ok(())
}

/// Creates `dir` and its missing parents; returns the directories it created, outermost first.
fn create_output_dir(dir: &Path) -> Result<Vec<PathBuf>, OutputError> {
    let mut missing = Vec::new();
    let mut current = Some(dir);
    while let Some(path) = current.filter(|p| !p.as_os_str().is_empty()) {
        match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => break,
            Ok(_) => {
                return Err(OutputError::NotADirectory {
                    path: path.display().to_string(),
                });
            }
            Err(_) => missing.push(path.to_path_buf()),
        }
        current = path.parent();
    }
    missing.reverse();
    for (index, path) in missing.iter().enumerate() {
        if let Err(err) = std::fs::create_dir(path) {
            for created in missing[..index].iter().rev() {
                let _ = std::fs::remove_dir(created);
            }
            return Err(io("create", path)(err));
        }
    }
    Ok(missing)
}

/// One rename done, to undo if a later step fails.
struct Moved {
    from: PathBuf,
    to: PathBuf,
}

fn write_existing_dir(
    dir: &Path,
    sets: &[SetFiles],
    rename: &mut dyn FnMut(&Path, &Path) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    // Decide everything before changing anything.
    let mut replaced = Vec::new();
    for (set, _) in sets {
        let path = dir.join(set);
        match std::fs::symlink_metadata(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io("inspect", &path)(err)),
            Ok(_) => match inspect(&path)? {
                Found::Set => replaced.push(set.as_str()),
                other => {
                    return Err(OutputError::NotKflex {
                        path: path.display().to_string(),
                        what: other.describe(),
                    });
                }
            },
        }
    }
    let mut stale = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(io("read", dir))?;
    for entry in entries {
        let entry = entry.map_err(io("read", dir))?;
        let path = entry.path();
        // Set names are text: an entry whose name is not is no set.
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // Never follow a symbolic link out of the directory.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || sets.iter().any(|(set, _)| *set == name) {
            continue;
        }
        if leftover_staging(&path, &name) {
            stale.push(name);
        } else if !name.starts_with('.') {
            match inspect(&path)? {
                Found::Set => stale.push(name),
                // Refused rather than skipped: it would stay behind for a GitOps tool to apply.
                found @ Found::SetWithSubdirectory(_) => {
                    return Err(OutputError::NotKflex {
                        path: path.display().to_string(),
                        what: found.describe(),
                    });
                }
                Found::Other(_) => {}
            }
        }
    }

    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(dir)
        .map_err(io("create a staging directory in", dir))?;
    let result = stage_and_swap(dir, staging.path(), sets, &replaced, &stale, rename);
    match result {
        Ok(()) => {
            let staging_path = staging.path().display().to_string();
            staging.close().map_err(|source| OutputError::Cleanup {
                dir: dir.display().to_string(),
                staging: staging_path,
                source,
            })
        }
        Err(err @ OutputError::UndoFailed { .. }) => {
            // Keep the staging directory: it holds what could not be moved back.
            let _ = staging.keep();
            Err(err)
        }
        Err(err) => Err(err),
    }
}

/// Writes every set into `staging/new/`, then moves the sets it replaces and the `stale` ones
/// into `staging/old/` and the new ones into `dir`, undoing every move if one fails.
fn stage_and_swap(
    dir: &Path,
    staging: &Path,
    sets: &[SetFiles],
    replaced: &[&str],
    stale: &[String],
    rename: &mut dyn FnMut(&Path, &Path) -> std::io::Result<()>,
) -> Result<(), OutputError> {
    let rolled_back = |source: OutputError| OutputError::RolledBack {
        dir: dir.display().to_string(),
        source: Box::new(source),
    };
    let marker = staging.join(STAGING_MARKER);
    std::fs::write(&marker, "").map_err(|err| rolled_back(io("write", &marker)(err)))?;
    let new = staging.join("new");
    let old = staging.join("old");
    for path in [&new, &old] {
        std::fs::create_dir(path).map_err(|err| rolled_back(io("create", path)(err)))?;
    }
    for (set, files) in sets {
        let set_dir = new.join(set);
        std::fs::create_dir(&set_dir).map_err(|err| rolled_back(io("create", &set_dir)(err)))?;
        for (file, text) in files {
            let path = set_dir.join(file);
            write_new(&path, text).map_err(|err| rolled_back(io("write", &path)(err)))?;
        }
    }

    let mut steps: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (set, _) in sets {
        if replaced.contains(&set.as_str()) {
            steps.push((dir.join(set), old.join(set)));
        }
        steps.push((new.join(set), dir.join(set)));
    }
    for name in stale {
        steps.push((dir.join(name), old.join(name)));
    }
    let mut done: Vec<Moved> = Vec::with_capacity(steps.len());
    for (from, to) in steps {
        if let Err(err) = rename(&from, &to) {
            let failure = io("move", &from)(err);
            return Err(undo(dir, &old, done, rename, failure));
        }
        done.push(Moved { from, to });
    }
    Ok(())
}

/// Writes `text` to a file that must not exist yet.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// Moves everything in `done` back, last first, after `failure`.
fn undo(
    dir: &Path,
    old: &Path,
    done: Vec<Moved>,
    rename: &mut dyn FnMut(&Path, &Path) -> std::io::Result<()>,
    failure: OutputError,
) -> OutputError {
    for moved in done.into_iter().rev() {
        if let Err(err) = rename(&moved.to, &moved.from) {
            return OutputError::UndoFailed {
                dir: dir.display().to_string(),
                undo: format!(
                    "moving {} back to {}: {err}",
                    moved.to.display(),
                    moved.from.display()
                ),
                backup: old.display().to_string(),
                source: Box::new(failure),
            };
        }
    }
    OutputError::RolledBack {
        dir: dir.display().to_string(),
        source: Box::new(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Every entry under `root`: a directory, a file's bytes, or a link's target.
    fn snapshot(root: &Path) -> BTreeMap<String, String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.strip_prefix(root).unwrap().display().to_string();
                let metadata = std::fs::symlink_metadata(&path).unwrap();
                if metadata.file_type().is_symlink() {
                    let target = std::fs::read_link(&path).unwrap();
                    out.insert(name, format!("-> {}", target.display()));
                } else if metadata.is_dir() {
                    out.insert(name, "dir".to_owned());
                    walk(root, &path, out);
                } else {
                    out.insert(name, std::fs::read_to_string(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    fn set(name: &str, objects: &[&str]) -> SetFiles {
        let mut files: Vec<(String, String)> = objects
            .iter()
            .map(|o| (format!("{o}.yaml"), format!("kind: {o}\n")))
            .collect();
        files.push((
            KUSTOMIZATION.to_owned(),
            format!("{MARKER}: {name}\nresources: []\n"),
        ));
        (name.to_owned(), files)
    }

    fn rename_ok(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }

    /// An output directory an earlier run wrote (sets `a` and `stale`), plus a user's files.
    fn earlier_run() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_dir(
            dir.path(),
            vec![set("a", &["old"]), set("stale", &["gone"])],
            &mut rename_ok,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("mine")).unwrap();
        std::fs::write(
            dir.path().join("mine/kustomization.yaml"),
            "resources: []\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "keep").unwrap();
        dir
    }

    #[test]
    fn a_run_replaces_its_sets_removes_stale_ones_and_keeps_the_rest() {
        let dir = earlier_run();
        write_dir(
            dir.path(),
            vec![set("a", &["new"]), set("b", &["x"])],
            &mut rename_ok,
        )
        .unwrap();
        let names: Vec<String> = snapshot(dir.path()).into_keys().collect();
        assert_eq!(
            names,
            [
                "a",
                "a/kustomization.yaml",
                "a/new.yaml",
                "b",
                "b/kustomization.yaml",
                "b/x.yaml",
                "mine",
                "mine/kustomization.yaml",
                "notes.txt"
            ]
        );
    }

    #[test]
    fn a_failed_move_at_any_step_leaves_the_directory_exactly_as_it_was() {
        // a aside, a in, b in, stale aside: four moves; each is made to fail in turn.
        for failing in 0..4 {
            let dir = earlier_run();
            let before = snapshot(dir.path());
            let mut calls = 0;
            let mut rename = |from: &Path, to: &Path| {
                calls += 1;
                if calls == failing + 1 {
                    return Err(std::io::Error::other("injected"));
                }
                std::fs::rename(from, to)
            };
            let err = write_dir(
                dir.path(),
                vec![set("a", &["new"]), set("b", &["x"])],
                &mut rename,
            )
            .unwrap_err();
            assert!(
                matches!(err, OutputError::RolledBack { .. }),
                "step {failing}: {err}"
            );
            assert_eq!(snapshot(dir.path()), before, "step {failing}");
        }
    }

    #[test]
    fn when_undoing_fails_too_the_old_sets_are_kept_and_named() {
        let dir = earlier_run();
        let mut calls = 0;
        // The third move fails, and so does moving the second back.
        let mut rename = |from: &Path, to: &Path| {
            calls += 1;
            if calls == 3 || calls == 4 {
                return Err(std::io::Error::other("injected"));
            }
            std::fs::rename(from, to)
        };
        let err = write_dir(
            dir.path(),
            vec![set("a", &["new"]), set("b", &["x"])],
            &mut rename,
        )
        .unwrap_err();
        let OutputError::UndoFailed { backup, .. } = &err else {
            panic!("{err}")
        };
        let kept = Path::new(backup).join("a/old.yaml");
        assert!(kept.is_file(), "{err}");
    }

    #[test]
    fn only_directories_kflex_wrote_are_replaced() {
        let dir = earlier_run();
        std::fs::create_dir(dir.path().join("a/sub")).unwrap();
        std::fs::write(dir.path().join("file"), "mine").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("mine", dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("unmarked")).unwrap();
        std::fs::write(
            dir.path().join("unmarked/kustomization.yaml"),
            "# Written by hand\n",
        )
        .unwrap();
        let before = snapshot(dir.path());
        for (name, what) in [
            (
                "mine",
                "a directory whose kustomization.yaml does not start",
            ),
            (
                "unmarked",
                "a directory whose kustomization.yaml does not start",
            ),
            ("notes.txt", "a file"),
            ("file", "a file"),
            #[cfg(unix)]
            ("link", "a symbolic link"),
            (
                "a",
                "a set directory kflex wrote that now also holds the subdirectory \"sub\"",
            ),
        ] {
            let err = write_dir(dir.path(), vec![set(name, &["x"])], &mut rename_ok).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("{} is {what}", dir.path().join(name).display())),
                "{err}"
            );
            assert_eq!(snapshot(dir.path()), before, "{name}");
        }
        // A set kflex wrote that someone added a subdirectory to is not removed as stale either.
        let err = write_dir(dir.path(), vec![set("b", &["x"])], &mut rename_ok).unwrap_err();
        assert!(err.to_string().contains("subdirectory"), "{err}");
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn hostile_set_and_file_names_are_refused_before_anything_is_written() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("out");
        let long = "x".repeat(256);
        for name in [
            "../escape",
            "/tmp/absolute",
            "a/b",
            "",
            ".",
            "..",
            ".hidden",
            "nul\0byte",
            long.as_str(),
        ] {
            let err = write_dir(&dir, vec![set(name, &["x"])], &mut rename_ok).unwrap_err();
            assert!(
                matches!(err, OutputError::UnsafeName { what: "set", .. }),
                "{name:?}: {err}"
            );
            let mut files = set("ok", &[]);
            files.1.push((name.to_owned(), "kind: X\n".to_owned()));
            let err = write_dir(&dir, vec![files], &mut rename_ok).unwrap_err();
            assert!(
                matches!(err, OutputError::UnsafeName { what: "file", .. }),
                "{name:?}: {err}"
            );
        }
        let mut twice = set("ok", &["x"]);
        twice.1.push(("x.yaml".to_owned(), "kind: Y\n".to_owned()));
        let err = write_dir(&dir, vec![twice], &mut rename_ok).unwrap_err();
        assert!(matches!(err, OutputError::DuplicateFile { .. }), "{err}");
        assert!(!dir.exists(), "nothing was created");
        assert_eq!(snapshot(parent.path()), BTreeMap::new());
    }

    #[test]
    fn a_directory_this_run_created_goes_again_on_failure() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("new/out");
        let mut fail = |_: &Path, _: &Path| Err(std::io::Error::other("injected"));
        write_dir(&dir, vec![set("a", &["x"])], &mut fail).unwrap_err();
        assert_eq!(snapshot(parent.path()), BTreeMap::new());
    }

    #[test]
    fn a_staging_directory_an_interrupted_run_left_is_removed() {
        let dir = earlier_run();
        let leftover = dir.path().join(".kflex-staging-abc123");
        std::fs::create_dir_all(leftover.join("old/a")).unwrap();
        std::fs::write(leftover.join(STAGING_MARKER), "").unwrap();
        let unmarked = dir.path().join(".kflex-staging-mine");
        std::fs::create_dir(&unmarked).unwrap();
        write_dir(dir.path(), vec![set("a", &["new"])], &mut rename_ok).unwrap();
        assert!(!leftover.exists());
        assert!(
            unmarked.exists(),
            "only a directory with kflex's marker is removed"
        );
    }

    #[test]
    fn an_empty_run_removes_every_set_and_nothing_else() {
        let dir = earlier_run();
        write_dir(dir.path(), Vec::new(), &mut rename_ok).unwrap();
        let names: Vec<String> = snapshot(dir.path()).into_keys().collect();
        assert_eq!(names, ["mine", "mine/kustomization.yaml", "notes.txt"]);
    }
}
