//! The template set: kflex's embedded templates, optionally overridden file by file from a
//! directory the caller has read. Templates are minijinja with strict undefined variables and
//! JSON auto-escaping (every `{{ value }}` becomes a quoted YAML scalar, so values can never add
//! structure). Files whose name starts with `_` are partials: includable, never rendered alone.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior, syntax::SyntaxConfig};

use super::canonical::CanonicalCache;

include!(concat!(env!("OUT_DIR"), "/embedded_templates.rs"));

/// Template files by path relative to the templates root (`k8s/kube-apiserver.yaml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSet {
    files: BTreeMap<String, String>,
    /// The files an override added or replaced: compiled before anything renders, so a broken
    /// one is reported whichever type uses it. kflex's own are compiled when first used (a test
    /// compiles them all).
    overridden: BTreeSet<String>,
}

/// A template could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {detail}")]
pub struct TemplateError {
    pub name: String,
    pub detail: String,
}

/// The steps (minijinja's fuel) one template render may take. kflex's own templates take
/// fewer than 500; an override gets far more room than any sensible template needs, but a
/// loop that never ends (or runs a billion times) stops within a second.
pub(crate) const FUEL: u64 = 2_000_000;

/// The bytes of text one template render may produce.
pub(crate) const OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// Directories holding PostCreateHook-form data rather than minijinja templates.
const DATA_DIRECTORIES: [&str; 2] = ["hooks", "cleanup"];

impl TemplateSet {
    /// The templates built into kflex.
    pub fn embedded() -> Self {
        let files = EMBEDDED_TEMPLATES
            .iter()
            .map(|(name, content)| ((*name).to_owned(), (*content).to_owned()))
            .collect();
        Self {
            files,
            overridden: BTreeSet::new(),
        }
    }

    /// Replaces or adds files: a file with an embedded file's path replaces it (an empty file
    /// removes its objects); other paths are added. A path must be `/`-separated parts of
    /// letters, digits, `.`, `_` and `-` (none starting with `.`), ending in `.yaml`: paths name
    /// objects' origin in the output and in messages.
    pub fn with_overrides(
        mut self,
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, TemplateError> {
        for (name, content) in files {
            if let Some(detail) = path_problem(&name) {
                return Err(TemplateError {
                    name: crate::text::escape_unsafe(&name).into_owned(),
                    detail,
                });
            }
            self.overridden.insert(name.clone());
            self.files.insert(name, content);
        }
        Ok(self)
    }

    /// Every file, by path.
    pub fn files(&self) -> &BTreeMap<String, String> {
        &self.files
    }

    /// The renderable templates directly under `dir` (no partials, no subdirectories), sorted.
    pub fn rendered_in(&self, dir: &str) -> Vec<&str> {
        let prefix = format!("{dir}/");
        self.files
            .keys()
            .filter_map(|name| {
                let file = name.strip_prefix(&prefix)?;
                (!file.contains('/') && !file.starts_with('_')).then_some(name.as_str())
            })
            .collect()
    }

    /// The raw files directly under `dir`, sorted (for data files such as built-in hooks).
    pub fn files_in(&self, dir: &str) -> Vec<(&str, &str)> {
        let prefix = format!("{dir}/");
        self.files
            .iter()
            .filter(|(name, _)| {
                name.strip_prefix(&prefix)
                    .is_some_and(|file| !file.contains('/'))
            })
            .map(|(name, content)| (name.as_str(), content.as_str()))
            .collect()
    }

    /// A minijinja environment holding every template except data directories (`hooks/` and
    /// `cleanup/`, which hold PostCreateHook-form files).
    pub(crate) fn compile(
        &self,
        canonical: Arc<CanonicalCache>,
    ) -> Result<Environment<'static>, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            // Keeps included partials' last line ending, so an include is a drop-in block.
            .keep_trailing_newline(true)
            .build()
            .map_err(|err| TemplateError {
                name: "(syntax)".to_owned(),
                detail: err.to_string(),
            })?;
        env.set_syntax(syntax);
        super::filters::register(&mut env, canonical);
        let is_template =
            |name: &str| !name.split('/').any(|part| DATA_DIRECTORIES.contains(&part));
        // A one-shot render uses a fraction of the templates: kflex's own are compiled on
        // first use (from the binary; they cannot fail, see the test that compiles them all).
        let own: BTreeMap<String, &'static str> = EMBEDDED_TEMPLATES
            .iter()
            .filter(|(name, _)| is_template(name) && !self.overridden.contains(*name))
            .map(|(name, source)| ((*name).to_owned(), *source))
            .collect();
        env.set_loader(move |name| Ok(own.get(name).map(|source| (*source).to_owned())));
        for name in self.overridden.iter().filter(|name| is_template(name)) {
            let source = self.files.get(name).cloned().unwrap_or_default();
            env.add_template_owned(name.clone(), source)
                .map_err(|err| TemplateError {
                    name: name.clone(),
                    detail: describe(&err),
                })?;
        }
        Ok(env)
    }
}

/// Why `path` cannot name a template file.
fn path_problem(path: &str) -> Option<String> {
    if !path.ends_with(".yaml") {
        return Some("a template file name must end in .yaml".to_owned());
    }
    for part in path.split('/') {
        if part.is_empty() || part.starts_with('.') {
            return Some(format!(
                "the path part {part:?} is empty or starts with '.'; use plain directory and file \
                 names"
            ));
        }
        if let Some(bad) = part
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Some(format!(
                "template paths may hold letters, digits, '.', '_', '-' and '/' only; found {bad:?}"
            ));
        }
    }
    None
}

/// A minijinja error as `line N: detail`, the way a template author wants to read it.
pub(crate) fn describe(err: &minijinja::Error) -> String {
    let detail = err.detail().map_or_else(
        || err.kind().to_string(),
        |d| format!("{}: {d}", err.kind()),
    );
    match err.line() {
        Some(line) => format!("line {line}: {detail}"),
        None => detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_and_subdirectories_are_not_rendered_alone() {
        let set = TemplateSet::embedded()
            .with_overrides([
                ("x/a.yaml".to_owned(), String::new()),
                ("x/_partial.yaml".to_owned(), String::new()),
                ("x/hooks/h.yaml".to_owned(), String::new()),
            ])
            .unwrap();
        assert_eq!(set.rendered_in("x"), ["x/a.yaml"]);
        assert_eq!(set.files_in("x/hooks").len(), 1);
    }

    #[test]
    fn overrides_replace_embedded_files() {
        let name = TemplateSet::embedded()
            .files()
            .keys()
            .next()
            .cloned()
            .unwrap();
        let set = TemplateSet::embedded()
            .with_overrides([(name.clone(), "# replaced".to_owned())])
            .unwrap();
        assert_eq!(set.files()[&name], "# replaced");
    }

    #[test]
    fn template_paths_are_plain() {
        for bad in [
            "k8s/x\n---\nkind: Secret.yaml",
            "k8s/x.yml",
            "../k8s/x.yaml",
            "/k8s/x.yaml",
            "k8s//x.yaml",
            "k8s/.x.yaml",
            "k8s/x\u{1b}[2J.yaml",
            "k8s/x y.yaml",
            "k8s\\x.yaml",
        ] {
            let err = TemplateSet::embedded()
                .with_overrides([(bad.to_owned(), String::new())])
                .unwrap_err();
            assert!(
                !err.to_string().chars().any(crate::text::is_unsafe_char),
                "{err}"
            );
        }
        assert!(
            TemplateSet::embedded()
                .with_overrides([("k8s/extra_1-x.v2.yaml".to_owned(), String::new())])
                .is_ok()
        );
    }

    #[test]
    fn every_template_of_kflex_compiles() {
        let env = TemplateSet::embedded().compile(Arc::default()).unwrap();
        for (name, _) in EMBEDDED_TEMPLATES
            .iter()
            .filter(|(name, _)| !name.split('/').any(|p| DATA_DIRECTORIES.contains(&p)))
        {
            if let Err(err) = env.get_template(name) {
                panic!("{name}: {}", describe(&err));
            }
        }
    }

    #[test]
    fn compile_errors_name_the_template_and_line() {
        let set = TemplateSet::embedded()
            .with_overrides([("k8s/x.yaml".to_owned(), "a: 1\nb: {{ x\n".to_owned())])
            .unwrap();
        let err = set.compile(Arc::default()).unwrap_err();
        assert_eq!(err.name, "k8s/x.yaml");
        assert!(err.detail.starts_with("line 2"), "{}", err.detail);
    }
}
