//! A fast reader for the plain block YAML that templates render, and nothing more: block
//! mappings and sequences, plain and double-quoted one-line scalars, literal blocks, comment
//! lines, `---` between documents, and flow collections of scalars on one line (`[a, "b"]`,
//! `{"k":"v"}`). Anything else — nested flow collections, plain keys in flow, single quotes, folded blocks, anchors, tags, directives, multi-line plain
//! scalars, a plain scalar a resolver might read as anything but a string, a decimal integer,
//! `true`, `false` or `null`, duplicate keys, deep nesting — makes it answer `None`, and the
//! caller parses with serde-saphyr. So it is never wrong, only sometimes not used: differential
//! tests compare it with serde-saphyr on every kind of text it accepts.
//!
//! Why it exists: serde-saphyr spends some 300 instructions a byte, and parsing templates'
//! text was half of a one-shot `kflex render cp1`.

use serde_json::{Map, Number, Value};

/// Nesting deeper than this is left to serde-saphyr, whose budget refuses what is hostile;
/// templates nest about ten levels.
const MAX_DEPTH: usize = 64;

/// The documents of `text`, or `None` when it holds anything outside the subset. Empty
/// documents are skipped, as serde-saphyr skips them.
pub(crate) fn read_documents(text: &str) -> Option<Vec<Value>> {
    let mut reader = Reader {
        lines: text.split('\n').collect(),
        at: 0,
        depth: 0,
        ends_with_newline: text.ends_with('\n'),
    };
    let mut documents = Vec::new();
    let mut explicit_start = false;
    loop {
        reader.skip_blank_and_comments();
        let Some(&line) = reader.lines.get(reader.at) else {
            break;
        };
        if line == "---" {
            explicit_start = true;
            reader.at += 1;
            continue;
        }
        // A document after the first must start with `---`.
        if !explicit_start && !documents.is_empty() {
            return None;
        }
        explicit_start = false;
        let (indent, _) = indentation(line)?;
        if indent != 0 {
            return None;
        }
        documents.push(reader.block(0)?);
    }
    Some(documents)
}

struct Reader<'a> {
    lines: Vec<&'a str>,
    at: usize,
    depth: usize,
    ends_with_newline: bool,
}

/// The indentation (spaces only) and the rest of a line; `None` for a tab or carriage return
/// where a reader might see indentation or a line's end.
fn indentation(line: &str) -> Option<(usize, &str)> {
    let rest = line.trim_start_matches(' ');
    if rest.starts_with('\t') || line.ends_with('\r') {
        return None;
    }
    Some((line.len() - rest.len(), rest))
}

fn is_dash(rest: &str) -> bool {
    rest == "-" || rest.starts_with("- ")
}

impl<'a> Reader<'a> {
    fn skip_blank_and_comments(&mut self) {
        while let Some(line) = self.lines.get(self.at) {
            let trimmed = line.trim_start_matches(' ');
            if trimmed.is_empty() || (trimmed.starts_with('#') && printable(trimmed)) {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    /// The next content line: its indentation and content; `None` at the end of the document.
    fn peek(&mut self) -> Option<(usize, &'a str)> {
        self.skip_blank_and_comments();
        let line = *self.lines.get(self.at)?;
        if line == "---" {
            return None;
        }
        indentation(line)
    }

    /// A block node whose first line, the next content line, is at `indent`.
    fn block(&mut self, indent: usize) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let (_, rest) = self.peek()?;
        let node = if is_dash(rest) {
            self.sequence(indent)
        } else {
            let mut map = Map::new();
            self.entries(&mut map, indent).map(|()| Value::Object(map))
        };
        self.depth -= 1;
        node
    }

    /// Items whose dashes are at `indent`, until a line at a smaller indentation or one that
    /// is not an item.
    fn sequence(&mut self, indent: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some((column, rest)) = self.peek() {
            if column > indent {
                return None;
            }
            if column < indent || !is_dash(rest) {
                break;
            }
            let item = rest.strip_prefix("- ")?;
            if item.is_empty() || item.starts_with(' ') || is_dash(item) {
                // An item on the next lines, odd spacing or a nested sequence: left alone.
                return None;
            }
            if let Some((key, after)) = split_key(item)? {
                // A mapping that starts on the dash's line, its keys two columns in.
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return None;
                }
                let inner = indent + 2;
                let mut map = Map::new();
                self.entry(&mut map, inner, key, after)?;
                self.entries(&mut map, inner)?;
                self.depth -= 1;
                items.push(Value::Object(map));
            } else {
                self.at += 1;
                items.push(self.inline(item, indent)?);
            }
        }
        Some(Value::Array(items))
    }

    /// Entries whose keys are at `indent` into `map`, until a line at a smaller indentation.
    fn entries(&mut self, map: &mut Map<String, Value>, indent: usize) -> Option<()> {
        while let Some((column, rest)) = self.peek() {
            if column < indent {
                break;
            }
            if column > indent {
                return None;
            }
            let (key, after) = split_key(rest)??;
            self.entry(map, indent, key, after)?;
        }
        Some(())
    }

    /// One `key: …` entry on line `self.at`, the key at `indent`.
    fn entry(
        &mut self,
        map: &mut Map<String, Value>,
        indent: usize,
        key: String,
        after: &'a str,
    ) -> Option<()> {
        self.at += 1;
        let value = if after.is_empty() {
            match self.peek() {
                // A sequence may stand at its key's column.
                Some((column, rest)) if column >= indent && is_dash(rest) => self.block(column)?,
                Some((column, rest)) if column > indent && !rest.starts_with('-') => {
                    self.block(column)?
                }
                Some((column, _)) if column > indent => return None,
                _ => Value::Null,
            }
        } else {
            self.inline(after, indent)?
        };
        if map.insert(key, value).is_some() {
            return None;
        }
        Some(())
    }

    /// The value `text` on the line just passed, its parent node at `indent`.
    fn inline(&mut self, text: &'a str, indent: usize) -> Option<Value> {
        let value = match text.as_bytes().first()? {
            b'"' => Value::String(double_quoted(text)?),
            b'|' => return self.literal(text, indent),
            b'[' => flow_sequence(text)?,
            b'{' => flow_mapping(text)?,
            _ => plain(text)?,
        };
        // A deeper line would continue a plain scalar, or be an error: not ours either way.
        if self.peek().is_some_and(|(column, _)| column > indent) {
            return None;
        }
        Some(value)
    }

    /// A literal block (`|`, `|-` or `|+`, no indentation indicator) whose lines are indented
    /// more than `indent`.
    fn literal(&mut self, header: &str, indent: usize) -> Option<Value> {
        let chomp = match header.trim_end_matches(' ') {
            "|" => Chomp::Clip,
            "|-" => Chomp::Strip,
            "|+" => Chomp::Keep,
            _ => return None,
        };
        let mut block_indent = None;
        let mut lines: Vec<&str> = Vec::new();
        while let Some(&line) = self.lines.get(self.at) {
            if line.is_empty() {
                lines.push("");
                self.at += 1;
                continue;
            }
            let (column, rest) = indentation(line)?;
            if rest.is_empty() || !printable(rest) {
                // Lines of spaces alone are where readers disagree.
                return None;
            }
            let expected = *block_indent.get_or_insert(column);
            if column <= indent || column < expected {
                break;
            }
            lines.push(&line[expected..]);
            self.at += 1;
        }
        let block_indent = block_indent?;
        if block_indent <= indent || lines.first().is_some_and(|line| line.is_empty()) {
            // An empty block, or leading empty lines: left alone.
            return None;
        }
        let at_end = self.at >= self.lines.len();
        let mut content_end = lines.len();
        while content_end > 0 && lines[content_end - 1].is_empty() {
            content_end -= 1;
        }
        let mut breaks_after = lines.len() - content_end;
        if at_end {
            // The text's last line break ends the last line; it is not a line of its own.
            if !self.ends_with_newline && !matches!(chomp, Chomp::Strip) {
                return None;
            }
            breaks_after = breaks_after.saturating_sub(1);
        }
        let mut text = lines[..content_end].join("\n");
        match chomp {
            Chomp::Strip => {}
            Chomp::Clip => text.push('\n'),
            Chomp::Keep => {
                text.push('\n');
                text.extend(std::iter::repeat_n('\n', breaks_after));
            }
        }
        // The empty lines after the content carry nothing the parent needs; it skips them.
        self.at -= lines.len() - content_end;
        Some(Value::String(text))
    }
}

#[derive(Clone, Copy)]
enum Chomp {
    Strip,
    Clip,
    Keep,
}

/// `Some(Some((key, value text)))` for a `key: value` or `key:` line; `Some(None)` for a line
/// that is surely a scalar, not an entry; `None` for anything unclear.
#[allow(clippy::option_option, reason = "three outcomes, each used")]
fn split_key(line: &str) -> Option<Option<(String, &str)>> {
    let (key, after) = if line.starts_with('"') {
        let end = closing_quote(line)?;
        let after = &line[end + 1..];
        if after.trim_start_matches(' ').is_empty() {
            return Some(None);
        }
        (double_quoted(&line[..=end])?, after)
    } else {
        // A key ends at the first `: `, or at a `:` that ends the line.
        let colon = match line.find(": ") {
            Some(colon) => colon,
            None if line.ends_with(':') => line.len() - 1,
            None => return Some(None),
        };
        let key = &line[..colon];
        if !plain_key(key) {
            return None;
        }
        (key.to_owned(), &line[colon..])
    };
    let after = after.strip_prefix(':')?;
    let value = after.trim_start_matches(' ');
    if value.is_empty() {
        return Some(Some((key, value)));
    }
    if value.len() == after.len() || value.starts_with('#') {
        return None;
    }
    Some(Some((key, value)))
}

/// A plain key every reader takes as this string: a letter, then letters, digits and a few
/// punctuation characters, and nothing a resolver could take for another type.
fn plain_key(key: &str) -> bool {
    key.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && super::yaml_writer::is_plain_string(key)
}

/// A plain scalar on one line: a decimal integer, `true`, `false` or `null` in that spelling,
/// or a string when no reader could take it for anything else.
fn plain(text: &str) -> Option<Value> {
    let text = text.trim_end_matches(' ');
    match text {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    if let Some(int) = decimal(text) {
        return Some(Value::Number(int));
    }
    super::yaml_writer::is_plain_string(text).then(|| Value::String(text.to_owned()))
}

/// A flow sequence of scalars `[a, "b", 3]` that ends its line; `None` for nested
/// collections, empty items, a trailing comma, and plain items holding any character that is
/// structural in flow context or could start a comment.
fn flow_sequence(text: &str) -> Option<Value> {
    let mut rest = text.strip_prefix('[')?.trim_start_matches(' ');
    let mut items = Vec::new();
    if let Some(after) = rest.strip_prefix(']') {
        return line_ends(after).then_some(Value::Array(items));
    }
    loop {
        let (item, after) = flow_scalar(rest, ']')?;
        items.push(item);
        if let Some(after) = after.strip_prefix(']') {
            return line_ends(after).then_some(Value::Array(items));
        }
        rest = after.strip_prefix(',')?.trim_start_matches(' ');
    }
}

/// A flow mapping with double-quoted keys and scalar values on one line, as JSON writes one
/// (`{"a":"b","c":1}`); `None` for plain keys, nested collections and duplicate keys.
fn flow_mapping(text: &str) -> Option<Value> {
    let mut rest = text.strip_prefix('{')?.trim_start_matches(' ');
    let mut map = Map::new();
    if let Some(after) = rest.strip_prefix('}') {
        return line_ends(after).then_some(Value::Object(map));
    }
    loop {
        if !rest.starts_with('"') {
            return None;
        }
        let end = closing_quote(rest)? + 1;
        let key = double_quoted(&rest[..end])?;
        let after_colon = rest[end..].trim_start_matches(' ').strip_prefix(':')?;
        let (value, after) = flow_scalar(after_colon.trim_start_matches(' '), '}')?;
        if map.insert(key, value).is_some() {
            return None;
        }
        if let Some(after) = after.strip_prefix('}') {
            return line_ends(after).then_some(Value::Object(map));
        }
        rest = after.strip_prefix(',')?.trim_start_matches(' ');
    }
}

/// One scalar of a flow collection closed by `close`, and the text after it and its spaces.
fn flow_scalar(text: &str, close: char) -> Option<(Value, &str)> {
    let end = if text.starts_with('"') {
        closing_quote(text)? + 1
    } else {
        text.find([',', close])?
    };
    let item = text[..end].trim_end_matches(' ');
    let value = if item.starts_with('"') {
        Value::String(double_quoted(item)?)
    } else {
        if item.contains([',', '[', ']', '{', '}', ':', '#', '"']) {
            return None;
        }
        plain(item)?
    };
    Some((value, text[end..].trim_start_matches(' ')))
}

/// Whether nothing but spaces is left on the line.
fn line_ends(text: &str) -> bool {
    text.trim_start_matches(' ').is_empty()
}

/// Whether `text` holds only characters YAML lets a document hold as they are (tab included).
fn printable(text: &str) -> bool {
    if text
        .bytes()
        .all(|b| (b' '..0x7f).contains(&b) || b == b'\t')
    {
        return true;
    }
    text.chars().all(printable_char)
}

fn printable_char(c: char) -> bool {
    (!c.is_control() || c == '\t') && !matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// The byte index of the quote that closes the double-quoted scalar `text` starts with.
fn closing_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = 1;
    loop {
        match bytes.get(at)? {
            b'"' => return Some(at),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

/// `0`, `[1-9][0-9]*` or `-[1-9][0-9]*`, within an i64.
fn decimal(text: &str) -> Option<Number> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !digits.starts_with('0'));
    if !canonical {
        return None;
    }
    text.parse::<i64>().ok().map(Number::from)
}

/// A one-line double-quoted scalar `"…"` followed by nothing but spaces; `None` for control
/// characters and for escapes that are not single characters.
fn double_quoted(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                let rest = &inner[at + 1..];
                return rest.trim_start_matches(' ').is_empty().then_some(out);
            }
            '\\' => {
                let (_, escape) = chars.next()?;
                out.push(match escape {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    ' ' => ' ',
                    '0' => '\0',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    't' => '\t',
                    'n' => '\n',
                    'v' => '\u{b}',
                    'f' => '\u{c}',
                    'r' => '\r',
                    'e' => '\u{1b}',
                    'N' => '\u{85}',
                    '_' => '\u{a0}',
                    'L' => '\u{2028}',
                    'P' => '\u{2029}',
                    'x' => hex_char(&mut chars, 2)?,
                    'u' => hex_char(&mut chars, 4)?,
                    'U' => hex_char(&mut chars, 8)?,
                    _ => return None,
                });
            }
            c if !printable_char(c) => return None,
            c => out.push(c),
        }
    }
    None
}

/// The character of exactly `digits` hexadecimal digits; `None` for fewer, or for a surrogate.
fn hex_char(chars: &mut std::str::CharIndices<'_>, digits: usize) -> Option<char> {
    let mut code = 0u32;
    for _ in 0..digits {
        let (_, digit) = chars.next()?;
        code = code * 16 + digit.to_digit(16)?;
    }
    char::from_u32(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::arbitrary::{TRICKY, tricky, value};
    use crate::manifest::yaml_writer::write_document;
    use proptest::prelude::*;

    /// What the renderer would parse without the reader.
    fn saphyr(text: &str) -> Result<Vec<Value>, String> {
        let mut options = serde_saphyr::options::Options::default();
        options.emit_comments = false;
        serde_saphyr::from_multiple_with_options(text, options).map_err(|err| err.to_string())
    }

    /// Whether the reader read `text`; when it did, it read what serde-saphyr reads.
    fn read_as_saphyr_does(text: &str) -> Result<bool, TestCaseError> {
        let Some(ours) = read_documents(text) else {
            return Ok(false);
        };
        match saphyr(text) {
            Ok(theirs) => prop_assert_eq!(&ours, &theirs, "text:\n{}", text),
            Err(err) => prop_assert!(
                false,
                "read {ours:?} where serde-saphyr fails ({err}):\n{text}"
            ),
        }
        Ok(true)
    }

    fn read_or_panic(text: &str) -> bool {
        read_as_saphyr_does(text).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Lines of the kinds templates write, and of kinds they do not, at any indentation.
    fn line() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            proptest::sample::select(TRICKY.to_vec()).prop_map(str::to_owned),
            "[a-z]{1,6}",
            Just("12".to_owned()),
            Just("-3".to_owned()),
            Just("true".to_owned()),
            Just("null".to_owned()),
            tricky().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        ];
        let flow_items = proptest::collection::vec(scalar.clone(), 0..4);
        let flow_pairs = proptest::collection::vec(
            (
                tricky().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
                scalar.clone(),
            ),
            0..4,
        );
        let shape = prop_oneof![
            flow_items.prop_map(|items| format!("key: [{}]", items.join(", "))),
            flow_pairs.prop_map(|pairs| {
                let pairs: Vec<String> =
                    pairs.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("key: {{{}}}", pairs.join(","))
            }),
            scalar.clone().prop_map(|v| format!("key: {v}")),
            scalar.clone().prop_map(|v| format!("other: {v}")),
            scalar.clone().prop_map(|v| format!("- {v}")),
            scalar.clone().prop_map(|v| format!("- key: {v}")),
            scalar.clone().prop_map(|v| format!("\"q k\": {v}")),
            scalar.prop_map(|v| format!("  {v}")),
            proptest::sample::select(vec![
                "key:",
                "other:",
                "nested:",
                "-",
                "- key:",
                "key: |",
                "key: |-",
                "key: |+",
                "- |",
                "- |-",
                "key: |2",
                "key: >",
                "key: []",
                "key: {}",
                "- []",
                "# comment",
                "",
                " ",
                "---",
                "...",
                "key: a #c",
                "key:  x",
                "key: \"a\" #c",
                "key:\ta",
                "\tkey: a",
                "key: &a x",
                "key: *a",
                "key: !!str 1",
                "key: 'x'",
                "- - a",
                "key: [a, b]",
                "? key",
                "key: \"a\\\"b\"",
                "%YAML 1.2",
                "text line",
                "--- x",
                "key: 0x1F",
                "key: 1_000",
                "key: yes",
                "key: ~",
                "key: 1.5",
                "\"k\":",
                "a: b: c",
                "key:x",
                "key: \"\\u00e9\"",
                "key: \"\\ud83d\"",
                "key: [a,b]",
                "- [a, \"b,c\"]",
                "key: [ a ]",
                "key: [a, ]",
                "key: [a b]",
                "key: [a, [b]]",
                "key: [a: b]",
                "key: [-r, --x=1]",
                "key: [a, #c]",
                "key: [a] #c",
                "key: [ ]",
                "key: [\"a\\\"]\", b]",
                "key: [a]]",
                "key: [,]",
                "key: [a,",
                "key: [{a: b}]",
                "\"a\\\"b\": 1",
                "\"a\\\"b\"",
                "key: [1, true, null, -2]",
                "key: ['a']",
                "key: {\"a\":\"b\",\"c\":\"d\"}",
                "key: {\"a\": 1, \"b\": true}",
                "key: {a: b}",
                "key: {\"a\":b}",
                "key: {\"a\" : \"b\" }",
                "key: {\"a\":\"b\",}",
                "key: {\"a\":\"b\",\"a\":\"c\"}",
                "key: {\"a\":[b]}",
                "key: {\"a\"}",
                "key: {\"a\":\"b\"} #c",
                "- {\"a\":\"b\"}",
                "key: { }",
                "key: {\"a\":}",
                "# a\u{c} comment",
                "  x\u{1}y",
                "key: \"\u{feff}\"",
                "  \u{85}x",
            ])
            .prop_map(str::to_owned),
        ];
        (0usize..7, shape).prop_map(|(indent, shape)| format!("{}{shape}", " ".repeat(indent)))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Wherever lines of any kind stand, the reader reads what serde-saphyr reads or
        /// leaves the text to it.
        #[test]
        fn any_lines_are_read_as_serde_saphyr_reads_them_or_left_alone(
            lines in proptest::collection::vec(line(), 1..12),
            final_newline in any::<bool>(),
        ) {
            let mut text = lines.join("\n");
            if final_newline {
                text.push('\n');
            }
            read_as_saphyr_does(&text)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

        /// What kflex's writer writes, one document or a stream, reads back as serde-saphyr
        /// reads it.
        #[test]
        fn written_documents_are_read_as_serde_saphyr_reads_them(
            documents in proptest::collection::vec(
                proptest::collection::btree_map(tricky(), value(), 1..6), 1..4),
            comments in any::<bool>(),
        ) {
            let mut text = String::new();
            for document in documents {
                text.push_str("---\n");
                if comments {
                    text.push_str("# Source: a/b.yaml\n");
                }
                write_document(&mut text, &Value::Object(document.into_iter().collect()));
            }
            read_as_saphyr_does(&text)?;
        }

        /// Objects as templates write them, values JSON-quoted or plain, are read (not left
        /// to serde-saphyr), so the shortcut is taken where it matters.
        #[test]
        fn manifests_as_templates_write_them_are_read(
            name in "[a-z][a-z0-9-]{0,20}",
            value in any::<String>(),
            port in 1u16..,
            flag in any::<bool>(),
            script in "[!-~][ -~]{0,19}(\n[!-~][ -~]{0,19}){0,3}\n",
        ) {
            let quoted = serde_json::to_string(&value).unwrap_or_default();
            let text = format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: \"{name}\"\n  labels:\n    \
                 app.kubernetes.io/name: {name}x\n    note: {quoted}\n# a comment\nspec:\n  \
                 ports:\n  - name: https\n    port: {port}\n    enabled: {flag}\n  selector: {{}}\n  \
                 script: |\n{}\n  list: []\n  items:\n    - \"a\"\n    - b\n",
                script.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n"),
            );
            prop_assert!(read_as_saphyr_does(&text)?, "not read:\n{}", text);
        }
    }

    #[test]
    fn literal_blocks_keep_exactly_their_line_breaks() {
        for text in [
            "a: |\n  x\n  y\nb: 1\n",
            "a: |-\n  x\n\n  y\n\nb: 1\n",
            "a: |+\n  x\n\n\nb: 1\n",
            "a: |+\n  x\n\n",
            "a: |\n  x\n\n\n",
            "a: |-\n  x",
            "- |\n  x\n- |+\n  y\n\n- z\n",
            "a:\n  b: |\n    x\n      indented more\n    # not a comment\n  c: d\n",
            "a: |\n  x\n# a comment after\nb: 1\n",
        ] {
            assert!(read_or_panic(text), "not read: {text:?}");
        }
    }

    #[test]
    fn streams_empty_documents_and_comments_are_read() {
        for text in [
            "",
            "\n",
            "# only a comment\n",
            "---\n",
            "---\n---\na: 1\n",
            "a: 1\n---\nb: 2\n---\n",
            "---\n# Source: x\na: 1\n",
            "a:\n- 1\n- 2\nb:\n  - c: 1\n    d:\n    - e\n",
            "\"quoted key\": 1\n\"k\\u00e9\": \"\\u003c\\/\\n\"\n",
            "a: \n  b: 1\n",
        ] {
            assert!(read_or_panic(text), "not read: {text:?}");
        }
    }

    #[test]
    fn anything_outside_the_subset_is_left_to_serde_saphyr() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: [1, [2]]\n",
            "a: {b: 1}\n",
            "a: {\"b\": {}}\n",
            "a: 'single'\n",
            "a: >\n  folded\n",
            "a: |2\n   x\n",
            "a: yes\n",
            "a: 012\n",
            "a: 1.5\n",
            "a: ~\n",
            "a: !!str 1\n",
            "a: 1\na: 2\n",
            "a: b\n  c\n",
            "a:\tb\n",
            "a: x # comment\n",
            "%YAML 1.2\n---\na: 1\n",
            "a: 1\r\n",
            "- - a\n",
            "a: \"\\ud83d\\ude00\"\n",
            "a: \"x\u{1}\"\n",
        ] {
            assert_eq!(read_documents(text), None, "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_left_to_serde_saphyr() {
        let mut text = String::new();
        for depth in 0..200 {
            text.push_str(&" ".repeat(depth));
            text.push_str("a:\n");
        }
        assert_eq!(read_documents(&text), None);
    }
}
