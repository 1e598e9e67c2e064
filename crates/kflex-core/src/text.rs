//! Text from input on its way to a person or a line-oriented stream: names and values a user (or
//! a tenant) wrote may hold line breaks, terminal escape sequences or bidirectional overrides.
//! This module owns the one definition of "unsafe to print" and the escaping used for it; it
//! never decides what is valid input (that is `api::names`).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal, a log line or a YAML comment as it is: C0 and C1
/// controls (line feed, carriage return, NUL, escape, NEL, ...), DEL, the Unicode line and
/// paragraph separators, the byte-order mark, and the bidirectional controls that make text
/// read differently from what it is ("Trojan Source").
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{FEFF}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character (see [`is_unsafe_char`]) written as a Rust-style escape
/// (`\n`, `\r`, `\t`, `\0`, `\u{1b}`); borrowed when there is nothing to escape.
pub fn escape_unsafe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if is_unsafe_char(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Levenshtein distance between `a` and `b`, in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(previous + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

/// The candidate `wanted` is most likely a misspelling of, for a "did you mean": the nearest
/// by [`edit_distance`] (ignoring case), if it is near enough to be a typo rather than another
/// word (two edits, or one in five characters).
pub fn nearest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let folded = wanted.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(&folded, &candidate.to_lowercase()), candidate))
        .min_by_key(|(distance, _)| *distance)
        .filter(|(distance, _)| *distance <= 2.max(wanted.chars().count() / 5))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_text_is_borrowed_unchanged() {
        for text in [
            "cp1",
            "PostCreateHook hello, templates[0]",
            "naïve café ✓",
            "",
        ] {
            assert!(matches!(escape_unsafe(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn every_line_break_and_control_is_escaped() {
        let hostile = [
            ("a\nb", "a\\nb"),
            ("a\rb", "a\\rb"),
            ("a\0b", "a\\0b"),
            ("a\tb", "a\\tb"),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("a\u{85}b", "a\\u{85}b"),
            ("a\u{2028}b\u{2029}", "a\\u{2028}b\\u{2029}"),
            ("\u{7f}", "\\u{7f}"),
            ("\u{202e}evil", "\\u{202e}evil"),
            ("\u{feff}bom", "\\u{feff}bom"),
            ("\u{9b}c", "\\u{9b}c"),
        ];
        for (input, expected) in hostile {
            let escaped = escape_unsafe(input);
            assert_eq!(escaped, expected);
            assert!(!escaped.chars().any(is_unsafe_char), "{escaped:?}");
        }
    }

    #[test]
    fn no_char_survives_escaping_unsafe() {
        // Every code point, in one string: nothing unsafe comes out.
        let all: String = (0..=0x10FFFF_u32).filter_map(char::from_u32).collect();
        assert!(!escape_unsafe(&all).chars().any(is_unsafe_char));
    }

    #[test]
    fn the_nearest_candidate_is_a_typo_away() {
        assert_eq!(edit_distance("DOMIAN", "DOMAIN"), 2);
        assert_eq!(edit_distance("KITTEN", "SITTING"), 3);
        assert_eq!(edit_distance("", "ABC"), 3);
        let keys = ["domain", "externalPort", "gateway.name"];
        assert_eq!(nearest("domian", keys), Some("domain"));
        assert_eq!(nearest("externalport", keys), Some("externalPort"));
        assert_eq!(nearest("gateway.nmae", keys), Some("gateway.name"));
        assert_eq!(nearest("registry", keys), None, "another word, not a typo");
    }
}
