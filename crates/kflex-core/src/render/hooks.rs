//! PostCreateHooks: which hooks a control plane uses, with which variables, and the objects
//! they expand to.
//!
//! Precedence of variables, lowest first: the hook's `defaultVars`, the control plane's
//! `globalVars`, the use's own `vars` (or the deprecated `postCreateHookVars`), then the
//! built-ins `Namespace`, `ControlPlaneName` and `HookName`. Unlike KubeFlex, an undefined
//! variable is an error, and values are inserted into already-parsed strings, never into text.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Value};

use super::placeholders::{self, Expanded, PlaceholderError};
use crate::api::{ControlPlaneSpec, PostCreateHook, names};
use crate::manifest::Manifest;
use crate::text::escape_unsafe;

/// PostCreateHooks by name, as given to one render.
#[derive(Clone, Debug, Default)]
pub struct HookCatalog {
    hooks: BTreeMap<String, PostCreateHook>,
}

/// The hooks given to one render cannot be indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("PostCreateHook {0:?} is given twice with different content")]
    Duplicate(String),
    #[error("PostCreateHook {name:?}: metadata.name: {reason}")]
    InvalidName { name: String, reason: String },
}

impl HookCatalog {
    /// Indexes `hooks` by name; the same hook given twice is fine, two different ones are not.
    /// A name must be what the API server accepts (a DNS-1123 subdomain): names reach the
    /// output (`# Source:` comments, annotations).
    pub fn new(hooks: impl IntoIterator<Item = PostCreateHook>) -> Result<Self, CatalogError> {
        let mut catalog = BTreeMap::new();
        for hook in hooks {
            let name = hook.metadata.name.clone().unwrap_or_default();
            if let Some(reason) = names::dns1123_subdomain(&name) {
                return Err(CatalogError::InvalidName { name, reason });
            }
            if let Some(existing) = catalog.get(&name) {
                if !same_hook(existing, &hook) {
                    return Err(CatalogError::Duplicate(name));
                }
                continue;
            }
            catalog.insert(name, hook);
        }
        Ok(Self { hooks: catalog })
    }

    pub fn get(&self, name: &str) -> Option<&PostCreateHook> {
        self.hooks.get(name)
    }

    /// Hook names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hooks.keys().map(String::as_str)
    }
}

fn same_hook(a: &PostCreateHook, b: &PostCreateHook) -> bool {
    a.spec == b.spec && a.metadata.labels == b.metadata.labels
}

/// One hook a control plane uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookUse<'a> {
    pub name: &'a str,
    pub vars: Option<&'a BTreeMap<String, String>>,
    /// Where the use is written, e.g. `spec.postCreateHooks[1].hookName`.
    pub field: String,
}

/// A hook use names no hook a cluster could hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidUse {
    pub field: String,
    pub reason: String,
}

/// The hooks `spec` uses, in order: the deprecated single hook first, then the list; later
/// duplicates are dropped (the first occurrence wins, as in KubeFlex) with a warning. Linear in
/// the number of uses. A name that is not a DNS-1123 subdomain (no hook can have it) is refused.
pub(crate) fn uses(spec: &ControlPlaneSpec) -> Result<(Vec<HookUse<'_>>, Vec<String>), InvalidUse> {
    let mut found: Vec<HookUse<'_>> = Vec::new();
    let mut first_use: HashMap<&str, usize> = HashMap::new();
    let mut warnings = Vec::new();
    let legacy = spec
        .post_create_hook
        .as_deref()
        .filter(|name| !name.is_empty())
        .map(|name| HookUse {
            name,
            vars: spec.post_create_hook_vars.as_ref(),
            field: "spec.postCreateHook".to_owned(),
        });
    let listed = spec
        .post_create_hooks
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, use_)| HookUse {
            name: use_.hook_name.as_str(),
            vars: use_.vars.as_ref(),
            field: format!("spec.postCreateHooks[{i}].hookName"),
        });
    for candidate in legacy.into_iter().chain(listed) {
        if candidate.name.is_empty() {
            // KubeFlex skips these too; the CRD accepts them.
            warnings.push(format!("{}: empty; this use is ignored", candidate.field));
            continue;
        }
        if let Some(reason) = names::dns1123_subdomain(candidate.name) {
            return Err(InvalidUse {
                field: candidate.field,
                reason: format!("{}: {reason}", names::quoted(candidate.name)),
            });
        }
        if let Some(first) = first_use.get(candidate.name) {
            warnings.push(format!(
                "{}: hook {:?} is already used by {}; this use and its vars are ignored",
                candidate.field, candidate.name, found[*first].field
            ));
            continue;
        }
        first_use.insert(candidate.name, found.len());
        found.push(candidate);
    }
    Ok((found, warnings))
}

/// Checks what the CRD's list-map rule checks online: each default variable is named once.
pub(crate) fn check_default_vars(hook_name: &str, hook: &PostCreateHook) -> Result<(), HookError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, var) in hook.spec.default_vars.iter().enumerate() {
        if let Some(first) = seen.insert(var.name.as_str(), index) {
            return Err(HookError {
                hook: hook_name.to_owned(),
                template: None,
                object: None,
                field: format!("spec.defaultVars[{index}].name"),
                reason: format!(
                    "{} is also spec.defaultVars[{first}].name; each default variable is given \
                     once",
                    names::quoted(&var.name)
                ),
            });
        }
    }
    Ok(())
}

/// How many bytes of text the hooks of one control plane may expand to (every string of
/// their objects, keys included). Far above what a cluster accepts (an object is at most
/// about 1.5 MB in etcd), far below what would exhaust the machine rendering a fleet.
pub const HOOK_BYTES_PER_CONTROL_PLANE: usize = 16 * 1024 * 1024;

/// The bytes the hooks of one control plane may still expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    pub left: usize,
}

impl Budget {
    pub(crate) fn per_control_plane() -> Self {
        Self {
            left: HOOK_BYTES_PER_CONTROL_PLANE,
        }
    }

    fn charge(&mut self, bytes: usize) -> Result<(), PlaceholderError> {
        match self.left.checked_sub(bytes) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(PlaceholderError::TooLarge {
                needed: bytes,
                left: self.left,
            }),
        }
    }
}

/// The variables of one hook use, in precedence order (later wins).
pub(crate) fn variables(
    hook: &PostCreateHook,
    global: Option<&BTreeMap<String, String>>,
    own: Option<&BTreeMap<String, String>>,
    built_ins: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = hook
        .spec
        .default_vars
        .iter()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    for layer in [global, own].into_iter().flatten() {
        vars.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    vars.extend(
        built_ins
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars
}

/// Where in a hook something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookError {
    pub hook: String,
    pub template: Option<usize>,
    /// `Kind name` of the object, when known.
    pub object: Option<String>,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostCreateHook {:?}", self.hook)?;
        if let Some(index) = self.template {
            write!(f, ", templates[{index}]")?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        if !self.field.is_empty() {
            write!(f, ", field {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for HookError {}

/// Expands every template of `hook` with `vars`, within `budget`. `source` names the hook in
/// the output.
pub(crate) fn expand(
    hook_name: &str,
    hook: &PostCreateHook,
    vars: &BTreeMap<String, String>,
    source: &str,
    budget: &mut Budget,
) -> Result<Vec<Manifest>, HookError> {
    let mut manifests = Vec::with_capacity(hook.spec.templates.len());
    for (index, template) in hook.spec.templates.iter().enumerate() {
        let fail = |field: String, reason: String| HookError {
            hook: hook_name.to_owned(),
            template: Some(index),
            object: describe_object(template),
            field,
            reason,
        };
        let mut path = Vec::new();
        let expanded =
            expand_value(template, vars, &mut path, budget).map_err(|(field, err)| {
                let reason = match &err {
                    PlaceholderError::Undefined { .. } => {
                        let defined: Vec<String> = vars.keys().map(|k| names::quoted(k)).collect();
                        format!("{err}; defined: {}", defined.join(", "))
                    }
                    PlaceholderError::TooLarge { .. } => format!(
                        "{err}: the objects of a control plane's hooks may hold at most \
                     {HOOK_BYTES_PER_CONTROL_PLANE} bytes of text (16 MiB)"
                    ),
                    _ => err.to_string(),
                };
                fail(field, reason)
            })?;
        let object_name = describe_object(&expanded);
        let manifest =
            Manifest::new(format!("{source}, templates[{index}]"), expanded).map_err(|err| {
                HookError {
                    object: object_name,
                    ..fail(err.field.to_owned(), err.reason)
                }
            })?;
        manifests.push(manifest);
    }
    Ok(manifests)
}

/// `Kind name` of a template, placeholders and all (not validated yet: escaped, as every
/// reader of the message may be a terminal).
fn describe_object(template: &Value) -> Option<String> {
    let kind = escape_unsafe(template.get("kind").and_then(Value::as_str)?);
    match template.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) => Some(format!("{kind} {}", escape_unsafe(name))),
        None => Some(kind.into_owned()),
    }
}

#[derive(Clone)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn render_path(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn expand_value<'a>(
    value: &'a Value,
    vars: &BTreeMap<String, String>,
    path: &mut Vec<Step<'a>>,
    budget: &mut Budget,
) -> Result<Value, (String, PlaceholderError)> {
    let lookup = |name: &str| vars.get(name).map(String::as_str);
    match value {
        Value::String(text) if placeholders::has_placeholders(text) => {
            match placeholders::expand(text, lookup, budget.left) {
                Ok(Expanded::Text(text)) => {
                    budget
                        .charge(text.len())
                        .map_err(|e| (render_path(path), e))?;
                    Ok(Value::String(text))
                }
                Ok(Expanded::Typed(value)) => Ok(value),
                Err(err) => Err((render_path(path), err)),
            }
        }
        Value::String(text) => {
            budget
                .charge(text.len())
                .map_err(|e| (render_path(path), e))?;
            Ok(value.clone())
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, inner) in map {
                let key_out = if placeholders::has_placeholders(key) {
                    path.push(Step::Key(key));
                    let expanded = match placeholders::expand(key, lookup, budget.left) {
                        Ok(Expanded::Text(text)) => text,
                        Ok(Expanded::Typed(_)) => {
                            return Err((
                                render_path(path),
                                PlaceholderError::ConversionInText {
                                    action: key.clone(),
                                },
                            ));
                        }
                        Err(err) => return Err((render_path(path), err)),
                    };
                    path.pop();
                    expanded
                } else {
                    key.clone()
                };
                path.push(Step::Key(key));
                budget
                    .charge(key_out.len())
                    .map_err(|e| (render_path(path), e))?;
                let inner_out = expand_value(inner, vars, path, budget)?;
                if out.insert(key_out.clone(), inner_out).is_some() {
                    return Err((
                        render_path(path),
                        PlaceholderError::Syntax {
                            action: key.clone(),
                            reason: format!(
                                "expands to the key {key_out:?}, which another key also produces"
                            ),
                        },
                    ));
                }
                path.pop();
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                out.push(expand_value(item, vars, path, budget)?);
                path.pop();
            }
            Ok(Value::Array(out))
        }
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DefaultVar, PostCreateHookSpec};
    use serde_json::json;

    fn hook(name: &str, defaults: &[(&str, &str)], templates: Vec<Value>) -> PostCreateHook {
        PostCreateHook::new(
            name,
            PostCreateHookSpec {
                templates,
                default_vars: defaults
                    .iter()
                    .map(|(n, v)| DefaultVar {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
            },
        )
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn spec(value: Value) -> ControlPlaneSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn precedence_is_defaults_then_global_then_use_then_built_ins() {
        let h = hook(
            "h",
            &[
                ("A", "default"),
                ("B", "default"),
                ("C", "default"),
                ("Namespace", "default"),
            ],
            vec![],
        );
        let global = map(&[("B", "global"), ("C", "global"), ("Namespace", "global")]);
        let own = map(&[("C", "own"), ("Namespace", "own")]);
        let vars = variables(
            &h,
            Some(&global),
            Some(&own),
            &[("Namespace", "cp1-system")],
        );
        assert_eq!(
            vars,
            map(&[
                ("A", "default"),
                ("B", "global"),
                ("C", "own"),
                ("Namespace", "cp1-system")
            ])
        );
    }

    #[test]
    fn legacy_hook_comes_first_and_the_first_use_wins() {
        let s = spec(json!({
            "type": "k8s",
            "postCreateHook": "a",
            "postCreateHookVars": {"X": "legacy"},
            "postCreateHooks": [{"hookName": "b"}, {"hookName": "a", "vars": {"X": "list"}}]
        }));
        let (found, warnings) = uses(&s).unwrap();
        let names: Vec<&str> = found.iter().map(|u| u.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(found[0].vars.unwrap()["X"], "legacy");
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("spec.postCreateHooks[1].hookName"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn an_empty_hook_name_in_the_list_is_skipped_with_a_warning() {
        let s =
            spec(json!({"type": "k8s", "postCreateHooks": [{"hookName": ""}, {"hookName": "b"}]}));
        let (found, warnings) = uses(&s).unwrap();
        assert_eq!(found.iter().map(|u| u.name).collect::<Vec<_>>(), ["b"]);
        assert_eq!(
            warnings,
            ["spec.postCreateHooks[0].hookName: empty; this use is ignored"]
        );
    }

    #[test]
    fn an_empty_legacy_hook_is_no_hook() {
        let s = spec(json!({"type": "k8s", "postCreateHook": ""}));
        let (found, _) = uses(&s).unwrap();
        assert!(found.is_empty());
    }

    #[test]
    fn injection_attempts_stay_data() {
        let h = hook(
            "h",
            &[],
            vec![json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cm-{{.ControlPlaneName}}"},
                "data": {"message": "{{.Msg}}", "{{.KeyVar}}": "v"}
            })],
        );
        let evil = "x\"\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: stolen}\n: {{.ControlPlaneName}}";
        let vars = map(&[
            ("Msg", evil),
            ("KeyVar", "a: b"),
            ("ControlPlaneName", "cp1"),
        ]);
        let out = expand(
            "h",
            &h,
            &vars,
            "PostCreateHook h",
            &mut Budget::per_control_plane(),
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].object()["data"]["message"], evil);
        assert_eq!(out[0].object()["data"]["a: b"], "v");
        assert_eq!(out[0].name(), "cm-cp1");
    }

    #[test]
    fn typed_fields_can_be_templated_on_purpose() {
        let h = hook(
            "h",
            &[("Retries", "3")],
            vec![json!({
                "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                "spec": {"backoffLimit": "{{.Retries | int}}", "suspend": "{{.Suspend | bool}}"}
            })],
        );
        let vars = variables(&h, None, Some(&map(&[("Suspend", "false")])), &[]);
        let out = expand(
            "h",
            &h,
            &vars,
            "PostCreateHook h",
            &mut Budget::per_control_plane(),
        )
        .unwrap();
        assert_eq!(out[0].object()["spec"]["backoffLimit"], 3);
        assert_eq!(out[0].object()["spec"]["suspend"], false);
    }

    #[test]
    fn undefined_variables_name_hook_template_object_field_and_variable() {
        let h = hook(
            "uses-undefined",
            &[],
            vec![json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "{{.Undefined}}"}, "data": {"k": "v"}
            })],
        );
        let vars = map(&[
            ("ControlPlaneName", "cp4"),
            ("HookName", "uses-undefined"),
            ("Namespace", "cp4-system"),
        ]);
        let err = expand(
            "uses-undefined",
            &h,
            &vars,
            "PostCreateHook uses-undefined",
            &mut Budget::per_control_plane(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "PostCreateHook \"uses-undefined\", templates[0] (ConfigMap {{.Undefined}}), field metadata.name: \
             undefined variable \"Undefined\"; defined: \"ControlPlaneName\", \"HookName\", \"Namespace\""
        );
    }

    #[test]
    fn errors_point_into_lists() {
        let h = hook(
            "h",
            &[],
            vec![json!({
                "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "command": ["echo", "{{.Nope}}"]}]}}}
            })],
        );
        let err = expand(
            "h",
            &h,
            &BTreeMap::new(),
            "s",
            &mut Budget::per_control_plane(),
        )
        .unwrap_err();
        assert_eq!(err.field, "spec.template.spec.containers[0].command[1]");
    }

    #[test]
    fn objects_without_a_name_are_refused() {
        let h = hook(
            "h",
            &[],
            vec![json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})],
        );
        let err = expand(
            "h",
            &h,
            &BTreeMap::new(),
            "s",
            &mut Budget::per_control_plane(),
        )
        .unwrap_err();
        assert_eq!(err.field, "metadata.name");
    }

    #[test]
    fn catalog_accepts_repeats_and_refuses_conflicts() {
        let a = hook("a", &[], vec![]);
        let b = hook("a", &[("X", "1")], vec![]);
        assert!(HookCatalog::new([a.clone(), a.clone()]).is_ok());
        assert_eq!(
            HookCatalog::new([a, b]).unwrap_err(),
            CatalogError::Duplicate("a".into())
        );
    }

    #[test]
    fn hook_names_and_uses_must_be_names_a_cluster_accepts() {
        for bad in [
            "a\n---\nkind: ClusterRoleBinding",
            "a\r",
            "a\0",
            "a\u{85}b",
            "a\u{2028}",
            "\u{1b}[31m",
            "A",
            "a/b",
            "../a",
            "a b",
        ] {
            let err = HookCatalog::new([hook(bad, &[], vec![])]).unwrap_err();
            assert!(matches!(err, CatalogError::InvalidName { .. }), "{bad:?}");
            assert!(
                !err.to_string().chars().any(crate::text::is_unsafe_char),
                "{err}"
            );
            let legacy = spec(json!({"type": "k8s", "postCreateHook": bad}));
            assert_eq!(uses(&legacy).unwrap_err().field, "spec.postCreateHook");
            let listed = spec(
                json!({"type": "k8s", "postCreateHooks": [{"hookName": "ok"}, {"hookName": bad}]}),
            );
            let err = uses(&listed).unwrap_err();
            assert_eq!(err.field, "spec.postCreateHooks[1].hookName");
            assert!(
                !err.to_string().chars().any(crate::text::is_unsafe_char),
                "{err}"
            );
        }
    }

    #[test]
    fn many_repeated_uses_keep_the_first_of_each_name() {
        let listed: Vec<Value> = (0..60_000)
            .map(|i| json!({"hookName": format!("h{}", i % 7), "vars": {"I": i.to_string()}}))
            .collect();
        let s = spec(json!({"type": "k8s", "postCreateHooks": listed}));
        let (found, warnings) = uses(&s).unwrap();
        let firsts: Vec<(&str, &str)> = found
            .iter()
            .map(|u| (u.name, u.vars.unwrap()["I"].as_str()))
            .collect();
        assert_eq!(
            firsts,
            [
                ("h0", "0"),
                ("h1", "1"),
                ("h2", "2"),
                ("h3", "3"),
                ("h4", "4"),
                ("h5", "5"),
                ("h6", "6")
            ]
        );
        assert_eq!(warnings.len(), 60_000 - 7);
        assert!(warnings[0].contains("already used by spec.postCreateHooks[0].hookName"));
    }

    #[test]
    fn default_variables_are_named_once() {
        let h = hook("h", &[("A", "1"), ("B", "2"), ("A", "3")], vec![]);
        let err = check_default_vars("h", &h).unwrap_err();
        assert_eq!(err.field, "spec.defaultVars[2].name");
        assert!(err.reason.contains("spec.defaultVars[0].name"), "{err}");
        assert!(check_default_vars("h", &hook("h", &[("A", "1")], vec![])).is_ok());
    }

    #[test]
    fn expansion_has_a_budget_per_control_plane() {
        // A short template repeating a 1 MB variable 10,000 times would be 10 GB.
        let h = hook(
            "big",
            &[("Big", &"x".repeat(1 << 20))],
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                        "data": {"k": "{{.Big}}".repeat(10_000)}}),
            ],
        );
        let vars = variables(&h, None, None, &[]);
        let err = expand("big", &h, &vars, "s", &mut Budget::per_control_plane()).unwrap_err();
        assert_eq!(err.field, "data.k");
        assert!(err.reason.contains("16 MiB"), "{err}");
        // The budget is shared by every hook of the control plane.
        let one = hook(
            "one",
            &[("Big", &"x".repeat(6 << 20))],
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                        "data": {"k": "{{.Big}}"}}),
            ],
        );
        let vars = variables(&one, None, None, &[]);
        let mut budget = Budget::per_control_plane();
        assert!(expand("one", &one, &vars, "s", &mut budget).is_ok());
        assert!(expand("one", &one, &vars, "s", &mut budget).is_ok());
        let err = expand("one", &one, &vars, "s", &mut budget).unwrap_err();
        assert!(err.reason.contains("bytes"), "{err}");
    }
}
