//! The canonical YAML text of a JSON value, written directly: block style, two-space indents,
//! sequences at their key's column, mapping keys in the order the value holds them, and every
//! string a YAML 1.1 or 1.2 reader could take for something else (a boolean, a number, null, a
//! date, a merge key, an indicator) double-quoted.
//!
//! It writes exactly what serde-saphyr writes for the same value with kflex's options (a
//! differential test proves it byte for byte), at a small fraction of the cost: rendering a
//! fleet is mostly writing YAML, and serde-saphyr decides each scalar's style through several
//! passes over it. Floats are rare in manifests (CRD bounds) and are formatted by serde-saphyr
//! itself, so their spelling cannot drift.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

const INDENT: usize = 2;

/// Appends `value`, a document's root, to `out`, ending in a newline.
pub(crate) fn write_document(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) if !map.is_empty() => write_map(out, map.iter(), 0, false),
        Value::Array(items) if !items.is_empty() => write_seq(out, items, 0, false),
        scalar => {
            write_inline(out, scalar, Position::Root);
            out.push('\n');
        }
    }
}

/// Appends a mapping whose entries come from `entries`, in that order (the root of a manifest
/// puts `apiVersion`, `kind` and `metadata` first).
pub(crate) fn write_root_entries<'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
) {
    write_map(out, entries, 0, false);
}

/// Where an inline value is written: it decides how a block scalar's body is indented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    Root,
    /// After `key: `; the key is at column `key_column`.
    MapValue {
        key_column: usize,
    },
    /// After `- `; the dash is at column `dash_column`.
    SeqItem {
        dash_column: usize,
    },
}

/// Writes mapping entries at `column`. When `continued` the cursor already sits at `column` on a
/// line (after a sequence dash), so the first entry writes no indentation.
fn write_map<'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
    column: usize,
    mut continued: bool,
) {
    for (key, value) in entries {
        if !continued {
            push_spaces(out, column);
        }
        continued = false;
        write_key(out, key);
        out.push(':');
        match value {
            Value::Object(map) if !map.is_empty() => {
                out.push('\n');
                write_map(out, map.iter(), column + INDENT, false);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_seq(out, items, column, false);
            }
            _ => {
                out.push(' ');
                write_inline(out, value, Position::MapValue { key_column: column });
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
}

/// Writes sequence items with their dashes at `column` (the first on the current line when
/// `continued`).
fn write_seq(out: &mut String, items: &[Value], column: usize, mut continued: bool) {
    for item in items {
        if !continued {
            push_spaces(out, column);
        }
        continued = false;
        out.push_str("- ");
        let inner = column + INDENT;
        match item {
            Value::Object(map) if !map.is_empty() => write_map(out, map.iter(), inner, true),
            Value::Array(inner_items) if !inner_items.is_empty() => {
                write_seq(out, inner_items, inner, true);
            }
            _ => {
                write_inline(
                    out,
                    item,
                    Position::SeqItem {
                        dash_column: column,
                    },
                );
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
}

/// A scalar or an empty collection, on the current line (a block scalar continues below it).
fn write_inline(out: &mut String, value: &Value, position: Position) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text, position),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn write_number(out: &mut String, number: &Number) {
    if let Some(int) = number.as_i64() {
        let _ = write!(out, "{int}");
    } else if let Some(int) = number.as_u64() {
        let _ = write!(out, "{int}");
    } else if let Some(float) = number.as_f64() {
        // Rare (CRD bounds): serde-saphyr's own spelling (`600.0`, `1.0e+21`).
        match serde_saphyr::to_string(&float) {
            Ok(text) => out.push_str(text.trim_end_matches('\n')),
            Err(_) => {
                let _ = write!(out, "{float:?}");
            }
        }
    }
}

/// A one-line string scalar (no line feed) as the writer writes it, wherever it stands as a
/// value: the same text a whole document would hold for it.
pub(crate) fn write_scalar(out: &mut String, text: &str) {
    debug_assert!(!text.contains('\n'), "one-line strings only");
    write_string(out, text, Position::Root);
}

fn write_key(out: &mut String, key: &str) {
    if plain_key(key) {
        out.push_str(key);
    } else {
        write_double_quoted(out, key);
    }
}

fn write_string(out: &mut String, text: &str, position: Position) {
    if text.contains('\n') && block_safe(text) {
        write_literal_block(out, text, position);
    } else if matches!(text, "." | "#" | "-") {
        // Single-character indicators are written single-quoted, as serde-saphyr does.
        out.push('\'');
        out.push_str(text);
        out.push('\'');
    } else if plain_value(text) {
        out.push_str(text);
    } else {
        write_double_quoted(out, text);
    }
}

/// `|`, `|-` or `|+` (with an indentation indicator when the first line starts with a space),
/// then the lines two columns deeper than the parent node.
fn write_literal_block(out: &mut String, text: &str, position: Position) {
    let content = text.trim_end_matches('\n');
    let trailing = text.len() - content.len();
    let parent = match position {
        Position::MapValue { key_column } => key_column,
        Position::SeqItem { dash_column } => dash_column,
        Position::Root => 0,
    };
    let body = parent + INDENT;
    out.push('|');
    let first_line = content.split('\n').find(|line| !line.is_empty());
    if first_line.is_some_and(|line| line.starts_with(' ')) {
        let _ = write!(out, "{INDENT}");
    }
    match trailing {
        0 => out.push('-'),
        1 if !content.is_empty() => {}
        _ => out.push('+'),
    }
    out.push('\n');
    if content.is_empty() {
        for _ in 0..trailing {
            out.push('\n');
        }
        return;
    }
    for line in content.split('\n') {
        if !line.is_empty() {
            push_spaces(out, body);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

fn push_spaces(out: &mut String, count: usize) {
    const SPACES: &str = "                                                                ";
    let mut left = count;
    while left > 0 {
        let chunk = left.min(SPACES.len());
        out.push_str(&SPACES[..chunk]);
        left -= chunk;
    }
}

/// Characters a plain or block scalar cannot hold as they are: controls (other than the line
/// feed and tab a block may hold), the byte-order mark, the Unicode line separators, and the
/// non-characters U+FFFE and U+FFFF.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'
        )
}

/// Whether a multi-line string can be a literal block: nothing that needs an escape, and none of
/// the characters readers mishandle in blocks.
fn block_safe(text: &str) -> bool {
    text.chars().all(|c| match c {
        '\n' | '\t' => true,
        '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => false,
        c => matches!(
            u32::from(c),
            0x20..=0x7e | 0xa0..=0xd7ff | 0xe000..=0xfffd | 0x1_0000..=0x10_ffff
        ),
    })
}

fn write_double_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{feff}' => out.push_str("\\uFEFF"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if u32::from(c) <= 0xff
                && (c.is_control() || (0x7f..=0x9f).contains(&u32::from(c))) =>
            {
                let _ = write!(out, "\\x{:02X}", u32::from(c));
            }
            c if u32::from(c) <= 0xffff && needs_escape(c) => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether `text` may be written plain as a value.
fn plain_value(text: &str) -> bool {
    plain(text, false)
}

/// Whether every reader takes plain `text` for this very string (the reader's test).
pub(super) fn is_plain_string(text: &str) -> bool {
    plain_value(text)
}

/// Whether `text` may be written plain as a mapping key: as a value, and without `:` or the
/// characters that are structural in flow collections, and not the merge key `<<`.
fn plain_key(text: &str) -> bool {
    plain(text, true)
}

/// The one test of both: the shape of the first bytes, one pass over the rest, then whether a
/// reader would resolve the text to something else. ASCII text (nearly all of a manifest) is
/// checked byte by byte; text with other characters takes the same rules by character.
fn plain(text: &str, key: bool) -> bool {
    let bytes = text.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if first.is_ascii_whitespace() || last.is_ascii_whitespace() {
        return false;
    }
    match bytes {
        [b'-' | b'?'] => return false,
        [b'-' | b'?', second, ..] if second.is_ascii_whitespace() => return false,
        [
            b',' | b':' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>'
            | b'\'' | b'"' | b'%' | b'@' | b'`',
            ..,
        ] => return false,
        _ => {}
    }
    if document_marker(bytes) {
        return false;
    }
    let scanned = match scan_ascii(bytes, key) {
        Some(plain) => plain,
        None => scan_chars(text, key),
    };
    scanned && !(key && text == "<<") && !ambiguous(text)
}

/// For ASCII text: no control character, no `: ` and no final `:` (keys: no `:` at all, nor a
/// flow indicator), and no `#` after a space or tab (it would start a comment). `None` when a
/// byte is not ASCII.
fn scan_ascii(bytes: &[u8], key: bool) -> Option<bool> {
    let mut previous = 0u8;
    for &byte in bytes {
        // Most bytes of a manifest are letters, digits and the like: one table look-up each.
        if BYTE_CLASS[usize::from(byte)] == ORDINARY {
            previous = byte;
            continue;
        }
        match byte {
            0x80.. => return None,
            0..=0x1f | 0x7f => return Some(false),
            b'#' if previous == b' ' => return Some(false),
            b' ' if previous == b':' => return Some(false),
            b':' | b',' | b'[' | b']' | b'{' | b'}' if key => return Some(false),
            _ => {}
        }
        previous = byte;
    }
    Some(previous != b':')
}

const ORDINARY: u8 = 0;
const SPECIAL: u8 = 1;

/// Which bytes [`scan_ascii`] must look at more closely: controls, non-ASCII, `#`, space, `:`
/// and the flow indicators.
static BYTE_CLASS: [u8; 256] = {
    let mut class = [ORDINARY; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        if b < 0x20
            || b >= 0x7f
            || matches!(b, b'#' | b' ' | b':' | b',' | b'[' | b']' | b'{' | b'}')
        {
            class[byte] = SPECIAL;
        }
        byte += 1;
    }
    class
};

/// The rules of [`scan_ascii`] by character, for text that is not all ASCII: whitespace before
/// `#` and after the final `:` is any Unicode whitespace.
fn scan_chars(text: &str, key: bool) -> bool {
    if text.contains(": ") || text.trim().ends_with(':') {
        return false;
    }
    let mut previous_is_space = false;
    for c in text.chars() {
        let flow = matches!(c, ':' | ',' | '[' | ']' | '{' | '}');
        if needs_escape(c) || (key && flow) || (c == '#' && previous_is_space) {
            return false;
        }
        previous_is_space = c.is_whitespace();
    }
    true
}

/// `---` or `...` alone or followed by whitespace: a document marker at a line's start.
fn document_marker(bytes: &[u8]) -> bool {
    match bytes {
        [b'-', b'-', b'-', rest @ ..] | [b'.', b'.', b'.', rest @ ..] => {
            rest.first().is_none_or(u8::is_ascii_whitespace)
        }
        _ => false,
    }
}

/// Whether a YAML 1.1 or 1.2 reader could resolve plain `text` to something other than this
/// string: null, a boolean (YAML 1.1's `yes`, `on`, `y`, … included), a number in any spelling
/// YAML 1.1 or Go's reader accepts (`012`, `0x1F`, `1_000`, `1:30`, `.inf`), a timestamp, or
/// the merge and value keys `<<` and `=`.
fn ambiguous(text: &str) -> bool {
    // Everything ambiguous starts with one of these (most keys and values do not).
    if !matches!(
        text.as_bytes().first(),
        Some(
            b'0'..=b'9'
                | b'+'
                | b'-'
                | b'.'
                | b'_'
                | b'~'
                | b'<'
                | b'='
                | b'n'
                | b'N'
                | b't'
                | b'T'
                | b'f'
                | b'F'
                | b'y'
                | b'Y'
                | b'o'
                | b'O'
                | b'i'
                | b'I'
        ) | None
    ) {
        return false;
    }
    let lower_is = |word: &str| text.eq_ignore_ascii_case(word);
    let word = text.len() <= 5
        && (["null", "true", "false", "nan", "inf", "+inf", "-inf"]
            .iter()
            .any(|word| lower_is(word))
            || yaml11_bool(text));
    text.is_empty()
        || text == "~"
        || text == "<<"
        || text == "="
        || word
        || numeric(text)
        || timestamp(text)
}

/// YAML 1.1's booleans, in any case (some readers accept `yEs`).
fn yaml11_bool(text: &str) -> bool {
    ["y", "yes", "n", "no", "on", "off"]
        .iter()
        .any(|word| text.eq_ignore_ascii_case(word))
}

/// Number syntax, YAML 1.1 and 1.2 together (the strictest reader wins): decimal, binary,
/// octal and hexadecimal integers with underscores, floats with optional exponents and YAML
/// 1.1's loose forms, `.inf`/`.nan`, and base-60 numbers.
fn numeric(text: &str) -> bool {
    if !matches!(
        text.as_bytes().first(),
        Some(b'0'..=b'9' | b'+' | b'-' | b'.' | b'_')
    ) {
        return false;
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.eq_ignore_ascii_case(".inf") || unsigned.eq_ignore_ascii_case(".nan") {
        return true;
    }
    if sexagesimal(text) {
        return true;
    }
    if let Some((radix, digits)) = radix_prefix(unsigned)
        && digit_run(digits, radix, false)
    {
        return true;
    }
    // Go's reader drops underscores before resolving numbers.
    let without_underscores;
    let text = if text.contains('_') {
        without_underscores = text.replace('_', "");
        without_underscores.as_str()
    } else {
        text
    };
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if let Some((radix, digits)) = radix_prefix(unsigned) {
        let digits = if text.starts_with("0b") || text.starts_with("0o") {
            digits.strip_prefix(['+', '-']).unwrap_or(digits)
        } else {
            digits
        };
        return digit_run(digits, radix, true);
    }
    let mantissa = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => {
            let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if !digit_run(exponent, 10, true) {
                return false;
            }
            mantissa
        }
        None => unsigned,
    };
    match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            (whole.is_empty() || digit_run(whole, 10, true))
                && fraction.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        }
        None => digit_run(mantissa, 10, true),
    }
}

fn radix_prefix(text: &str) -> Option<(u32, &str)> {
    match text.as_bytes() {
        [b'0', b'b' | b'B', ..] => Some((2, &text[2..])),
        [b'0', b'o' | b'O', ..] => Some((8, &text[2..])),
        [b'0', b'x' | b'X', ..] => Some((16, &text[2..])),
        _ => None,
    }
}

/// A non-empty run of digits of `radix`; underscores anywhere, or (`strict`) only between
/// digits.
fn digit_run(text: &str, radix: u32, strict: bool) -> bool {
    let bytes = text.as_bytes();
    let digit = |b: u8| char::from(b).is_digit(radix);
    !bytes.is_empty()
        && bytes.iter().enumerate().all(|(i, &b)| {
            digit(b)
                || (b == b'_'
                    && (!strict
                        || (i > 0
                            && digit(bytes[i - 1])
                            && bytes.get(i + 1).is_some_and(|&next| digit(next)))))
        })
}

/// YAML 1.1's base-60 numbers (`1:30`, `190:20:30.15`).
fn sexagesimal(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (integer, fraction) = match unsigned.split_once('.') {
        Some((integer, fraction)) => (integer, Some(fraction)),
        None => (unsigned, None),
    };
    let Some((first, rest)) = integer.split_once(':') else {
        return false;
    };
    let Some(&lead) = first.as_bytes().first() else {
        return false;
    };
    if !lead.is_ascii_digit()
        || (fraction.is_none() && lead == b'0')
        || !first.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return false;
    }
    rest.split(':').all(|part| match part.as_bytes() {
        [digit] => digit.is_ascii_digit(),
        [tens, units] => matches!(tens, b'0'..=b'5') && units.is_ascii_digit(),
        _ => false,
    }) && fraction.is_none_or(|part| part.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
}

/// YAML 1.1 timestamps as Go's reader accepts them (`2001-12-14`, `2001-12-14t21:59:43.10-05:00`,
/// single-digit fields and a space separator included).
fn timestamp(text: &str) -> bool {
    let mut rest = text;
    let digits = |min: usize, max: usize, rest: &mut &str| {
        let count = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(min..=max).contains(&count) {
            return false;
        }
        *rest = &rest[count..];
        true
    };
    let expect = |c: char, rest: &mut &str| match rest.strip_prefix(c) {
        Some(after) => {
            *rest = after;
            true
        }
        None => false,
    };
    if !(digits(4, 4, &mut rest)
        && expect('-', &mut rest)
        && digits(1, 2, &mut rest)
        && expect('-', &mut rest)
        && digits(1, 2, &mut rest))
    {
        return false;
    }
    if rest.is_empty() {
        return true;
    }
    if let Some(after) = rest.strip_prefix(['T', 't']) {
        rest = after;
    } else {
        let after = rest.trim_start_matches([' ', '\t']);
        if after.len() == rest.len() {
            return false;
        }
        rest = after;
    }
    if !(digits(1, 2, &mut rest)
        && expect(':', &mut rest)
        && digits(1, 2, &mut rest)
        && expect(':', &mut rest)
        && digits(1, 2, &mut rest))
    {
        return false;
    }
    if expect('.', &mut rest) || expect(',', &mut rest) {
        digits(0, usize::MAX, &mut rest);
    }
    rest = rest.trim_start_matches([' ', '\t']);
    if rest.is_empty() || rest == "Z" {
        return true;
    }
    if !((expect('+', &mut rest) || expect('-', &mut rest)) && digits(1, 2, &mut rest)) {
        return false;
    }
    if expect(':', &mut rest) && !digits(2, 2, &mut rest) {
        return false;
    }
    rest.is_empty()
}

/// The root's entries in canonical order, for [`write_root_entries`].
pub(crate) fn canonical_entries<'a>(
    map: &'a Map<String, Value>,
    leading: &'a [&'a str],
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    let first = leading
        .iter()
        .filter_map(move |field| map.get_key_value(*field));
    let rest = map
        .iter()
        .filter(move |(key, _)| !leading.contains(&key.as_str()));
    first.chain(rest)
}
