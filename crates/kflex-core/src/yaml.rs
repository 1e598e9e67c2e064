//! Parsing YAML (and JSON) text that comes from outside kflex — ControlPlane files, settings
//! files, kubeconfigs, Secrets in an Argo CD source directory — with limits, and words for what
//! went wrong. Every parse of such text goes through here, so there is one place that decides
//! how much a document may hold and one that words parse errors.
//!
//! Limits follow from the byte caps ([`Limits`]), so that a hostile input within them (an alias
//! bomb, deep nesting, millions of tiny nodes or of nested mappings) is refused quickly and in
//! bounded memory, while a fleet file of a hundred thousand ControlPlanes is not. Before parsing,
//! one pass over the parser's events counts the nodes the text makes (with every alias's copy)
//! and estimates the memory they take as `serde_json` values; text past a limit is refused there,
//! before anything is built.
//!
//! Errors say line, column and reason ([`ParseError`]) and never quote the input: the text
//! around a syntax error, or a value of the wrong type, may be a kubeconfig's token or a
//! Secret's key, and error messages end up in CI logs and pod logs. serde-saphyr's messages
//! quote the input (its source snippets, `invalid type: integer 123`, unknown keys), so this
//! module does not show them but words each error itself.
//!
//! Pure: it reads nothing but the text it is given.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::granit_parser::{ErrorKind, Event, Parser};
use serde_saphyr::options::AliasLimits;
use serde_saphyr::{Budget, Error, ExternalMessageSource, Options};

/// What one parse may take: limits on the text's structure, derived from the byte cap of one
/// input, and on the memory its parsed form may take, which a caller that parses many inputs
/// shares out among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_bytes: usize,
    max_memory: usize,
}

/// Bytes of input per node allowed (a scalar, a list or a mapping). Hand-written YAML and the
/// JSON tools write take 5 to 10 bytes a node, a fleet file of minimal ControlPlanes 9; a flow
/// list of one-letter items takes 2. A release build parses about two million nodes a second,
/// so this keeps a full-size input within a second.
const BYTES_PER_NODE: usize = 32;
/// Bytes of input per document allowed: a minimal ControlPlane is about 100.
const BYTES_PER_DOCUMENT: usize = 64;
/// Bytes of input per alias or anchor allowed. Kubernetes manifests rarely use aliases.
const BYTES_PER_ALIAS: usize = 256;
/// The least any limit is, whatever the byte cap: serde-saphyr's defaults, which small inputs
/// never reach.
const MIN_NODES: usize = 250_000;
const MIN_DOCUMENTS: usize = 1_024;
const MIN_ALIASES: usize = 50_000;
/// How deeply lists and mappings may nest: serde-saphyr's default. Fixed, not derived from the
/// byte cap: it bounds the recursion of everything that walks a parsed object (in a debug build
/// parsing takes about 20 KiB of stack a level, and worker threads have 2 MiB). A
/// CustomResourceDefinition with an embedded pod template, inside a PostCreateHook, nests about
/// 40 levels deep.
pub const MAX_DEPTH: usize = 64;

/// The estimated memory of parsed values, in bytes (an upper bound for the 64-bit layout of
/// `serde_json::Value` with sorted maps). Every node takes its slot in its parent: a list's
/// buffer holds 32 bytes an item and grows by doubling, a map's B-tree node holds 56 bytes an
/// entry at two thirds full.
const NODE_MEMORY: usize = 64;
/// A mapping's first B-tree node: eleven 24-byte keys and 32-byte values.
const MAPPING_MEMORY: usize = 640;
/// A list's first buffer: four values.
const SEQUENCE_MEMORY: usize = 128;
/// A document's slot in the list of documents.
const DOCUMENT_MEMORY: usize = 32;

impl Default for Limits {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_BYTES, Self::DEFAULT_MAX_MEMORY)
    }
}

impl Limits {
    /// The default byte cap of one input: 64 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
    /// The default memory parsed input may take: 384 MiB, enough for a fleet file of a hundred
    /// thousand minimal ControlPlanes (about 290 MiB), while a hostile input stays within
    /// 512 MiB with its text.
    pub const DEFAULT_MAX_MEMORY: usize = 384 << 20;

    /// Limits for an input of at most `max_bytes` bytes whose parsed form may take at most
    /// `max_memory` bytes.
    pub const fn new(max_bytes: usize, max_memory: usize) -> Self {
        Self {
            max_bytes,
            max_memory,
        }
    }

    /// The byte cap.
    pub const fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Most memory the parsed input may take.
    pub const fn max_memory(&self) -> usize {
        self.max_memory
    }

    /// Most nodes (scalars, lists, mappings) one input may make, with the copies its aliases
    /// make.
    pub fn max_nodes(&self) -> usize {
        (self.max_bytes / BYTES_PER_NODE).max(MIN_NODES)
    }

    /// Most documents one input may hold.
    pub fn max_documents(&self) -> usize {
        (self.max_bytes / BYTES_PER_DOCUMENT).max(MIN_DOCUMENTS)
    }

    /// Most aliases, and most anchors, one input may hold.
    pub fn max_aliases(&self) -> usize {
        (self.max_bytes / BYTES_PER_ALIAS).max(MIN_ALIASES)
    }

    /// serde-saphyr's own budgets, a second line behind [`scan`] at the same limits.
    fn options(&self) -> Options {
        let nodes = self.max_nodes();
        let documents = self.max_documents();
        let aliases = self.max_aliases();
        let mut budget = Budget::default();
        budget.max_reader_input_bytes = Some(self.max_bytes);
        // Each node is at most two events (start and end), each document two more.
        budget.max_events = 2 * nodes + 2 * documents + 2;
        budget.max_nodes = nodes;
        budget.max_documents = documents;
        budget.max_depth = MAX_DEPTH;
        budget.flow_nesting_limit = MAX_DEPTH;
        budget.max_aliases = aliases;
        budget.max_anchors = aliases;
        budget.max_merge_keys = aliases;
        budget.max_recorded_anchor_events = nodes;
        budget.max_recorded_anchor_bytes = self.max_bytes;
        budget.max_total_scalar_bytes = self.max_bytes;
        budget.max_total_comment_bytes = self.max_bytes;
        let mut alias_limits = AliasLimits::default();
        alias_limits.max_total_replayed_events = nodes;
        let mut options = Options::default();
        options.budget = Some(budget);
        options.alias_limits = alias_limits;
        // Comments are not kept, and source snippets would quote the input in errors.
        options.emit_comments = false;
        options.with_snippet = false;
        options.crop_radius = 0;
        options
    }

    fn limit(&self, what: &'static str, limit: usize, line: usize, column: usize) -> ParseError {
        ParseError::at(
            line,
            column,
            Problem::Limit {
                what,
                limit,
                max_bytes: self.max_bytes,
            },
        )
    }
}

/// A parsed value and the memory it was estimated to take.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed<T> {
    pub value: T,
    /// Bytes, as [`Limits::max_memory`] counts them.
    pub memory: usize,
}

/// One document of `text` (an empty text is YAML's null).
pub fn from_str<T: DeserializeOwned>(text: &str, limits: Limits) -> Result<T, ParseError> {
    parse_one(text, limits).map(|parsed| parsed.value)
}

/// Every document of `text`, in order; empty documents are skipped.
pub fn from_multiple<T: DeserializeOwned>(
    text: &str,
    limits: Limits,
) -> Result<Vec<T>, ParseError> {
    parse_multiple(text, limits).map(|parsed| parsed.value)
}

/// Like [`from_str`], with the memory the value was estimated to take.
pub fn parse_one<T: DeserializeOwned>(text: &str, limits: Limits) -> Result<Parsed<T>, ParseError> {
    let memory = scan(text, limits)?;
    let value = serde_saphyr::from_str_with_options(text, limits.options())
        .map_err(|err| ParseError::from_saphyr(&err, limits))?;
    Ok(Parsed { value, memory })
}

/// Like [`from_multiple`], with the memory the values were estimated to take.
pub fn parse_multiple<T: DeserializeOwned>(
    text: &str,
    limits: Limits,
) -> Result<Parsed<Vec<T>>, ParseError> {
    let memory = scan(text, limits)?;
    let value = serde_saphyr::from_multiple_with_options(text, limits.options())
        .map_err(|err| ParseError::from_saphyr(&err, limits))?;
    Ok(Parsed { value, memory })
}

/// Checks `text` against `limits` without parsing it into values, and returns the memory its
/// values would take: for callers whose parse happens in another library (kube-rs parses
/// kubeconfigs with serde-saphyr's default budgets).
pub fn check(text: &str, limits: Limits) -> Result<usize, ParseError> {
    scan(text, limits)
}

/// What an anchored node adds wherever an alias repeats it.
#[derive(Clone, Copy, Debug, Default)]
struct Weight {
    nodes: usize,
    memory: usize,
}

/// Counts what `text` makes, aliases expanded, without building it; refuses it at the first
/// limit it passes. Returns the estimated memory. A syntax error ends the count: the parse
/// that follows reports it.
fn scan(text: &str, limits: Limits) -> Result<usize, ParseError> {
    if text.len() > limits.max_bytes {
        return Err(ParseError {
            line: None,
            column: None,
            problem: Problem::Limit {
                what: "bytes",
                limit: limits.max_bytes,
                max_bytes: limits.max_bytes,
            },
        });
    }
    let mut options = serde_saphyr::granit_parser::Options::default();
    options.emit_comments = false;
    let mut total = Weight::default();
    let mut documents = 0;
    let mut aliases = 0;
    let mut anchors: BTreeMap<usize, Weight> = BTreeMap::new();
    // For each open list or mapping: its anchor and the total when it began.
    let mut open: Vec<(usize, Weight)> = Vec::new();
    for event in Parser::new_from_str_with_options(text, options) {
        let Ok((event, span)) = event else { break };
        let (line, column) = (span.start.line(), span.start.col() + 1);
        let (anchor, weight) = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > limits.max_documents() {
                    return Err(limits.limit("documents", limits.max_documents(), line, column));
                }
                total.memory += DOCUMENT_MEMORY;
                continue;
            }
            Event::Scalar(value, _, anchor, _) => (
                anchor,
                Weight {
                    nodes: 1,
                    memory: NODE_MEMORY + value.len(),
                },
            ),
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                let container = if matches!(event, Event::MappingStart(..)) {
                    MAPPING_MEMORY
                } else {
                    SEQUENCE_MEMORY
                };
                open.push((anchor, total));
                if open.len() > MAX_DEPTH {
                    return Err(ParseError::at(
                        line,
                        column,
                        Problem::Depth { limit: MAX_DEPTH },
                    ));
                }
                (
                    0,
                    Weight {
                        nodes: 1,
                        memory: NODE_MEMORY + container,
                    },
                )
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start)) = open.pop()
                    && anchor != 0
                {
                    let weight = Weight {
                        nodes: total.nodes - start.nodes,
                        memory: total.memory - start.memory,
                    };
                    anchors.insert(anchor, weight);
                }
                continue;
            }
            Event::Alias(anchor) => {
                aliases += 1;
                if aliases > limits.max_aliases() {
                    return Err(limits.limit("aliases", limits.max_aliases(), line, column));
                }
                (0, anchors.get(&anchor).copied().unwrap_or_default())
            }
            _ => continue,
        };
        total.nodes = total.nodes.saturating_add(weight.nodes);
        total.memory = total.memory.saturating_add(weight.memory);
        if anchor != 0 {
            anchors.insert(anchor, weight);
        }
        if total.nodes > limits.max_nodes() {
            return Err(limits.limit("nodes", limits.max_nodes(), line, column));
        }
        if total.memory > limits.max_memory {
            return Err(ParseError::at(
                line,
                column,
                Problem::Memory {
                    limit: limits.max_memory,
                },
            ));
        }
    }
    Ok(total.memory)
}

/// Text that did not parse: where, and why in words that never quote the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// 1-based, when known.
    pub line: Option<u64>,
    /// 1-based, when known.
    pub column: Option<u64>,
    pub problem: Problem,
}

/// What is wrong with the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not YAML, or not the shape expected; the reason never quotes the text.
    Invalid(String),
    /// The text holds more of something than the limits derived from the byte cap of one
    /// input allow.
    Limit {
        /// What was counted: "nodes", "documents", "bytes", ...
        what: &'static str,
        limit: usize,
        /// The byte cap the limit was derived from.
        max_bytes: usize,
    },
    /// Parsed, the text would take more memory than its limits allow.
    Memory { limit: usize },
    /// Lists and mappings nest deeper than [`MAX_DEPTH`].
    Depth { limit: usize },
}

/// Which cap raises the limit an input passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// The byte cap of one input.
    PerInput,
    /// What all inputs together may take (the memory of parsed inputs is shared out from it).
    Total,
}

impl ParseError {
    fn at(line: usize, column: usize, problem: Problem) -> Self {
        Self {
            line: Some(line as u64),
            column: Some(column as u64),
            problem,
        }
    }

    /// Whether the text is refused for its size or shape rather than for being invalid.
    pub fn is_limit(&self) -> bool {
        !matches!(self.problem, Problem::Invalid(_))
    }

    /// The cap that, raised, would let the text through; `None` if none would.
    pub fn cap(&self) -> Option<Cap> {
        match self.problem {
            Problem::Limit { .. } => Some(Cap::PerInput),
            Problem::Memory { .. } => Some(Cap::Total),
            Problem::Invalid(_) | Problem::Depth { .. } => None,
        }
    }

    /// The words of `err`, without any of the text it came from. For callers that get a
    /// serde-saphyr error from another library (kube-rs parses kubeconfigs with it); `limits`
    /// are those the text was parsed with.
    pub fn from_saphyr(err: &Error, limits: Limits) -> Self {
        let location = err.location();
        Self {
            line: location.map(|l| l.line()).filter(|line| *line > 0),
            column: location.map(|l| l.column()).filter(|column| *column > 0),
            problem: problem(err, limits),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(f, "line {line}: ")?,
            _ => {}
        }
        match &self.problem {
            Problem::Invalid(reason) => f.write_str(reason),
            Problem::Limit {
                what,
                limit,
                max_bytes,
            } => write!(
                f,
                "more than {limit} {what}, the limit for an input of at most {}",
                human_bytes(*max_bytes)
            ),
            Problem::Memory { limit } => write!(
                f,
                "parsed, the input would take more than {} of memory, what kflex allows its \
                 parsed inputs",
                human_bytes(*limit)
            ),
            Problem::Depth { limit } => {
                write!(f, "lists and mappings nest more than {limit} levels deep")
            }
        }
    }
}

/// `64 MiB`, or the bytes when not a whole number of KiB, MiB or GiB.
pub fn human_bytes(bytes: usize) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

fn problem(err: &Error, limits: Limits) -> Problem {
    let invalid = |reason: &str| Problem::Invalid(reason.to_owned());
    let limit = |what: &'static str, limit: usize| Problem::Limit {
        what,
        limit,
        max_bytes: limits.max_bytes,
    };
    match err {
        Error::WithSnippet { error, .. } | Error::AliasError { error, .. } => {
            problem(error, limits)
        }
        Error::Budget { breach, .. } => match breach {
            BudgetBreach::Events { .. } => limit("parser events", 2 * limits.max_nodes()),
            BudgetBreach::Nodes { .. } => limit("nodes", limits.max_nodes()),
            BudgetBreach::Documents { .. } => limit("documents", limits.max_documents()),
            BudgetBreach::Depth { .. } => Problem::Depth { limit: MAX_DEPTH },
            BudgetBreach::Aliases { .. } | BudgetBreach::AliasAnchorRatio { .. } => {
                limit("aliases", limits.max_aliases())
            }
            BudgetBreach::Anchors { .. } => limit("anchors", limits.max_aliases()),
            BudgetBreach::MergeKeys { .. } => limit("merge keys", limits.max_aliases()),
            BudgetBreach::RecordedAnchorEvents { .. } => {
                limit("nodes copied by anchors and aliases", limits.max_nodes())
            }
            BudgetBreach::SequenceUnbalanced => invalid("a list or mapping ends that never began"),
            _ => limit("bytes", limits.max_bytes),
        },
        Error::AliasReplayLimitExceeded { .. } | Error::AliasExpansionLimitExceeded { .. } => {
            limit("nodes copied by anchors and aliases", limits.max_nodes())
        }
        Error::AliasReplayStackDepthExceeded { .. } => Problem::Depth { limit: MAX_DEPTH },
        Error::ExternalMessage { source, .. } => match source.as_ref() {
            ExternalMessageSource::Parser(scan) => match scan.kind() {
                ErrorKind::RecursionLimitExceeded => Problem::Depth { limit: MAX_DEPTH },
                ErrorKind::InputByteLimitExceeded { .. } => limit("bytes", limits.max_bytes),
                // Words an adapter chose, which might quote the input.
                ErrorKind::Custom(_)
                | ErrorKind::InputDecoding { .. }
                | ErrorKind::InputIo { .. } => invalid("not valid YAML"),
                // The scanner's own fixed words (an unexpected character is named alone).
                kind => Problem::Invalid(kind.to_string()),
            },
            _ => invalid("not valid YAML"),
        },
        Error::Eof { .. } => invalid("unexpected end of input"),
        Error::InvalidUtf8Input => invalid("not UTF-8 text"),
        Error::Unexpected { expected, .. } => Problem::Invalid(format!("expected {expected}")),
        Error::UnknownAnchor { .. } => {
            invalid("an alias refers to an anchor not defined before it")
        }
        Error::DuplicateMappingKey { .. } => invalid("a mapping has the same key twice"),
        Error::MergeValueNotMapOrSeqOfMaps { .. } => {
            invalid("the value of a merge key (<<) must be a mapping or a list of mappings")
        }
        Error::MultipleDocuments { .. } => invalid("more than one document where one is expected"),
        Error::IndentationError { .. } | Error::FoldedBlockScalarMustIndentContent { .. } => {
            invalid("wrong indentation")
        }
        Error::UnsupportedTag { .. } => invalid("a tag that is not supported"),
        Error::NonFiniteFloat { .. } => invalid("a number that is not finite"),
        Error::NullIntoString { .. } => invalid("null where a string is expected"),
        Error::InvalidScalar { ty, .. } => Problem::Invalid(format!("not a valid {ty}")),
        Error::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => Problem::Invalid(format!(
            "invalid type: {}, expected {expected}",
            value_kind(unexpected)
        )),
        Error::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => Problem::Invalid(format!(
            "invalid value: {}, expected {expected}",
            value_kind(unexpected)
        )),
        Error::SerdeInvalidLength { len, expected, .. } => {
            Problem::Invalid(format!("{len} items, expected {expected}"))
        }
        Error::SerdeUnknownVariant { expected, .. } => Problem::Invalid(format!(
            "unknown variant, expected one of {}",
            expected.join(", ")
        )),
        Error::SerdeUnknownField { expected, .. } if expected.is_empty() => {
            invalid("unknown field")
        }
        Error::SerdeUnknownField { expected, .. } => Problem::Invalid(format!(
            "unknown field, expected one of {}",
            expected.join(", ")
        )),
        Error::SerdeMissingField { field, .. } => {
            Problem::Invalid(format!("missing field {field}"))
        }
        // Free-form words (a type's own deserializer) may quote the value.
        _ => invalid("not valid YAML, or not the expected value"),
    }
}

/// What serde's "unexpected" names, without the value: `integer` of "integer `123`", `string`
/// of `string "abc"`.
fn value_kind(unexpected: &str) -> &str {
    const KINDS: [&str; 16] = [
        "boolean",
        "integer",
        "floating point",
        "character",
        "string",
        "byte array",
        "unit value",
        "Option value",
        "newtype struct",
        "sequence",
        "map",
        "enum",
        "unit variant",
        "newtype variant",
        "tuple variant",
        "struct variant",
    ];
    KINDS
        .into_iter()
        .find(|kind| unexpected.starts_with(kind))
        .unwrap_or("a value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const MARKER: &str = "SECRET-TOKEN-123";

    fn parse(text: &str) -> Result<Value, ParseError> {
        from_str(text, Limits::default())
    }

    #[test]
    fn syntax_errors_give_line_column_and_reason_but_not_the_text() {
        let text = format!(
            "users:\n- name: a\n  user:\n    token: {MARKER}\n    key: [unclosed\nother: {MARKER}\n"
        );
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, Some(6), "{err}");
        let message = err.to_string();
        assert!(message.starts_with("line 6, column "), "{message}");
        assert!(!message.contains(MARKER), "{message}");
        assert!(!format!("{err:?}").contains(MARKER));
    }

    #[test]
    fn type_errors_name_the_kind_of_value_not_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "only the error matters")]
        struct User {
            token: String,
        }
        let err = from_str::<User>("token: [12345678]\n", Limits::default()).unwrap_err();
        assert_eq!(err.to_string(), "line 1, column 8: expected string scalar");
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "only the error matters")]
        struct Port {
            port: u16,
        }
        let err = from_str::<Port>("port: \"99999-secret\"\n", Limits::default()).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code, reason = "only the error matters")]
        struct Strict {
            a: Option<u8>,
        }
        let err = from_str::<Strict>(&format!("{MARKER}: 1\n"), Limits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, column 1: unknown field, expected one of a"
        );
        let err = parse(&format!("{MARKER}: 1\n{MARKER}: 2\n")).unwrap_err();
        assert!(!err.to_string().contains(MARKER), "{err}");
    }

    #[test]
    fn value_kinds() {
        assert_eq!(value_kind("integer `123`"), "integer");
        assert_eq!(value_kind("string \"abc\""), "string");
        assert_eq!(value_kind("floating point `1.5`"), "floating point");
        assert_eq!(value_kind("something custom: abc"), "a value");
    }

    fn capped(max_bytes: usize) -> Limits {
        Limits::new(max_bytes, Limits::DEFAULT_MAX_MEMORY)
    }

    #[test]
    fn limits_scale_with_the_byte_cap() {
        let small = capped(64 << 10);
        assert_eq!(small.max_nodes(), MIN_NODES);
        assert_eq!(small.max_documents(), MIN_DOCUMENTS);
        let default = Limits::default();
        assert_eq!(default.max_nodes(), 2 << 20);
        assert_eq!(default.max_documents(), 1 << 20);
        assert_eq!(capped(128 << 20).max_nodes(), 4 << 20);
    }

    #[test]
    fn memory_is_estimated_from_above_and_limited() {
        let one: Parsed<Value> = parse_one("{a: [1, 2]}", Limits::default()).unwrap();
        // A mapping, a list and three scalars.
        assert_eq!(
            one.memory,
            DOCUMENT_MEMORY + 5 * NODE_MEMORY + MAPPING_MEMORY + SEQUENCE_MEMORY + 3
        );
        // Aliases count as the copies they make.
        let aliased: Parsed<Value> =
            parse_one("{a: &x [1, 2], b: *x, c: *x}", Limits::default()).unwrap();
        assert_eq!(
            aliased.memory,
            DOCUMENT_MEMORY
                + 3 * (NODE_MEMORY + 1)
                + 3 * (NODE_MEMORY + SEQUENCE_MEMORY + 2 * NODE_MEMORY + 2)
                + MAPPING_MEMORY
                + NODE_MEMORY
        );
        let err = parse_one::<Value>("{a: [1, 2]}", Limits::new(1 << 20, 1000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1, column 6: parsed, the input would take more than 1000 bytes of memory, what kflex allows its parsed inputs"
        );
        assert_eq!(err.cap(), Some(Cap::Total));
    }

    #[test]
    fn more_than_a_thousand_documents_are_fine() {
        let text = "---\na: 1\n".repeat(5_000);
        let documents: Vec<Value> = from_multiple(&text, Limits::default()).unwrap();
        assert_eq!(documents.len(), 5_000);
    }

    #[test]
    fn a_limit_names_itself_and_the_byte_cap() {
        let text = "---\na: 1\n".repeat(2_000);
        let err = from_multiple::<Value>(&text, capped(1 << 10)).unwrap_err();
        assert_eq!(err.cap(), Some(Cap::PerInput));
        assert_eq!(
            err.to_string(),
            "more than 1024 bytes, the limit for an input of at most 1 KiB"
        );
        let err = from_multiple::<Value>(&text, capped(64 << 10)).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("more than 1024 documents, the limit for an input of at most 64 KiB"),
            "{err}"
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, previous) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            text.push_str(&format!(
                "{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"
            ));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.is_limit(), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse(&text).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("lists and mappings nest more than 64 levels deep"),
            "{err}"
        );
        let ok = format!("{}{}", "[".repeat(60), "]".repeat(60));
        parse(&ok).unwrap();
        let block: String = (0..100)
            .map(|depth| format!("{}k:\n", "  ".repeat(depth)))
            .collect();
        assert!(parse(&block).unwrap_err().is_limit());
    }

    #[test]
    fn human_bytes_are_exact() {
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1536), "1536 bytes");
        assert_eq!(human_bytes(3 << 10), "3 KiB");
    }
}
