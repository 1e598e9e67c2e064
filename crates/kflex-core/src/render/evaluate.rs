//! Evaluating one template: minijinja renders text, which is parsed into objects — directly,
//! or through the verified skeleton shortcut when many control planes are rendered.

use serde_json::Value;

use super::{Renderer, SetError, skeleton, templates};
use crate::manifest::Manifest;

impl Renderer {
    /// Renders one template and parses every document it produces; with `abstracted`, through
    /// the verified skeleton shortcut when it applies (see `skeleton`).
    pub(super) fn render_template(
        &self,
        name: &str,
        root: &minijinja::Value,
        abstracted: Option<&skeleton::Abstracted>,
    ) -> Result<Vec<Manifest>, SetError> {
        let fail = |detail: String| SetError::Template {
            template: name.to_owned(),
            detail,
        };
        let text = self.evaluate(name, root).map_err(fail)?;
        let shortcut = abstracted.filter(|_| self.shortcut).and_then(|abstracted| {
            let skeleton = self.skeletons.get_or_build(name, abstracted.key, || {
                let text = self.evaluate(name, &context_value(&abstracted.root)).ok()?;
                let documents = parse_documents(&text).ok()?;
                skeleton::Skeleton::new(text, documents)
            })?;
            skeleton.instantiate(&text, &abstracted.values)
        });
        let documents = match shortcut {
            Some(documents) => documents,
            None => parse_documents(&text)
                .map_err(|err| fail(format!("rendered invalid YAML: {err}")))?,
        };
        documents
            .into_iter()
            .filter(|doc| !doc.is_null())
            .enumerate()
            .map(|(index, doc)| {
                Manifest::new(name, doc)
                    .map_err(|err| fail(format!("rendered document {index}: {err}")))
            })
            .collect()
    }

    fn evaluate(&self, name: &str, root: &minijinja::Value) -> Result<String, String> {
        let template = self
            .env
            .get_template(name)
            .map_err(|err| templates::describe(&err))?;
        template
            .render(root)
            .map_err(|err| templates::describe(&err))
    }
}

/// A template context as minijinja's value, built once and shared by every template.
pub(super) fn context_value(root: &Value) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(root))
}

/// The documents of rendered template text (comments are not needed, so not collected).
fn parse_documents(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    let mut options = serde_saphyr::options::Options::default();
    options.emit_comments = false;
    serde_saphyr::from_multiple_with_options(text, options)
}
