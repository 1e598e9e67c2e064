//! The `canonical_yaml` filter: YAML text a template renders (vCluster's 16 KB configuration)
//! parsed and written again in kflex's canonical form — fast when many control planes render
//! the same text with different values.
//!
//! Parsing is the costly part (about a thousand instructions a byte). The text of one control
//! plane differs from another's only inside double-quoted scalars (kflex's templates write every
//! value JSON-escaped, so quoted). So the text is split at its double-quoted scalars: the
//! contents are replaced by unique markers, and the marked text is parsed and written once. For
//! the next text of the same shape, the canonical text is the cached one with each marker
//! replaced by its scalar written as kflex's writer writes it. That is exact, not a guess:
//!
//! - A content without `"`, `\` or a line break cannot change how the text around it parses,
//!   so the marked text parses to the same tree with markers in place of contents — provided
//!   every marker ends up as the whole of an untagged double-quoted scalar (checked on the
//!   parser's events once per shape; anything else, say a quote inside a comment or a single-
//!   quoted scalar, takes the ordinary path).
//! - A double-quoted scalar without escapes is exactly its content.
//! - The writer writes a one-line string scalar the same wherever it stands, from the string
//!   alone; and when no marker is a mapping key, replacing scalars changes no key and so no
//!   order.
//!
//! When a marker is a key, the cached tree is filled in instead and written, refusing duplicate
//! keys (which the ordinary path reports as an error).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use granit_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Value};

use crate::manifest::{to_yaml_document, yaml_scalar};

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// The cached form of one shape of text.
#[derive(Debug)]
enum Shape {
    /// The canonical text with markers, each the whole of a scalar that is not a key.
    Text(String),
    /// The parsed tree with markers (some are keys).
    Tree(Value),
}

/// Canonical YAML of template output, cached by shape.
#[derive(Debug, Default)]
pub(crate) struct CanonicalCache {
    shapes: RwLock<HashMap<String, Option<Arc<Shape>>>>,
    /// Set by tests that compare the cached path with the ordinary one.
    disabled: AtomicBool,
}

impl CanonicalCache {
    #[cfg(test)]
    pub(crate) fn disable(&self) {
        self.disabled.store(true, Ordering::Relaxed);
    }

    /// `text` parsed and written in canonical form; an error says why it is not YAML.
    pub(crate) fn canonical(&self, text: &str) -> Result<String, String> {
        if !self.disabled.load(Ordering::Relaxed)
            && let Some((marked, contents)) = split(text)
            && let Some(shape) = self.shape(&marked)
            && let Some(out) = instantiate(&shape, &contents)
        {
            return Ok(out);
        }
        ordinary(text)
    }

    fn shape(&self, marked: &str) -> Option<Arc<Shape>> {
        if let Ok(shapes) = self.shapes.read()
            && let Some(found) = shapes.get(marked)
        {
            return found.clone();
        }
        let built = build(marked).map(Arc::new);
        if let Ok(mut shapes) = self.shapes.write() {
            shapes.insert(marked.to_owned(), built.clone());
        }
        built
    }
}

fn ordinary(text: &str) -> Result<String, String> {
    let value: Value =
        serde_saphyr::from_str(text).map_err(|err| format!("not valid YAML: {err}"))?;
    to_yaml_document(&value).map_err(|err| format!("cannot write it back: {err}"))
}

/// `text` with the content of every `"…"` replaced by a marker, and those contents in order;
/// `None` when a content holds `\` or a line break, or a quote is left open (the ordinary path
/// then decides), or the text already holds a marker character.
fn split(text: &str) -> Option<(String, Vec<&str>)> {
    if text.contains([OPEN, CLOSE]) {
        return None;
    }
    let mut marked = String::with_capacity(text.len());
    let mut contents = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('"') {
        let after = &rest[open + 1..];
        let close = after.find('"')?;
        let content = &after[..close];
        if content.contains(['\\', '\n', '\r']) {
            return None;
        }
        marked.push_str(&rest[..=open]);
        marked.push(OPEN);
        marked.push_str(&contents.len().to_string());
        marked.push(CLOSE);
        marked.push('"');
        contents.push(content);
        rest = &after[close + 1..];
    }
    marked.push_str(rest);
    Some((marked, contents))
}

/// Where the parser is: in a mapping (whether its next node is a key) or a sequence.
enum Frame {
    Mapping { next_is_key: bool },
    Sequence,
}

/// The shape of marked text, if every marker is the whole of an untagged double-quoted scalar
/// (and no collection is a key, which kflex's templates never write).
fn build(marked: &str) -> Option<Shape> {
    let expected = marked.matches(OPEN).count();
    let mut seen = 0;
    let mut marker_is_key = false;
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(marked) {
        let (event, _) = event.ok()?;
        let node = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(..)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
        );
        let is_key = match stack.last_mut() {
            Some(Frame::Mapping { next_is_key }) if node => {
                let key = *next_is_key;
                *next_is_key = !key;
                key
            }
            _ => false,
        };
        match event {
            Event::Scalar(value, style, _, tag) if value.contains(OPEN) => {
                let whole = value.starts_with(OPEN)
                    && value.ends_with(CLOSE)
                    && value.matches(OPEN).count() == 1;
                if style != ScalarStyle::DoubleQuoted || tag.is_some() || !whole {
                    return None;
                }
                seen += 1;
                marker_is_key |= is_key;
            }
            Event::MappingStart(..) | Event::SequenceStart(..) if is_key => return None,
            Event::MappingStart(..) => stack.push(Frame::Mapping { next_is_key: true }),
            Event::SequenceStart(..) => stack.push(Frame::Sequence),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    if seen != expected {
        return None;
    }
    let value: Value = serde_saphyr::from_str(marked).ok()?;
    if marker_is_key {
        return Some(Shape::Tree(value));
    }
    to_yaml_document(&value).ok().map(Shape::Text)
}

fn instantiate(shape: &Shape, contents: &[&str]) -> Option<String> {
    match shape {
        Shape::Text(text) => splice(text, contents),
        Shape::Tree(tree) => {
            let filled = fill(tree, contents)?;
            to_yaml_document(&filled).ok()
        }
    }
}

/// The canonical text with each marker replaced by its content written as a scalar.
fn splice(text: &str, contents: &[&str]) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len_utf8()..];
        let end = after.find(CLOSE)?;
        let index: usize = after[..end].parse().ok()?;
        yaml_scalar(&mut out, contents.get(index)?);
        rest = &after[end + CLOSE.len_utf8()..];
    }
    out.push_str(rest);
    Some(out)
}

/// The tree with every marker replaced by its content; `None` when two keys of a mapping
/// become equal (parsing the text reports that as an error).
fn fill(value: &Value, contents: &[&str]) -> Option<Value> {
    Some(match value {
        Value::String(text) => Value::String(resolve(text, contents)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| fill(item, contents))
                .collect::<Option<_>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                if out
                    .insert(resolve(key, contents)?, fill(item, contents)?)
                    .is_some()
                {
                    return None;
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// A marker's content, or the text itself when it is not a marker.
fn resolve(text: &str, contents: &[&str]) -> Option<String> {
    match text.strip_prefix(OPEN).and_then(|t| t.strip_suffix(CLOSE)) {
        Some(index) => contents
            .get(index.parse::<usize>().ok()?)
            .map(|c| (*c).to_owned()),
        None => Some(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A value as a template writes it: JSON-escaped, so double-quoted.
    fn quoted(value: &str) -> String {
        serde_json::to_string(value).unwrap_or_default()
    }

    /// Texts of one shape, with a value in every position a template puts one: plain values,
    /// list items, keys, anchored and aliased nodes, next to comments, single-quoted and block
    /// scalars that hold quotes of their own.
    fn texts(values: &[String; 4]) -> Vec<String> {
        let [a, b, c, d] = values.each_ref().map(|v| quoted(v));
        vec![
            format!("server: {a}\nsans:\n- {b}\n- {c}\nimage:\n  tag: {d}\nempty: \"\"\n"),
            format!("{a}: 1\nlist: [{b}, {c}]\nflow: {{k: {d}}}\n"),
            format!("base: &x\n  name: {a}\ncopy: *x\nother: {b}\n"),
            format!("# a \"quoted\" comment\nkey: {a}\nsingle: 'say \"hi\"'\nv: {b}\n"),
            format!("block: |\n  \"literal\"\nv: {a}\nw: {b}\n"),
            format!("plain: a\"b\"c\nv: {c}\n"),
            format!("x: {a}\ny: !!str {b}\nz: {d}\n"),
            format!("{a}: 1\n{b}: 2\n"),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-z0-9.-]{0,12}",
            2 => proptest::sample::select(vec![
                "no", "on", "yes", "y", "null", "~", "012", "1.5", "0x1F", "2024-01-01", "-",
                ".", "#", "a: b", "a #b", "- a", "<<", "=", "", " x", "x ", "[a]", "{a}", "*a",
                "&a", "!a", "'", "%", "@", "é", "\u{202e}", "---", "...",
            ]).prop_map(str::to_owned),
            1 => any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

        /// For every text, the cached path gives what parsing and writing give (or the same
        /// error), for the first text of a shape and for the next.
        #[test]
        fn the_cache_changes_nothing(first in proptest::array::uniform4(value()),
                                     second in proptest::array::uniform4(value())) {
            let cache = CanonicalCache::default();
            for (one, two) in texts(&first).into_iter().zip(texts(&second)) {
                prop_assert_eq!(cache.canonical(&one), ordinary(&one), "{}", one);
                prop_assert_eq!(cache.canonical(&two), ordinary(&two), "{}", two);
            }
        }
    }

    #[test]
    fn a_shape_is_parsed_once_and_spliced_after() {
        let cache = CanonicalCache::default();
        let text = |name: &str| {
            format!("server: \"https://{name}.example.com\"\nname: \"{name}\"\nport: 443\n")
        };
        assert_eq!(cache.canonical(&text("a")), ordinary(&text("a")));
        for name in ["no", "b", "1.0", "x: y"] {
            assert_eq!(
                cache.canonical(&text(name)),
                ordinary(&text(name)),
                "{name}"
            );
        }
        let shapes = cache.shapes.read().map(|s| s.len()).unwrap_or_default();
        assert_eq!(shapes, 1);
        let (marked, _) = split(&text("a")).unwrap();
        let shape = cache.shape(&marked).unwrap();
        assert!(matches!(*shape, Shape::Text(_)), "{shape:?}");
    }

    #[test]
    fn texts_the_cache_cannot_prove_take_the_ordinary_path() {
        for text in [
            "a: \"x\\\"y\"\n",
            "a: \"multi\n  line\"\n",
            "a: \"unclosed\n",
            "a: \"\u{E000}\"\n",
        ] {
            assert_eq!(split(text), None, "{text}");
            let cache = CanonicalCache::default();
            assert_eq!(cache.canonical(text), ordinary(text), "{text}");
        }
    }
}
