//! KubeFlex's hook placeholders: the subset of Go `text/template` that PostCreateHooks use.
//!
//! Supported actions: `{{.Var}}` (any spacing, with `{{-`/`-}}` trim markers), `{{"literal"}}`
//! (so `{{"{{"}}` writes braces), `{{/* comment */}}`, and two conversions that make a whole
//! value typed on purpose: `"{{.Replicas | int}}"` → `3`, `"{{.Enabled | bool}}"` → `true`.
//! Anything else is an error rather than a silent `<no value>`.
//!
//! Expansion works on one string at a time — a value already parsed out of YAML — so a variable
//! can never add keys or documents, whatever it contains.

use serde_json::Value;

/// A string after expansion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expanded {
    /// The text with every placeholder replaced.
    Text(String),
    /// The whole string was one converting placeholder.
    Typed(Value),
}

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlaceholderError {
    Undefined {
        name: String,
    },
    Syntax {
        action: String,
        reason: String,
    },
    Conversion {
        name: String,
        value: String,
        to: &'static str,
    },
    ConversionInText {
        action: String,
    },
    /// The text would be longer than the bytes left in the expansion budget.
    TooLarge {
        needed: usize,
        left: usize,
    },
}

impl std::fmt::Display for PlaceholderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Undefined { name } => write!(f, "undefined variable {name:?}"),
            Self::Syntax { action, reason } => write!(f, "{reason} in {action:?}"),
            Self::Conversion { name, value, to } => {
                write!(f, "variable {name:?} is {value:?}, which is not {to}")
            }
            Self::ConversionInText { action } => write!(
                f,
                "{action:?} converts the whole value, so it must be the only text in the string"
            ),
            Self::TooLarge { needed, left } => write!(
                f,
                "expands to {needed} bytes, but only {left} of the budget are left"
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    Int,
    Bool,
}

#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Literal(String),
    Var {
        name: &'a str,
        conversion: Option<Conversion>,
        action: &'a str,
    },
}

/// Whether `text` contains anything to expand (cheap pre-check).
pub(crate) fn has_placeholders(text: &str) -> bool {
    text.contains("{{")
}

/// Expands `text` with `lookup`, refusing (before building it) a text longer than `left`
/// bytes: a short template that repeats a long variable must not grow without bound.
pub(crate) fn expand<'v>(
    text: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
    left: usize,
) -> Result<Expanded, PlaceholderError> {
    let pieces = parse(text)?;
    let mut needed = 0usize;
    for piece in &pieces {
        needed = needed.saturating_add(match piece {
            Piece::Text(text) => text.len(),
            Piece::Literal(text) => text.len(),
            Piece::Var { name, .. } => lookup(name).map_or(0, str::len),
        });
    }
    if needed > left {
        return Err(PlaceholderError::TooLarge { needed, left });
    }
    if let [
        Piece::Var {
            name,
            conversion: Some(conversion),
            ..
        },
    ] = pieces.as_slice()
    {
        let value = lookup(name).ok_or_else(|| PlaceholderError::Undefined {
            name: (*name).to_owned(),
        })?;
        return convert(name, value, *conversion).map(Expanded::Typed);
    }
    let mut out = String::with_capacity(text.len());
    for piece in &pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Literal(text) => out.push_str(text),
            Piece::Var {
                conversion: Some(_),
                action,
                ..
            } => {
                return Err(PlaceholderError::ConversionInText {
                    action: (*action).to_owned(),
                });
            }
            Piece::Var {
                name,
                conversion: None,
                ..
            } => {
                let value = lookup(name).ok_or_else(|| PlaceholderError::Undefined {
                    name: (*name).to_owned(),
                })?;
                out.push_str(value);
            }
        }
    }
    Ok(Expanded::Text(out))
}

fn convert(name: &str, value: &str, conversion: Conversion) -> Result<Value, PlaceholderError> {
    let fail = |to| PlaceholderError::Conversion {
        name: name.to_owned(),
        value: value.to_owned(),
        to,
    };
    match conversion {
        Conversion::Int => value
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| fail("an integer")),
        Conversion::Bool => match value.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(fail("true or false")),
        },
    }
}

fn parse(text: &str) -> Result<Vec<Piece<'_>>, PlaceholderError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut trim_next_left = false;
    while let Some(open) = rest.find("{{") {
        let mut before = &rest[..open];
        if trim_next_left {
            before = before.trim_start();
        }
        let after_open = &rest[open + 2..];
        let close = after_open
            .find("}}")
            .ok_or_else(|| PlaceholderError::Syntax {
                action: rest[open..].chars().take(40).collect(),
                reason: "unclosed \"{{\"".to_owned(),
            })?;
        let action = &rest[open..open + 2 + close + 2];
        let mut body = &after_open[..close];
        if let Some(stripped) = body
            .strip_prefix('-')
            .filter(|b| b.starts_with(char::is_whitespace))
        {
            before = before.trim_end();
            body = stripped;
        }
        trim_next_left = false;
        if let Some(stripped) = body
            .strip_suffix('-')
            .filter(|b| b.ends_with(char::is_whitespace))
        {
            trim_next_left = true;
            body = stripped;
        }
        if !before.is_empty() {
            pieces.push(Piece::Text(before));
        }
        if let Some(piece) = parse_action(body.trim(), action)? {
            pieces.push(piece);
        }
        rest = &after_open[close + 2..];
    }
    let tail = if trim_next_left {
        rest.trim_start()
    } else {
        rest
    };
    if !tail.is_empty() {
        pieces.push(Piece::Text(tail));
    }
    Ok(pieces)
}

fn parse_action<'a>(body: &'a str, action: &'a str) -> Result<Option<Piece<'a>>, PlaceholderError> {
    let syntax = |reason: &str| PlaceholderError::Syntax {
        action: action.to_owned(),
        reason: reason.to_owned(),
    };
    if body.starts_with("/*") && body.ends_with("*/") && body.len() >= 4 {
        return Ok(None);
    }
    if let Some(quoted) = body.strip_prefix('"') {
        return unquote(quoted)
            .map(|text| Some(Piece::Literal(text)))
            .ok_or_else(|| syntax("malformed string literal"));
    }
    if let Some(raw) = body.strip_prefix('`') {
        return raw
            .strip_suffix('`')
            .filter(|inner| !inner.contains('`'))
            .map(|inner| Some(Piece::Literal(inner.to_owned())))
            .ok_or_else(|| syntax("malformed raw string literal"));
    }
    let Some(reference) = body.strip_prefix('.') else {
        return Err(syntax(
            "unsupported template action (kflex supports {{.Var}}, {{.Var | int}}, {{.Var | bool}} and {{\"text\"}})",
        ));
    };
    let (name, pipeline) = match reference.split_once('|') {
        Some((name, pipeline)) => (name.trim(), Some(pipeline.trim())),
        None => (reference.trim(), None),
    };
    let identifier = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        return Err(syntax(
            "a variable reference is a dot followed by a name, like .Namespace",
        ));
    }
    let conversion = match pipeline {
        None => None,
        Some("int") => Some(Conversion::Int),
        Some("bool") => Some(Conversion::Bool),
        Some(_) => return Err(syntax("the only conversions are | int and | bool")),
    };
    Ok(Some(Piece::Var {
        name,
        conversion,
        action,
    }))
}

/// The content of a Go interpreted string literal whose opening quote is already removed.
fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => out.push(match chars.next()? {
                'n' => '\n',
                't' => '\t',
                '\\' => '\\',
                '"' => '"',
                _ => return None,
            }),
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(name: &str) -> Option<&'static str> {
        match name {
            "Namespace" => Some("cp1-system"),
            "Replicas" => Some("3"),
            "On" => Some("true"),
            "Evil" => Some("x\"\n---\nkind: Secret\n{{.Namespace}}"),
            _ => None,
        }
    }

    fn text(s: &str) -> String {
        match expand(s, vars, usize::MAX).unwrap() {
            Expanded::Text(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kubeflex_spellings_all_work() {
        for s in [
            "{{.Namespace}}",
            "{{ .Namespace }}",
            "{{  .Namespace}}",
            "{{- .Namespace -}}",
        ] {
            assert_eq!(text(s), "cp1-system", "{s}");
        }
        assert_eq!(text("ns={{.Namespace}}/x"), "ns=cp1-system/x");
        assert_eq!(text("no placeholders"), "no placeholders");
    }

    #[test]
    fn trim_markers_trim_adjacent_whitespace() {
        assert_eq!(text("a  {{- .Namespace }}  b"), "acp1-system  b");
        assert_eq!(text("a  {{ .Namespace -}}  b"), "a  cp1-systemb");
        // `{{-3}}` without a space is not a trim marker (Go reads it as a number).
        assert!(expand("{{-3}}", vars, usize::MAX).is_err());
    }

    #[test]
    fn values_are_inserted_verbatim_and_never_re_expanded() {
        assert_eq!(text("{{.Evil}}"), "x\"\n---\nkind: Secret\n{{.Namespace}}");
    }

    #[test]
    fn literals_and_comments() {
        assert_eq!(text(r#"{{"{{"}}.Namespace}}"#), "{{.Namespace}}");
        assert_eq!(text("{{`raw`}}"), "raw");
        assert_eq!(text("a{{/* note */}}b"), "ab");
    }

    #[test]
    fn undefined_variables_are_errors() {
        assert_eq!(
            expand("x-{{.Nope}}", vars, usize::MAX).unwrap_err(),
            PlaceholderError::Undefined {
                name: "Nope".into()
            }
        );
    }

    #[test]
    fn conversions_type_the_whole_value() {
        assert_eq!(
            expand("{{.Replicas | int}}", vars, usize::MAX).unwrap(),
            Expanded::Typed(json!(3))
        );
        assert_eq!(
            expand("{{ .On|bool }}", vars, usize::MAX).unwrap(),
            Expanded::Typed(json!(true))
        );
        assert!(matches!(
            expand("{{.Namespace | int}}", vars, usize::MAX).unwrap_err(),
            PlaceholderError::Conversion {
                to: "an integer",
                ..
            }
        ));
        assert!(matches!(
            expand("n={{.Replicas | int}}", vars, usize::MAX).unwrap_err(),
            PlaceholderError::ConversionInText { .. }
        ));
    }

    #[test]
    fn the_budget_is_checked_before_the_text_is_built() {
        // 10,000 uses of an 11-byte value: refused without allocating 110 kB.
        let many = "{{.Namespace}}".repeat(10_000);
        assert_eq!(
            expand(&many, vars, 1_000).unwrap_err(),
            PlaceholderError::TooLarge {
                needed: 100_000,
                left: 1_000
            }
        );
        assert_eq!(
            expand("{{.Namespace}}", vars, 10).unwrap(),
            Expanded::Text("cp1-system".into())
        );
    }

    #[test]
    fn other_go_template_actions_are_refused_clearly() {
        for s in [
            "{{if .On}}x{{end}}",
            "{{.}}",
            "{{.A.B}}",
            "{{ .X | upper }}",
            "{{ .Namespace",
            "{{printf \"%s\" .X}}",
        ] {
            let err = expand(s, vars, usize::MAX).unwrap_err();
            assert!(
                matches!(err, PlaceholderError::Syntax { .. }),
                "{s}: {err:?}"
            );
        }
    }
}
