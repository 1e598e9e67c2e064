//! A verified shortcut for rendering many control planes.
//!
//! Parsing YAML costs about twenty times more than evaluating a template, and a control plane's
//! templates differ from another's only in a few values (name, namespace, version). So each
//! template is also rendered once with those values replaced by unique markers (the skeleton),
//! and the skeleton is parsed once. For every control plane the template is still evaluated; the
//! parsed skeleton is reused only when that text is exactly the skeleton's text with each marker
//! replaced by its value, and every marker sat inside a double-quoted scalar (as kflex's
//! JSON-escaping templates produce). Then parsing the text and substituting into the parsed
//! skeleton give the same result by construction; in any other case the text is parsed as usual.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, RwLock};

use granit_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Value};

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// The control plane's values and the root with those values replaced by markers.
#[derive(Debug)]
pub(crate) struct Abstracted {
    /// Marker `i` stands for `values[i]`.
    pub values: Vec<String>,
    /// The root with markers; identical for control planes of the same shape.
    pub root: Value,
    /// Identifies the shape (a hash of the marked subtrees). A collision costs only speed:
    /// every use of a skeleton is verified against the real text.
    pub key: u64,
}

/// Replaces every string under the JSON pointers `paths` of `root` with a marker. `None` when a
/// value could break the verification (line breaks, leading or trailing spaces — which a
/// multi-line double-quoted scalar would fold —, markers, quotes or escapes), so the caller takes
/// the ordinary path.
pub(crate) fn abstract_values(root: &Value, paths: &[&str]) -> Option<Abstracted> {
    let mut marked = root.clone();
    let mut values = Vec::new();
    let mut hasher = DefaultHasher::new();
    for path in paths {
        let subtree = marked.pointer_mut(path)?;
        mark(subtree, &mut values)?;
        path.hash(&mut hasher);
        subtree.to_string().hash(&mut hasher);
    }
    Some(Abstracted {
        values,
        root: marked,
        key: hasher.finish(),
    })
}

fn mark(value: &mut Value, values: &mut Vec<String>) -> Option<()> {
    match value {
        Value::String(text) => {
            let safe = text
                .chars()
                .all(|c| (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\');
            if !safe || text.starts_with(' ') || text.ends_with(' ') {
                return None;
            }
            let marker = format!("{OPEN}{}{CLOSE}", values.len());
            values.push(std::mem::replace(text, marker));
        }
        Value::Array(items) => items.iter_mut().try_for_each(|item| mark(item, values))?,
        Value::Object(map) => map.values_mut().try_for_each(|item| mark(item, values))?,
        _ => {}
    }
    Some(())
}

/// A template rendered with markers, parsed once.
#[derive(Debug)]
pub(crate) struct Skeleton {
    text: String,
    documents: Vec<Value>,
}

impl Skeleton {
    /// The skeleton of `text`, if every marker in it is inside a double-quoted scalar.
    pub(crate) fn new(text: String, documents: Vec<Value>) -> Option<Self> {
        let in_text = text.matches(OPEN).count();
        let mut in_quoted = 0;
        for event in Parser::new_from_str(&text) {
            let (event, _) = event.ok()?;
            if let Event::Scalar(value, style, _, tag) = event {
                let count = value.matches(OPEN).count();
                if count > 0 && (style != ScalarStyle::DoubleQuoted || tag.is_some()) {
                    return None;
                }
                in_quoted += count;
            }
        }
        (in_quoted == in_text).then_some(Self { text, documents })
    }

    /// The documents for `values`, if `text` is what the template produced for them.
    pub(crate) fn instantiate(&self, text: &str, values: &[String]) -> Option<Vec<Value>> {
        if substitute(&self.text, values)? != text {
            return None;
        }
        self.documents.iter().map(|doc| fill(doc, values)).collect()
    }
}

/// The first UTF-8 byte of a marker; a byte search finds candidates fast.
const OPEN_LEAD_BYTE: u8 = 0xEE;

/// `text` with each marker replaced by its value (values need no escaping: see `mark`).
fn substitute(text: &str, values: &[String]) -> Option<String> {
    if !text.as_bytes().contains(&OPEN_LEAD_BYTE) || !text.contains(OPEN) {
        return Some(text.to_owned());
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len_utf8()..];
        let end = after.find(CLOSE)?;
        let index: usize = after[..end].parse().ok()?;
        out.push_str(values.get(index)?);
        rest = &after[end + CLOSE.len_utf8()..];
    }
    out.push_str(rest);
    Some(out)
}

fn fill(value: &Value, values: &[String]) -> Option<Value> {
    Some(match value {
        Value::String(text) => Value::String(substitute(text, values)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| fill(item, values))
                .collect::<Option<_>>()?,
        ),
        // Collecting from the already-sorted source builds the map in one pass.
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| Some((substitute(key, values)?, fill(item, values)?)))
                .collect::<Option<Map<String, Value>>>()?,
        ),
        other => other.clone(),
    })
}

/// (template name, shape key) → skeleton; `None` records a template that cannot take the
/// shortcut.
type Entries = HashMap<(String, u64), Option<Arc<Skeleton>>>;

/// Skeletons by template and shape.
#[derive(Debug, Default)]
pub(crate) struct SkeletonCache {
    entries: RwLock<Entries>,
}

impl SkeletonCache {
    /// The cached skeleton for `template` and `key`, building it with `build` on first use.
    pub(crate) fn get_or_build(
        &self,
        template: &str,
        key: u64,
        build: impl FnOnce() -> Option<Skeleton>,
    ) -> Option<Arc<Skeleton>> {
        let lookup = (template.to_owned(), key);
        if let Ok(entries) = self.entries.read()
            && let Some(found) = entries.get(&lookup)
        {
            return found.clone();
        }
        let built = build().map(Arc::new);
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(lookup, built.clone());
        }
        built
    }
}

#[cfg(test)]
impl SkeletonCache {
    /// How many (template, shape) pairs can take the shortcut.
    pub(crate) fn eligible(&self) -> usize {
        self.entries
            .read()
            .map(|e| e.values().filter(|s| s.is_some()).count())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Vec<Value> {
        serde_saphyr::from_multiple(text).unwrap()
    }

    fn skeleton(text: &str) -> Option<Skeleton> {
        Skeleton::new(text.to_owned(), parse(text))
    }

    #[test]
    fn markers_replace_strings_and_values_come_back() {
        let root =
            json!({"cp": {"name": "cp1", "n": 3, "list": ["a", "b"]}, "settings": {"x": "keep"}});
        let abstracted = abstract_values(&root, &["/cp"]).unwrap();
        assert_eq!(abstracted.values, ["a", "b", "cp1"]);
        assert_eq!(abstracted.root["settings"]["x"], "keep");
        assert_eq!(abstracted.root["cp"]["n"], 3);
        let other = abstract_values(
            &json!({"cp": {"name": "zz", "n": 3, "list": ["c", "d"]}, "settings": {"x": "keep"}}),
            &["/cp"],
        )
        .unwrap();
        assert_eq!(abstracted.key, other.key, "same shape, same key");
        // Inner spaces are kept exactly by a double-quoted scalar (a cron schedule).
        let spaced = abstract_values(&json!({"cp": {"schedule": "*/3 * * * *"}}), &["/cp"]);
        assert_eq!(spaced.unwrap().values, ["*/3 * * * *"]);
    }

    #[test]
    fn values_that_could_break_the_proof_are_not_abstracted() {
        for bad in [" a", "a ", "a\nb", "a\tb", "a\"b", "a\\b", "é", ""] {
            let root = json!({"cp": {"name": bad}});
            if bad.is_empty() {
                assert!(abstract_values(&root, &["/cp"]).is_some());
            } else {
                assert!(abstract_values(&root, &["/cp"]).is_none(), "{bad}");
            }
        }
    }

    #[test]
    fn the_shortcut_equals_parsing_when_the_text_matches() {
        let skeleton_text = format!("a: \"{OPEN}0{CLOSE}-system\"\n\"{OPEN}1{CLOSE}\": \"x\"\n");
        let s = skeleton(&skeleton_text).unwrap();
        let values = vec!["cp1".to_owned(), "key".to_owned()];
        let actual = "a: \"cp1-system\"\n\"key\": \"x\"\n";
        assert_eq!(s.instantiate(actual, &values).unwrap(), parse(actual));
        let values = vec!["c p".to_owned(), "k  y".to_owned()];
        let actual = "a: \"c p-system\"\n\"k  y\": \"x\"\n";
        assert_eq!(s.instantiate(actual, &values).unwrap(), parse(actual));
        // A template that transformed a value produces other text: no shortcut.
        assert!(
            s.instantiate("a: \"CP1-system\"\n\"key\": \"x\"\n", &values)
                .is_none()
        );
    }

    #[test]
    fn markers_outside_double_quotes_disable_the_shortcut() {
        assert!(
            skeleton(&format!("a: {OPEN}0{CLOSE}\n")).is_none(),
            "plain scalar"
        );
        assert!(
            skeleton(&format!("a: '{OPEN}0{CLOSE}'\n")).is_none(),
            "single quotes"
        );
        assert!(
            skeleton(&format!("a: |\n  {OPEN}0{CLOSE}\n")).is_none(),
            "block scalar"
        );
        assert!(
            skeleton(&format!("# {OPEN}0{CLOSE}\na: \"x\"\n")).is_none(),
            "comment"
        );
        assert!(
            skeleton(&format!("a: !!str \"{OPEN}0{CLOSE}\"\n")).is_none(),
            "tagged"
        );
        assert!(skeleton("a: \"no markers\"\n").is_some());
    }

    #[test]
    fn the_cache_builds_once() {
        let cache = SkeletonCache::default();
        let mut builds = 0;
        for _ in 0..3 {
            cache.get_or_build("t", 1, || {
                builds += 1;
                skeleton("a: \"x\"\n")
            });
        }
        assert_eq!(builds, 1);
        assert!(cache.get_or_build("t", 2, || None).is_none());
    }
}
