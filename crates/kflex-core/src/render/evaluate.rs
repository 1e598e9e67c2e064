//! Evaluating one template: minijinja renders text, which is parsed into objects — through the
//! parse cache, which parses each shape of text once (see `quoted`).

use serde_json::Value;

use super::{Renderer, SetError, templates};
use crate::manifest::Manifest;

impl Renderer {
    /// Renders one template and parses every document it produces.
    pub(super) fn render_template(
        &self,
        name: &str,
        root: &minijinja::Value,
    ) -> Result<Vec<Manifest>, SetError> {
        let fail = |detail: String| SetError::Template {
            template: name.to_owned(),
            detail,
        };
        let text = self.evaluate(name, root).map_err(fail)?;
        let documents = self
            .parse_cache
            .documents(&text, parse_documents)
            .map_err(|err| fail(format!("rendered invalid YAML: {err}")))?;
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

    /// The text of template `name`, within the fuel the environment gives every render and
    /// at most [`templates::OUTPUT_LIMIT`] bytes: an overridden template must not spin or
    /// grow without bound.
    fn evaluate(&self, name: &str, root: &minijinja::Value) -> Result<String, String> {
        let template = self
            .env
            .get_template(name)
            .map_err(|err| templates::describe(&err))?;
        let mut out = LimitedBuffer::default();
        match template.render_captured_to(root, &mut out) {
            Ok(_) => {
                String::from_utf8(out.bytes).map_err(|_| "rendered text is not UTF-8".to_owned())
            }
            Err(_) if out.exceeded => Err(format!(
                "renders more than {} bytes of text; no template needs that much",
                templates::OUTPUT_LIMIT
            )),
            Err(err) if err.kind() == minijinja::ErrorKind::OutOfFuel => Err(format!(
                "{}: stopped after {} steps (a loop that does not end, or far more work than any \
                 template needs)",
                templates::describe(&err),
                templates::FUEL
            )),
            Err(err) => Err(templates::describe(&err)),
        }
    }
}

/// Rendered text, refusing to grow past [`templates::OUTPUT_LIMIT`].
#[derive(Default)]
struct LimitedBuffer {
    bytes: Vec<u8>,
    exceeded: bool,
}

impl std::io::Write for LimitedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > templates::OUTPUT_LIMIT {
            self.exceeded = true;
            return Err(std::io::Error::other("template output limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ControlPlane, ControlPlaneSpec};
    use crate::render::{HookCatalog, TemplateSet};
    use crate::settings::Settings;

    fn render_with(template: &str) -> String {
        let templates = TemplateSet::embedded()
            .with_overrides([("k8s/hostile.yaml".to_owned(), template.to_owned())])
            .unwrap();
        let renderer = Renderer::new(Settings::default(), &templates).unwrap();
        let spec: ControlPlaneSpec =
            serde_json::from_value(serde_json::json!({"type": "k8s"})).unwrap();
        let err = renderer
            .render(&ControlPlane::new("cp1", spec), &HookCatalog::default())
            .unwrap_err();
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }

    #[test]
    fn a_template_that_never_ends_runs_out_of_fuel() {
        for template in [
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
            "{% macro f(n) %}{% for i in range(100000) %}{{ n }}{% endfor %}{% endmacro %}{% for i in range(1000) %}{{ f(i) }}{% endfor %}",
        ] {
            let text = render_with(template);
            assert!(
                text.contains("k8s/hostile.yaml") && text.contains("steps"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_template_cannot_grow_without_bound() {
        let text = render_with("{% for i in range(100000) %}{{ 'x' * 10000000 }}{% endfor %}");
        assert!(
            text.contains("k8s/hostile.yaml") && text.contains("bytes of text"),
            "{text}"
        );
    }
}
