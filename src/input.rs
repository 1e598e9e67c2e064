//! Reading ControlPlanes and PostCreateHooks from files, directories and stdin.
//!
//! Every document must be a ControlPlane or a PostCreateHook of `tenancy.kflex.kubestellar.org/
//! v1alpha1` (a `v1/List` of them is unpacked). Fields kflex does not know are errors, so a typo
//! never silently changes what is rendered. Each error names the file, the document, the object
//! and the field; a file that is not YAML is named with the line and column, never quoted (see
//! [`kflex_core::yaml`]). Every input is read through a [`Reader`], within its byte caps.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use kflex_core::api::{
    API_VERSION, ControlPlane, GROUP, PostCreateHook, control_plane_name_problem, names,
};
use kflex_core::yaml::{self, ParseError};

use crate::read::{ReadError, Reader};

/// Where a document came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based.
    pub document: usize,
    /// Index in a `v1/List`'s items.
    pub item: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.file, self.document)?;
        if let Some(item) = self.item {
            write!(f, ", items[{item}]")?;
        }
        Ok(())
    }
}

/// A parsed object and where it was read.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub value: T,
    pub location: Location,
}

/// Everything read from the inputs, in input order.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub control_planes: Vec<Located<ControlPlane>>,
    pub hooks: Vec<Located<PostCreateHook>>,
}

/// An input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("failed to read {path}")]
    ReadDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: no .yaml, .yml or .json files in this directory")]
    EmptyDirectory { path: String },
    #[error("{}", describe_parse_error(file, error, *raise))]
    Parse {
        file: String,
        error: ParseError,
        /// The flag that raises the limit the input passed, if any.
        raise: Option<&'static str>,
    },
    #[error("{location}: {reason}")]
    Document { location: Location, reason: String },
    #[error("{location} ({kind} {name:?}): {field}: {reason}")]
    Field {
        location: Box<Location>,
        kind: &'static str,
        name: String,
        field: String,
        reason: String,
    },
}

/// "t.yaml: not valid YAML or JSON: line 3, column 5: <reason>", or for a limit "t.yaml: too
/// large to read: line 3: more than ... (raise it with <flag>)".
pub fn describe_parse_error(file: &str, error: &ParseError, raise: Option<&str>) -> String {
    if error.is_limit() {
        let hint = raise.map_or_else(String::new, |flag| format!(" (raise it with {flag})"));
        format!("{file}: too large to read: {error}{hint}")
    } else {
        format!("{file}: not valid YAML or JSON: {error}")
    }
}

/// Reads every path (`-` is stdin) through `reader`. Directories contribute their `.yaml`,
/// `.yml` and `.json` files in name order, and their subdirectories too when `recursive`.
pub fn load(
    paths: &[PathBuf],
    recursive: bool,
    stdin: impl Read,
    reader: &mut Reader,
) -> Result<Inputs, InputError> {
    let mut inputs = Inputs::default();
    let mut stdin = Some(stdin);
    for path in paths {
        if path.as_os_str() == "-" {
            let text = match stdin.take() {
                Some(stream) => reader.read_from("<stdin>", stream)?,
                None => String::new(),
            };
            parse_file("<stdin>", &text, reader, &mut inputs)?;
        } else if path.is_dir() {
            let files = files_in(path, path, recursive, &|_| true)?;
            if files.is_empty() {
                return Err(InputError::EmptyDirectory {
                    path: path.display().to_string(),
                });
            }
            for file in files {
                read_file(&file, reader, &mut inputs)?;
            }
        } else {
            read_file(path, reader, &mut inputs)?;
        }
    }
    Ok(inputs)
}

/// Every `.yaml`, `.yml` and `.json` file under `dir` and its subdirectories, in name order,
/// except hidden files and directories (`.git`, `.github`: not inputs) and files named `skip`
/// (a settings file that lives among the inputs). For a source directory handed over whole, as
/// Argo CD hands over an Application's.
pub fn discover(dir: &Path, skip: &str) -> Result<Vec<PathBuf>, InputError> {
    let wanted = |path: &Path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| !name.starts_with('.') && name != skip)
    };
    files_in(dir, dir, true, &wanted)
}

fn read_file(path: &Path, reader: &mut Reader, inputs: &mut Inputs) -> Result<(), InputError> {
    let text = reader.read_path(path)?;
    parse_file(&path.display().to_string(), &text, reader, inputs)
}

/// The input files in `dir` (and, when `recursive`, below it) that `wanted` accepts, directories
/// included: a directory `wanted` refuses is not entered.
fn files_in(
    root: &Path,
    dir: &Path,
    recursive: bool,
    wanted: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, InputError> {
    let read_error = |source| InputError::ReadDirectory {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    entries.sort();
    let mut files = Vec::new();
    for entry in entries.into_iter().filter(|entry| wanted(entry)) {
        // Only real directories are entered, so a symlink cycle cannot loop.
        let metadata = std::fs::symlink_metadata(&entry).map_err(read_error)?;
        if metadata.is_dir() {
            if recursive {
                files.extend(files_in(root, &entry, true, wanted)?);
            }
        } else if entry.is_file()
            && entry
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            crate::read::check_inside(root, &entry)?;
            files.push(entry);
        }
    }
    Ok(files)
}

/// Parses one file's documents (read by `reader`, whose limits apply) into `inputs`.
pub fn parse_file(
    file: &str,
    text: &str,
    reader: &mut Reader,
    inputs: &mut Inputs,
) -> Result<(), InputError> {
    let parsed = yaml::parse_multiple::<Value>(text, reader.yaml_limits()).map_err(|error| {
        InputError::Parse {
            file: file.to_owned(),
            raise: error.cap().and_then(|cap| reader.flag(cap)),
            error,
        }
    })?;
    // What the documents become is kept: counted against the budget for parsed inputs.
    reader.charge(parsed.memory);
    let documents = parsed.value;
    for (index, document) in documents.into_iter().enumerate() {
        let location = Location {
            file: file.to_owned(),
            document: index + 1,
            item: None,
        };
        add_document(document, location, inputs)?;
    }
    Ok(())
}

fn add_document(
    document: Value,
    location: Location,
    inputs: &mut Inputs,
) -> Result<(), InputError> {
    let fail = |reason: String| InputError::Document {
        location: location.clone(),
        reason,
    };
    let Value::Object(mut object) = document else {
        return match document {
            Value::Null => Ok(()),
            _ => Err(fail(
                "a document must be a Kubernetes object (a mapping)".to_owned(),
            )),
        };
    };
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "List") => {
            let items = match object.remove("items") {
                Some(Value::Array(items)) => items,
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(fail("items of a List must be a list".to_owned())),
            };
            for (item, value) in items.into_iter().enumerate() {
                let location = Location {
                    item: Some(item),
                    ..location.clone()
                };
                add_document(value, location, inputs)?;
            }
            Ok(())
        }
        (API_VERSION, "ControlPlane") => {
            object.remove("status");
            let value: ControlPlane = typed(Value::Object(object), &location, "ControlPlane")?;
            check_control_plane_names(&value, &location)?;
            inputs.control_planes.push(Located { value, location });
            Ok(())
        }
        (API_VERSION, "PostCreateHook") => {
            object.remove("status");
            let value: PostCreateHook = typed(Value::Object(object), &location, "PostCreateHook")?;
            let name = value.metadata.name.as_deref().unwrap_or_default();
            if let Some(reason) = names::dns1123_subdomain(name) {
                return Err(name_error(
                    &location,
                    "PostCreateHook",
                    name,
                    "metadata.name",
                    reason,
                ));
            }
            inputs.hooks.push(Located { value, location });
            Ok(())
        }
        ("", _) | (_, "") => Err(fail(
            "apiVersion and kind are required; expected a ControlPlane or PostCreateHook of \
             tenancy.kflex.kubestellar.org/v1alpha1"
                .to_owned(),
        )),
        (other, "ControlPlane" | "PostCreateHook") if other.starts_with(&format!("{GROUP}/")) => {
            Err(fail(format!(
                "{kind} version {other} is not supported; use {API_VERSION}"
            )))
        }
        _ => Err(fail(format!(
            "{kind} ({api_version}) is not a ControlPlane or PostCreateHook of {API_VERSION}"
        ))),
    }
}

/// Names are checked when they are read (the renderer checks them again): a ControlPlane's name
/// and the hooks it names, as the API server would.
fn check_control_plane_names(cp: &ControlPlane, location: &Location) -> Result<(), InputError> {
    let name = cp.metadata.name.as_deref().unwrap_or_default();
    let fail =
        |field: String, reason: String| name_error(location, "ControlPlane", name, &field, reason);
    if let Some(reason) = control_plane_name_problem(name) {
        return Err(fail("metadata.name".to_owned(), reason));
    }
    let legacy = cp
        .spec
        .post_create_hook
        .iter()
        .map(|hook| ("spec.postCreateHook".to_owned(), hook));
    let listed = cp
        .spec
        .post_create_hooks
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, use_)| {
            (
                format!("spec.postCreateHooks[{i}].hookName"),
                &use_.hook_name,
            )
        });
    for (field, hook) in legacy.chain(listed) {
        // Empty uses are skipped with a warning, as KubeFlex does.
        if hook.is_empty() {
            continue;
        }
        if let Some(reason) = names::dns1123_subdomain(hook) {
            return Err(fail(field, format!("{}: {reason}", names::quoted(hook))));
        }
    }
    Ok(())
}

fn name_error(
    location: &Location,
    kind: &'static str,
    name: &str,
    field: &str,
    reason: String,
) -> InputError {
    InputError::Field {
        location: Box::new(location.clone()),
        kind,
        name: name.to_owned(),
        field: field.to_owned(),
        reason,
    }
}

/// Deserializes `value` strictly: wrong types and unknown fields are errors naming the field.
fn typed<T: DeserializeOwned>(
    value: Value,
    location: &Location,
    kind: &'static str,
) -> Result<T, InputError> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let fail = |field: String, reason: String| InputError::Field {
        location: Box::new(location.clone()),
        kind,
        name: name.clone(),
        field,
        reason,
    };
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let deserializer = serde_ignored::Deserializer::new(value, &mut record);
    let parsed: T = serde_path_to_error::deserialize(deserializer)
        .map_err(|err| fail(err.path().to_string(), err.into_inner().to_string()))?;
    // The derived types read apiVersion and kind as ignored fields; both were checked above.
    if let Some(field) = unknown
        .into_iter()
        .find(|f| f != "apiVersion" && f != "kind")
    {
        return Err(fail(
            field,
            format!("unknown field; {kind} has no such field"),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inputs, InputError> {
        let mut inputs = Inputs::default();
        parse_file("t.yaml", text, &mut Reader::default(), &mut inputs).map(|()| inputs)
    }

    const CP: &str = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\n";

    #[test]
    fn control_planes_hooks_lists_and_json() {
        let text = format!(
            "{CP}metadata: {{name: a}}\nspec: {{type: k8s}}\n---\n\
             {{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\
               {{\"apiVersion\": \"{API_VERSION}\", \"kind\": \"PostCreateHook\", \"metadata\": {{\"name\": \"h\"}}, \"spec\": {{}}}}]}}\n---\n"
        );
        let inputs = parse(&text).unwrap();
        assert_eq!(inputs.control_planes.len(), 1);
        assert_eq!(
            inputs.hooks[0].location.to_string(),
            "t.yaml, document 2, items[0]"
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = parse(&format!(
            "{CP}metadata: {{name: a}}\nspec: {{type: k8s, postCreateHoks: []}}\n"
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.yaml, document 1 (ControlPlane \"a\"): spec.postCreateHoks: unknown field; ControlPlane has no such field"
        );
    }

    #[test]
    fn wrong_values_are_named() {
        let err = parse(&format!(
            "{CP}metadata: {{name: cp2}}\nspec: {{type: k9s}}\n"
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "t.yaml, document 1 (ControlPlane \"cp2\"): spec.type: unknown variant `k9s`"
            ),
            "{text}"
        );
    }

    #[test]
    fn yaml_1_1_booleans_in_string_maps_are_refused_like_kubectl_would() {
        let err = parse(&format!(
            "{CP}metadata: {{name: a}}\nspec: {{type: k8s, globalVars: {{X: on}}}}\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("spec.globalVars.X"), "{err}");
    }

    #[test]
    fn other_kinds_are_refused() {
        let err =
            parse("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("Deployment (apps/v1) is not a ControlPlane"),
            "{err}"
        );
        let err = parse("apiVersion: tenancy.kflex.kubestellar.org/v1\nkind: ControlPlane\n")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("version tenancy.kflex.kubestellar.org/v1 is not supported"),
            "{err}"
        );
    }

    #[test]
    fn names_are_checked_when_read() {
        for (text, field) in [
            (
                format!("{CP}metadata: {{name: \"a\\nb\"}}\nspec: {{type: k8s}}\n"),
                "metadata.name",
            ),
            (
                format!("{CP}metadata: {{name: A}}\nspec: {{type: k8s}}\n"),
                "metadata.name",
            ),
            (
                format!(
                    "{CP}metadata: {{name: a}}\nspec: {{type: k8s, postCreateHook: \"x\\ry\"}}\n"
                ),
                "spec.postCreateHook",
            ),
            (
                format!(
                    "{CP}metadata: {{name: a}}\nspec: {{type: k8s, postCreateHooks: [{{hookName: ok}}, {{hookName: ../x}}]}}\n"
                ),
                "spec.postCreateHooks[1].hookName",
            ),
            (
                format!(
                    "apiVersion: {API_VERSION}\nkind: PostCreateHook\nmetadata: {{name: \"h\\u2028---\"}}\nspec: {{}}\n"
                ),
                "metadata.name",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            let InputError::Field { field: got, .. } = &err else {
                panic!("{err}");
            };
            assert_eq!(got, field, "{text}");
            assert!(
                !err.to_string()
                    .chars()
                    .any(kflex_core::text::is_unsafe_char),
                "{err}"
            );
        }
        // An empty use is skipped later, with a warning, as KubeFlex does.
        assert!(parse(&format!("{CP}metadata: {{name: a}}\nspec: {{type: k8s, postCreateHooks: [{{hookName: \"\"}}]}}\n")).is_ok());
    }

    #[test]
    fn symbolic_links_out_of_a_directory_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("token.yaml");
        std::fs::write(&secret, "token: SECRET-TOKEN-123\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "").unwrap();
        std::os::unix::fs::symlink(dir.path().join("a.yaml"), dir.path().join("b.yaml")).unwrap();
        // A link inside the directory is fine.
        assert_eq!(discover(dir.path(), "kflex.yaml").unwrap().len(), 2);
        std::os::unix::fs::symlink(&secret, dir.path().join("c.yaml")).unwrap();
        let err = discover(dir.path(), "kflex.yaml").unwrap_err().to_string();
        assert!(
            err.contains("c.yaml is a symbolic link to a file outside"),
            "{err}"
        );
        assert!(!err.contains("SECRET-TOKEN-123"), "{err}");
        let mut reader = Reader::default();
        let err = load(
            &[dir.path().to_path_buf()],
            false,
            std::io::empty(),
            &mut reader,
        )
        .unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn status_is_ignored() {
        let inputs = parse(&format!("{CP}metadata: {{name: a, resourceVersion: \"1\"}}\nspec: {{type: k8s}}\nstatus: {{anything: 1}}\n")).unwrap();
        assert_eq!(inputs.control_planes.len(), 1);
    }

    #[test]
    fn discovery_skips_hidden_entries_and_the_settings_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "b.yaml",
            "a.json",
            "kflex.yaml",
            "notes.md",
            ".hidden.yaml",
            "sub/c.yml",
            "sub/kflex.yaml",
            ".github/workflows/ci.yaml",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let found: Vec<String> = discover(root, "kflex.yaml")
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(found, ["a.json", "b.yaml", "sub/c.yml"]);
    }

    #[test]
    fn broken_yaml_names_the_file() {
        let err = parse("metadata: [name: broken\nspec: {type: k8s\n").unwrap_err();
        assert!(
            err.to_string().starts_with("t.yaml: not valid YAML"),
            "{err}"
        );
    }

    /// The parser's limits scale with the byte caps: a fleet file of 100,000 ControlPlanes
    /// (12 MB, 1.3 million nodes, about 290 MiB once parsed) is within them at the defaults
    /// (2 million nodes, 384 MiB).
    #[test]
    fn a_fleet_file_of_a_hundred_thousand_control_planes_is_read() {
        let text: String = (0..100_000)
            .map(|i| {
                format!(
                    "---\napiVersion: {API_VERSION}\nkind: ControlPlane\nmetadata:\n  name: cp{i:06}\nspec:\n  type: k8s\n"
                )
            })
            .collect();
        let mut inputs = Inputs::default();
        parse_file("fleet.yaml", &text, &mut Reader::default(), &mut inputs).unwrap();
        assert_eq!(inputs.control_planes.len(), 100_000);
        assert_eq!(
            inputs.control_planes[99_999].location.to_string(),
            "fleet.yaml, document 100000"
        );
    }
}
