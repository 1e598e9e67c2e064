//! Parsing rendered YAML once per shape. kflex's templates write every value JSON-escaped, so
//! double-quoted, and the text one control plane renders differs from another's only inside
//! those quotes. So the contents of the double-quoted scalars are replaced by unique markers,
//! the marked text is parsed once per distinct marked text (a shape), and each text of that
//! shape gets the parsed tree with the markers filled in. That is exact, not a guess:
//!
//! - A content without `"`, `\` or a line break cannot change how the text around it parses:
//!   the marked text parses to the same tree, with markers where the contents were, provided
//!   each marker stood alone in a double-quoted scalar. That is checked on the tree: a marker
//!   must be a whole string, and every marker must be there (one in a comment, a plain, a
//!   single-quoted or a block scalar fails the check, and the text takes the ordinary path).
//! - A double-quoted scalar without escapes is exactly its content.
//! - Filling a mapping's keys can make two keys equal, which parsing reports as an error: that
//!   case takes the ordinary path too.
//!
//! The module owns the splitting, the check and the filling; `parse_cache` and `canonical` use
//! them for templates' documents and for the `canonical_yaml` filter.

use serde_json::{Map, Value};

pub(super) const OPEN: char = '\u{E000}';
pub(super) const CLOSE: char = '\u{E001}';

/// A text split at its double-quoted scalars.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Split<'a> {
    /// The text with each content replaced by a marker (`OPEN` index `CLOSE`).
    pub marked: String,
    /// The contents, by marker index.
    pub contents: Vec<&'a str>,
}

/// `text` split at its double-quoted scalars; `None` when a content holds `\` or a line break,
/// a quote is left open, or the text already holds a marker character (the ordinary path then
/// decides).
pub(super) fn split(text: &str) -> Option<Split<'_>> {
    let bytes = text.as_bytes();
    // The markers' first UTF-8 byte (U+E000 and U+E001 are EE 80 80 and EE 80 81).
    if bytes.contains(&0xEE) && text.contains([OPEN, CLOSE]) {
        return None;
    }
    let mut marked = String::with_capacity(text.len());
    let mut contents = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'"' {
            at += 1;
            continue;
        }
        let open = at;
        let mut close = open + 1;
        loop {
            match bytes.get(close)? {
                b'"' => break,
                b'\\' | b'\n' | b'\r' => return None,
                _ => close += 1,
            }
        }
        // Quotes and the bytes checked above are ASCII, so both ends are char boundaries.
        marked.push_str(&text[start..=open]);
        marked.push(OPEN);
        push_index(&mut marked, contents.len());
        marked.push(CLOSE);
        marked.push('"');
        contents.push(&text[open + 1..close]);
        at = close + 1;
        start = at;
    }
    marked.push_str(&text[start..]);
    Some(Split { marked, contents })
}

/// `index` in decimal, without going through the formatting machinery.
fn push_index(out: &mut String, index: usize) {
    let mut digits = [0u8; 20];
    let mut left = index;
    let mut at = digits.len();
    loop {
        at -= 1;
        // A decimal digit is always below 10.
        digits[at] = b'0' + u8::try_from(left % 10).unwrap_or(0);
        left /= 10;
        if left == 0 {
            break;
        }
    }
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

/// The marker index `text` is, if it is exactly one marker.
pub(super) fn marker(text: &str) -> Option<usize> {
    text.strip_prefix(OPEN)?.strip_suffix(CLOSE)?.parse().ok()
}

/// Whether the tree parsed from a marked text with `count` markers holds each of them, and
/// only as whole strings (keys or values): then every marker stood alone in a double-quoted
/// scalar.
pub(super) fn holds_every_marker_whole(documents: &[Value], count: usize) -> bool {
    fn visit(value: &Value, seen: &mut [bool]) -> bool {
        let string = |text: &str, seen: &mut [bool]| {
            if !text.contains(OPEN) && !text.contains(CLOSE) {
                return true;
            }
            match marker(text).and_then(|index| seen.get_mut(index)) {
                Some(slot) => {
                    *slot = true;
                    true
                }
                None => false,
            }
        };
        match value {
            Value::String(text) => string(text, seen),
            Value::Array(items) => items.iter().all(|item| visit(item, seen)),
            Value::Object(map) => map
                .iter()
                .all(|(key, item)| string(key, seen) && visit(item, seen)),
            _ => true,
        }
    }
    let mut seen = vec![false; count];
    documents.iter().all(|doc| visit(doc, &mut seen)) && seen.iter().all(|s| *s)
}

/// Whether a marker is a mapping key somewhere in `value` (replacing it could reorder keys).
pub(super) fn marker_is_a_key(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(marker_is_a_key),
        Value::Object(map) => map
            .iter()
            .any(|(key, item)| key.starts_with(OPEN) || marker_is_a_key(item)),
        _ => false,
    }
}

/// The tree with every marker replaced by its content; `None` when two keys of a mapping
/// become equal (parsing the text would report a duplicate key).
pub(super) fn fill(value: &Value, contents: &[&str]) -> Option<Value> {
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
    if !text.starts_with(OPEN) {
        return Some(text.to_owned());
    }
    contents.get(marker(text)?).map(|c| (*c).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Vec<Value> {
        serde_saphyr::from_multiple(text).unwrap_or_default()
    }

    #[test]
    fn contents_become_markers_and_come_back() {
        let text = "a: \"x\"\nb: [\"y\", 1]\n\"k\": \"\"\n";
        let split = split(text).unwrap();
        assert_eq!(split.contents, ["x", "y", "k", ""]);
        let tree = parse(&split.marked);
        assert!(holds_every_marker_whole(&tree, split.contents.len()));
        let filled: Vec<Value> = tree
            .iter()
            .map(|d| fill(d, &split.contents).unwrap())
            .collect();
        assert_eq!(filled, parse(text));
    }

    #[test]
    fn markers_outside_a_lone_double_quoted_scalar_fail_the_check() {
        for text in [
            "# a \"comment\"\na: 1\n",
            "a: 'single \"quoted\"'\n",
            "a: |\n  \"block\"\n",
            "a: plain\"x\"y\n",
        ] {
            let split = split(text).unwrap();
            let tree = parse(&split.marked);
            assert!(
                !holds_every_marker_whole(&tree, split.contents.len()),
                "{text}"
            );
        }
    }

    #[test]
    fn what_splitting_cannot_prove_is_left_alone() {
        for text in [
            "a: \"x\\\"y\"\n",
            "a: \"two\n  lines\"\n",
            "a: \"open\n",
            "a: \"\u{E000}\"\n",
        ] {
            assert_eq!(split(text), None, "{text}");
        }
    }

    #[test]
    fn keys_that_become_equal_are_not_filled() {
        let tree = json!({format!("{OPEN}0{CLOSE}"): 1, format!("{OPEN}1{CLOSE}"): 2});
        assert_eq!(fill(&tree, &["a", "a"]), None);
        assert_eq!(fill(&tree, &["a", "b"]), Some(json!({"a": 1, "b": 2})));
    }
}
