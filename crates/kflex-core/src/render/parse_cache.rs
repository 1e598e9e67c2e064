//! Templates' rendered text, parsed once per shape (see `quoted`): for a fleet, parsing is what
//! rendering would otherwise spend most of its time on, and two control planes' texts differ
//! only inside double-quoted scalars. A shape is read by the fast reader of the subset templates
//! write (`manifest::read_documents`) and parsed by serde-saphyr only where that declines.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::quoted;
use crate::manifest::read_documents;

/// How many shapes are kept. Templates render a handful each; a bound keeps memory flat when
/// overrides render something different for every control plane.
const MAX_SHAPES: usize = 4096;

/// Parsed documents of marked texts, by marked text; `None` records a text that cannot take the
/// shortcut.
#[derive(Debug, Default)]
pub(crate) struct ParseCache {
    shapes: RwLock<HashMap<String, Option<Arc<Vec<Value>>>>>,
    /// Set by tests that compare the cached path with the ordinary one: serde-saphyr alone.
    disabled: AtomicBool,
    /// How often the fast reader declined and serde-saphyr parsed, so tests can prove that
    /// templates' output takes the fast path.
    slow_parses: AtomicUsize,
}

impl ParseCache {
    #[cfg(test)]
    pub(crate) fn disable(&self) {
        self.disabled.store(true, Ordering::Relaxed);
    }

    /// How many shapes can take the shortcut.
    #[cfg(test)]
    pub(crate) fn shapes(&self) -> usize {
        self.shapes
            .read()
            .map(|shapes| shapes.values().filter(|s| s.is_some()).count())
            .unwrap_or(0)
    }

    /// How often serde-saphyr had to parse since the cache was made.
    #[cfg(test)]
    pub(crate) fn slow_parses(&self) -> usize {
        self.slow_parses.load(Ordering::Relaxed)
    }

    /// The documents of `text`, as `parse` gives them; through the cached shape when it can.
    pub(crate) fn documents<E>(
        &self,
        text: &str,
        parse: impl Fn(&str) -> Result<Vec<Value>, E>,
    ) -> Result<Vec<Value>, E> {
        if self.disabled.load(Ordering::Relaxed) {
            return parse(text);
        }
        if let Some(split) = quoted::split(text)
            && let Some(shape) = self.shape(&split, &parse)
            && let Some(documents) = shape
                .iter()
                .map(|document| quoted::fill(document, &split.contents))
                .collect::<Option<Vec<_>>>()
        {
            return Ok(documents);
        }
        self.read_or_parse(text, &parse)
    }

    /// The fast reader's documents, or `parse`'s where it declines.
    fn read_or_parse<E>(
        &self,
        text: &str,
        parse: &impl Fn(&str) -> Result<Vec<Value>, E>,
    ) -> Result<Vec<Value>, E> {
        if let Some(documents) = read_documents(text) {
            return Ok(documents);
        }
        self.slow_parses.fetch_add(1, Ordering::Relaxed);
        parse(text)
    }

    fn shape<E>(
        &self,
        split: &quoted::Split<'_>,
        parse: &impl Fn(&str) -> Result<Vec<Value>, E>,
    ) -> Option<Arc<Vec<Value>>> {
        if let Ok(shapes) = self.shapes.read()
            && let Some(found) = shapes.get(&split.marked)
        {
            return found.clone();
        }
        let built = self
            .read_or_parse(&split.marked, parse)
            .ok()
            .filter(|documents| quoted::holds_every_marker_whole(documents, split.contents.len()))
            .map(Arc::new);
        if let Ok(mut shapes) = self.shapes.write()
            && shapes.len() < MAX_SHAPES
        {
            shapes.insert(split.marked.clone(), built.clone());
        }
        built
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Vec<Value>, String> {
        serde_saphyr::from_multiple(text).map_err(|err| err.to_string())
    }

    fn quoted(value: &str) -> String {
        serde_json::to_string(value).unwrap_or_default()
    }

    /// Documents of one shape, with values where templates put them, beside constructs that
    /// hold quotes of their own.
    fn texts(values: &[String; 3]) -> Vec<String> {
        let [a, b, c] = values.each_ref().map(|v| quoted(v));
        vec![
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {a}\ndata:\n  k: {b}\n---\nkind: {c}\n"
            ),
            format!("{a}: 1\n{b}: 2\nlist: [{c}, \"x\"]\n"),
            format!("base: &x\n  n: {a}\ncopy: *x\n# \"comment\"\nv: {b}\n"),
            format!("block: |\n  \"q\"\nv: {a}\nplain: a\"b\"c\nw: {c}\n"),
            format!("n: !!str {a}\nm: {b}\n"),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-z0-9.-]{0,12}",
            2 => proptest::sample::select(vec!["no", "on", "~", "012", "1.5", "", " x", "x ", "a: b", "é", "-", "<<"])
                .prop_map(str::to_owned),
            1 => any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

        /// The cached path gives exactly what parsing gives, errors included, for the first
        /// text of a shape and for the next.
        #[test]
        fn the_cache_changes_nothing(first in proptest::array::uniform3(value()),
                                     second in proptest::array::uniform3(value())) {
            let cache = ParseCache::default();
            for (one, two) in texts(&first).into_iter().zip(texts(&second)) {
                prop_assert_eq!(cache.documents(&one, parse), parse(&one), "{}", one);
                prop_assert_eq!(cache.documents(&two, parse), parse(&two), "{}", two);
            }
        }
    }

    #[test]
    fn one_shape_is_parsed_once() {
        let cache = ParseCache::default();
        let calls = std::cell::Cell::new(0);
        let counting = |text: &str| {
            calls.set(calls.get() + 1);
            parse(text)
        };
        // Single quotes are outside the fast reader's subset: serde-saphyr parses the shape.
        for name in ["a", "b", "no", "c"] {
            let text = format!("name: \"{name}\"\nport: 443\nmode: 'x'\n");
            assert_eq!(cache.documents(&text, counting), parse(&text));
        }
        assert_eq!(calls.get(), 1, "the marked text only");
        assert_eq!(cache.slow_parses(), 1);
    }

    #[test]
    fn text_in_the_readers_subset_is_never_given_to_serde_saphyr() {
        let cache = ParseCache::default();
        let never = |text: &str| -> Result<Vec<Value>, String> { panic!("parsed {text}") };
        for text in [
            "name: \"a\"\nport: 443\n",
            "name: \"a\\n\"\nports: [1, 2]\n",
        ] {
            assert_eq!(cache.documents(text, never), parse(text));
        }
        assert_eq!(cache.slow_parses(), 0);
    }
}
