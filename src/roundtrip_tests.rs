//! Property tests of the whole path an input takes — read (`input`), render (`batch`), emit
//! (`output`) — with inputs an attacker would write: names, keys, values and variables holding
//! line breaks, document markers, terminal escapes, YAML 1.1 look-alikes and arbitrary Unicode.
//!
//! For every input kflex accepts, the stream it prints must parse back, with serde-saphyr and
//! with a YAML 1.1 reader (PyYAML, as kubectl's and Helm's readers behave), into exactly the
//! documents the renderer produced: nothing added, nothing lost, nothing retyped. Inputs kflex
//! refuses must produce an error and no output. PyYAML comes from the Python named by
//! `KFLEX_YAML11_PYTHON` (`.ci/run` points it at its virtualenv), else `python3`; without it the
//! YAML 1.1 half says it was skipped, unless the variable was set, when it fails.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use serde_json::{Map, Value, json};

use crate::batch;
use crate::input::{self, Inputs};
use crate::output::{self, Formatted, Target};
use kflex_core::manifest::{Manifest, to_yaml_stream};
use kflex_core::render::{HookCatalog, Renderer, TemplateSet};
use kflex_core::settings::Settings;

/// Strings chosen to break a line-oriented YAML stream or a YAML 1.1 reader.
const NASTY: [&str; 32] = [
    "\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: pwned\n",
    "x\r\n---\r\nkind: Secret",
    "\r",
    "\0",
    "\u{85}",
    "\u{2028}",
    "\u{2029}",
    "\u{feff}",
    "\u{1b}[2J\u{1b}]0;title\u{7}",
    "\u{202e}",
    "...",
    "---",
    "# comment",
    "- item",
    "key: value",
    "{a: b}",
    "[a, b]",
    "&anchor",
    "*alias",
    "!!binary aGk=",
    "<<",
    "yes",
    "No",
    "ON",
    "~",
    "null",
    "0x1F",
    "0o17",
    "012",
    "1_000",
    ".inf",
    "2001-12-14t21:59:43.10-05:00",
];

fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(NASTY.to_vec()).prop_map(str::to_owned),
        2 => any::<String>(),
        1 => "[a-z0-9:. _-]{0,12}",
    ]
}

/// A text value: plain, nasty, or a nasty one glued to a placeholder.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-zA-Z0-9 ]{0,8}",
        3 => nasty(),
        1 => nasty().prop_map(|s| format!("{s}{{{{.V}}}}{s}")),
        1 => Just("{{.ControlPlaneName}}".to_owned()),
    ]
}

/// A name: mostly valid (so rendering goes on), sometimes anything.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,10}[a-z0-9]",
        1 => nasty(),
    ]
}

fn string_map(max: usize) -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(
        prop_oneof![3 => "[a-zA-Z0-9._-]{1,8}", 1 => nasty()],
        value(),
        0..max,
    )
    .prop_map(|map| map.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
}

/// A ConfigMap template whose name, data keys and values, labels and annotations come from
/// the strategies above.
fn template() -> impl Strategy<Value = Value> {
    (name(), string_map(6), string_map(3), string_map(3), prop_oneof![3 => Just("ConfigMap".to_owned()), 1 => nasty()])
        .prop_map(|(name, data, labels, annotations, kind)| {
            json!({
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"name": format!("{name}"), "labels": labels, "annotations": annotations},
                "data": data,
            })
        })
}

fn hook() -> impl Strategy<Value = Value> {
    (name(), proptest::collection::vec(template(), 1..3), value()).prop_map(
        |(name, templates, default)| {
            json!({
                "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
                "kind": "PostCreateHook",
                "metadata": {"name": name},
                "spec": {"templates": templates, "defaultVars": [{"name": "V", "value": default}]},
            })
        },
    )
}

fn control_plane(hooks: Vec<String>) -> impl Strategy<Value = Value> {
    (
        name(),
        proptest::sample::select(vec!["k8s", "k3s", "vcluster", "host"]),
        string_map(4),
        value(),
    )
        .prop_map(move |(name, type_, global_vars, own)| {
            let uses: Vec<Value> = hooks
                .iter()
                .map(|hook| json!({"hookName": hook, "vars": {"V": own}}))
                .collect();
            json!({
                "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
                "kind": "ControlPlane",
                "metadata": {"name": name},
                "spec": {"type": type_, "globalVars": global_vars, "postCreateHooks": uses},
            })
        })
}

/// An input file: hooks and control planes using them, written as YAML or as JSON.
fn input_file() -> impl Strategy<Value = String> {
    proptest::collection::vec(hook(), 0..3)
        .prop_flat_map(|hooks| {
            let names: Vec<String> = hooks
                .iter()
                .filter_map(|h| h["metadata"]["name"].as_str().map(str::to_owned))
                .collect();
            (
                Just(hooks),
                proptest::collection::vec(control_plane(names), 1..3),
                any::<bool>(),
            )
        })
        .prop_map(|(hooks, control_planes, as_json)| {
            let documents: Vec<&Value> = hooks.iter().chain(&control_planes).collect();
            if as_json {
                documents
                    .iter()
                    .map(|d| serde_json::to_string(d).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            } else {
                documents
                    .iter()
                    .map(|d| serde_saphyr::to_string(d).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("---\n")
            }
        })
}

/// What `kflex render -f` prints for `text`, and the objects it rendered; `None` when it
/// refuses the input.
fn render(text: &str) -> Option<(String, Vec<Value>)> {
    let mut inputs = Inputs::default();
    let mut reader = crate::read::Reader::default();
    input::parse_file("input.yaml", text, &mut reader, &mut inputs).ok()?;
    let catalog = HookCatalog::new(inputs.hooks.into_iter().map(|h| h.value)).ok()?;
    let control_planes: Vec<_> = inputs.control_planes.into_iter().map(|c| c.value).collect();
    let renderer = Renderer::new(Settings::default(), &TemplateSet::embedded()).ok()?;
    let target = Target {
        json: false,
        dir: None,
    };
    let finished = batch::render_batch(
        &renderer,
        &control_planes,
        &catalog,
        batch::default_threads(),
        &[],
        |manifests: Vec<Manifest>| {
            let objects: Vec<Value> = manifests
                .iter()
                .map(|m| Value::Object(m.object().clone()))
                .collect();
            output::finish(manifests, &target)
                .map(|formatted| (formatted, objects))
                .map_err(|_| Refused)
        },
    )
    .ok()?;
    let mut stream = String::new();
    let mut objects = Vec::new();
    for set in finished {
        let (Formatted::Yaml(text), rendered) = set.output else {
            return None;
        };
        stream.push_str(&text);
        objects.extend(rendered);
    }
    Some((stream, objects))
}

/// A character that ends or corrupts a line for some reader: controls (CR, NUL, ESC, NEL, …),
/// the Unicode line and paragraph separators, and the byte-order mark.
fn breaks_a_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// kflex refused the input (rendering or emitting it).
#[derive(Debug)]
struct Refused;

impl From<kflex_core::render::RenderError> for Refused {
    fn from(_: kflex_core::render::RenderError) -> Self {
        Self
    }
}

/// Accepted streams, for the YAML 1.1 reader after the property test.
static ACCEPTED: Mutex<Vec<(String, Vec<Value>)>> = Mutex::new(Vec::new());

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn accepted_inputs_emit_exactly_the_rendered_documents(text in input_file()) {
        if let Some((stream, objects)) = render(&text) {
            let back: Vec<Value> = serde_saphyr::from_multiple(&stream)
                .map_err(|err| TestCaseError::fail(format!("{err}\n{stream}")))?;
            prop_assert_eq!(&back, &objects, "{}", stream);
            // Every control character and line break inside a value is escaped, so each
            // line is one line. (Bidirectional controls are printable to YAML and written as
            // they are: serde-saphyr has no way to escape them.)
            for line in stream.split('\n') {
                prop_assert!(!line.chars().any(breaks_a_line), "{:?}", line);
            }
            let mut accepted = ACCEPTED.lock().unwrap_or_else(|p| p.into_inner());
            if accepted.len() < 200 {
                accepted.push((stream, objects));
            }
        }
    }

    /// The emitter alone, on any tree of strings: what serde-saphyr writes, it reads back.
    #[test]
    fn any_string_tree_round_trips(data in string_map(12), nested in string_map(4)) {
        let mut data = data;
        data.insert("nested".to_owned(), Value::Object(nested));
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": data});
        let manifest = Manifest::new("test", object.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let stream = to_yaml_stream(&[manifest]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Vec<Value> = serde_saphyr::from_multiple(&stream)
            .map_err(|err| TestCaseError::fail(format!("{err}\n{stream}")))?;
        prop_assert_eq!(back, vec![object.clone()]);
        let mut accepted = ACCEPTED.lock().unwrap_or_else(|p| p.into_inner());
        if accepted.len() < 400 {
            accepted.push((stream, vec![object]));
        }
    }
}

/// Runs after the property tests have collected streams (test order is not guaranteed, so it
/// also renders a fixed set of nasty inputs of its own).
#[test]
fn a_yaml_1_1_reader_reads_the_same_documents() {
    let python = std::env::var("KFLEX_YAML11_PYTHON").ok();
    let required = python.is_some();
    let python = python.unwrap_or_else(|| "python3".to_owned());
    let available = Command::new(&python)
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            !required,
            "KFLEX_YAML11_PYTHON={python} cannot import yaml (PyYAML)"
        );
        eprintln!(
            "SKIPPED a_yaml_1_1_reader_reads_the_same_documents: no PyYAML in {python}; set KFLEX_YAML11_PYTHON (.ci/run does)"
        );
        return;
    }
    let mut cases: Vec<(String, Vec<Value>)> =
        ACCEPTED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Its own cases, so the check never depends on which test ran first.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (string_map(12), input_file());
    for _ in 0..150 {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let (data, text) = tree.current();
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": data});
        if let Ok(manifest) = Manifest::new("test", object.clone())
            && let Ok(stream) = to_yaml_stream(&[manifest])
        {
            cases.push((stream, vec![object]));
        }
        if let Some(rendered) = render(&text) {
            cases.push(rendered);
        }
    }
    eprintln!("comparing {} streams with PyYAML", cases.len());
    assert!(
        cases.len() > 100,
        "too few accepted inputs to compare: {}",
        cases.len()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files: Vec<PathBuf> = Vec::new();
    for (i, (stream, _)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("{i}.yaml"));
        std::fs::write(&path, stream).expect("write");
        files.push(path);
    }
    // safe_load_all is YAML 1.1 (PyYAML's resolver: yes/no/on/off, 012, 1_000, dates, <<).
    let script = "import json, sys, yaml\n\
                  out = []\n\
                  for path in sys.argv[1:]:\n\
                  \x20   with open(path, encoding='utf-8') as f:\n\
                  \x20       out.append(list(yaml.safe_load_all(f)))\n\
                  json.dump(out, sys.stdout)\n";
    let output = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "PyYAML failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Vec<Vec<Value>> = serde_json::from_slice(&output.stdout).expect("PyYAML's JSON");
    assert_eq!(read.len(), cases.len());
    for ((stream, expected), documents) in cases.iter().zip(read) {
        assert_eq!(
            &documents, expected,
            "PyYAML reads this stream differently:\n{stream}"
        );
    }
}
