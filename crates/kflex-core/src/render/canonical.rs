//! The `canonical_yaml` filter: YAML text a template renders (vCluster's 16 KB configuration)
//! parsed and written again in kflex's canonical form — fast when many control planes render
//! the same text with different values.
//!
//! The text is split at its double-quoted scalars and the marked text parsed once per shape, as
//! `quoted` explains (and proves). When no marker is a mapping key, the canonical text itself is
//! cached: for the next text of that shape, each marker is replaced by its content written as
//! kflex's writer writes a one-line string scalar — which it does from the string alone,
//! wherever the scalar stands, and no key and so no order changes. When a marker is a key, the
//! cached tree is filled in and written. Shapes are read by the fast reader of the subset
//! templates write (`manifest::read_documents`), and parsed by serde-saphyr where it declines.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::quoted::{self, CLOSE, OPEN};
use crate::manifest::{read_documents, to_yaml_document, yaml_scalar};

/// How many shapes are kept (a handful in practice; a bound keeps memory flat).
const MAX_SHAPES: usize = 1024;

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
    /// Set by tests that compare the cached path with the ordinary one: serde-saphyr alone.
    disabled: AtomicBool,
    /// How often the fast reader declined and serde-saphyr parsed (for tests).
    slow_parses: AtomicUsize,
}

impl CanonicalCache {
    #[cfg(test)]
    pub(crate) fn disable(&self) {
        self.disabled.store(true, Ordering::Relaxed);
    }

    /// How often serde-saphyr had to parse since the cache was made.
    #[cfg(test)]
    pub(crate) fn slow_parses(&self) -> usize {
        self.slow_parses.load(Ordering::Relaxed)
    }

    /// `text` parsed and written in canonical form; an error says why it is not YAML.
    pub(crate) fn canonical(&self, text: &str) -> Result<String, String> {
        if self.disabled.load(Ordering::Relaxed) {
            return ordinary(text);
        }
        if let Some(split) = quoted::split(text)
            && let Some(shape) = self.shape(&split)
            && let Some(out) = instantiate(&shape, &split.contents)
        {
            return Ok(out);
        }
        match read_one(text) {
            Some(value) => {
                to_yaml_document(&value).map_err(|err| format!("cannot write it back: {err}"))
            }
            None => {
                self.slow_parses.fetch_add(1, Ordering::Relaxed);
                ordinary(text)
            }
        }
    }

    fn shape(&self, split: &quoted::Split<'_>) -> Option<Arc<Shape>> {
        if let Ok(shapes) = self.shapes.read()
            && let Some(found) = shapes.get(&split.marked)
        {
            return found.clone();
        }
        let built = build(&split.marked, split.contents.len(), &self.slow_parses).map(Arc::new);
        if let Ok(mut shapes) = self.shapes.write()
            && shapes.len() < MAX_SHAPES
        {
            shapes.insert(split.marked.clone(), built.clone());
        }
        built
    }
}

fn ordinary(text: &str) -> Result<String, String> {
    let value: Value =
        serde_saphyr::from_str(text).map_err(|err| format!("not valid YAML: {err}"))?;
    to_yaml_document(&value).map_err(|err| format!("cannot write it back: {err}"))
}

/// The one document of `text` as the fast reader reads it; `None` when it declines or the text
/// holds other than one document (serde-saphyr then decides).
fn read_one(text: &str) -> Option<Value> {
    let mut documents = read_documents(text)?;
    if documents.len() != 1 {
        return None;
    }
    documents.pop()
}

/// The shape of marked text with `count` markers, if every marker stands alone in a
/// double-quoted scalar.
fn build(marked: &str, count: usize, slow_parses: &AtomicUsize) -> Option<Shape> {
    let value: Value = match read_one(marked) {
        Some(value) => value,
        None => {
            slow_parses.fetch_add(1, Ordering::Relaxed);
            serde_saphyr::from_str(marked).ok()?
        }
    };
    if !quoted::holds_every_marker_whole(std::slice::from_ref(&value), count) {
        return None;
    }
    if quoted::marker_is_a_key(&value) {
        return Some(Shape::Tree(value));
    }
    to_yaml_document(&value).ok().map(Shape::Text)
}

fn instantiate(shape: &Shape, contents: &[&str]) -> Option<String> {
    match shape {
        Shape::Text(text) => splice(text, contents),
        Shape::Tree(tree) => {
            let filled = quoted::fill(tree, contents)?;
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
        let first = text("a");
        let split = quoted::split(&first).unwrap();
        let shape = cache.shape(&split).unwrap();
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
            assert_eq!(quoted::split(text), None, "{text}");
            let cache = CanonicalCache::default();
            assert_eq!(cache.canonical(text), ordinary(text), "{text}");
        }
    }
}
