//! The template set: kflex's embedded templates, optionally overridden file by file from a
//! directory the caller has read. Templates are minijinja with strict undefined variables and
//! JSON auto-escaping (every `{{ value }}` becomes a quoted YAML scalar, so values can never add
//! structure). Files whose name starts with `_` are partials: includable, never rendered alone.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, syntax::SyntaxConfig};

include!(concat!(env!("OUT_DIR"), "/embedded_templates.rs"));

/// Template files by path relative to the templates root (`k8s/kube-apiserver.yaml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSet {
    files: BTreeMap<String, String>,
}

/// A template could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {detail}")]
pub struct TemplateError {
    pub name: String,
    pub detail: String,
}

/// Directories holding PostCreateHook-form data rather than minijinja templates.
const DATA_DIRECTORIES: [&str; 2] = ["hooks", "cleanup"];

impl TemplateSet {
    /// The templates built into kflex.
    pub fn embedded() -> Self {
        let files = EMBEDDED_TEMPLATES
            .iter()
            .map(|(name, content)| ((*name).to_owned(), (*content).to_owned()))
            .collect();
        Self { files }
    }

    /// Replaces or adds files: a file with an embedded file's path replaces it (an empty file
    /// removes its objects); other paths are added.
    pub fn with_overrides(mut self, files: impl IntoIterator<Item = (String, String)>) -> Self {
        self.files.extend(files);
        self
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
    pub(crate) fn compile(&self) -> Result<Environment<'static>, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
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
        super::filters::register(&mut env);
        for (name, source) in &self.files {
            if name.split('/').any(|part| DATA_DIRECTORIES.contains(&part)) {
                continue;
            }
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|err| TemplateError {
                    name: name.clone(),
                    detail: describe(&err),
                })?;
        }
        Ok(env)
    }
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
        let set = TemplateSet::embedded().with_overrides([
            ("x/a.yaml".to_owned(), String::new()),
            ("x/_partial.yaml".to_owned(), String::new()),
            ("x/hooks/h.yaml".to_owned(), String::new()),
        ]);
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
        let set = TemplateSet::embedded().with_overrides([(name.clone(), "# replaced".to_owned())]);
        assert_eq!(set.files()[&name], "# replaced");
    }

    #[test]
    fn compile_errors_name_the_template_and_line() {
        let set = TemplateSet {
            files: [("k8s/x.yaml".to_owned(), "a: 1\nb: {{ x\n".to_owned())].into(),
        };
        let err = set.compile().unwrap_err();
        assert_eq!(err.name, "k8s/x.yaml");
        assert!(err.detail.starts_with("line 2"), "{}", err.detail);
    }
}
