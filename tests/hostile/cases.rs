//! The hostile inputs of issue 11, as `kflex render` meets them: endless streams and devices,
//! inputs past the byte caps, alias bombs, deep nesting, floods of tiny nodes or documents,
//! hooks that expand without bound, templates that never end or grow without bound. Shared by
//! `tests/hostile.rs` (each is refused, stdout empty, with the message that says why) and
//! `benches/hostile.rs` (each ends within 2 seconds and 512 MiB, measured on the release binary).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How hard the cases push. A debug build parses about ten times slower than a release one,
/// so the test runs the cases whose work grows with the caps under smaller caps; the benchmark
/// runs every case at the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Smaller caps where the work grows with them (debug builds).
    Test,
    /// kflex's default caps everywhere (the release binary).
    Defaults,
}

/// One hostile run of `kflex`.
#[derive(Debug)]
pub struct Case {
    pub name: &'static str,
    pub args: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    /// Feed stdin without end.
    pub endless_stdin: bool,
    /// A FIFO to feed without end while the case runs.
    pub endless_fifo: Option<PathBuf>,
    /// What stderr must say.
    pub expect: Vec<String>,
}

impl Case {
    fn new(name: &'static str, args: &[&str]) -> Self {
        Self {
            name,
            args: args.iter().map(OsString::from).collect(),
            cwd: None,
            endless_stdin: false,
            endless_fifo: None,
            expect: Vec::new(),
        }
    }

    fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    fn expect(mut self, text: impl Into<String>) -> Self {
        self.expect.push(text.into());
        self
    }

    /// Runs the case with `binary`; stdout, stderr and whether it succeeded.
    pub fn run(&self, binary: &Path) -> (Vec<u8>, String, bool) {
        let mut command = Command::new(binary);
        command.args(&self.args).env_clear();
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command.stdin(if self.endless_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let output = std::thread::scope(|scope| {
            if let Some(fifo) = &self.endless_fifo {
                let fifo = fifo.clone();
                scope.spawn(move || {
                    if let Ok(mut writer) = std::fs::OpenOptions::new().write(true).open(&fifo) {
                        endless(&mut writer);
                    }
                });
            }
            let mut child = command.spawn().expect("kflex runs");
            if let Some(mut stdin) = child.stdin.take() {
                scope.spawn(move || endless(&mut stdin));
            }
            child.wait_with_output().expect("kflex runs")
        });
        (
            output.stdout,
            String::from_utf8_lossy(&output.stderr).into_owned(),
            output.status.success(),
        )
    }
}

/// Writes until the reader goes away.
fn endless(out: &mut dyn std::io::Write) {
    let chunk = [b'a'; 64 << 10];
    while out.write_all(&chunk).is_ok() {}
}

/// A file of `size` zero bytes that takes no disk (sparse).
fn sparse_file(path: &Path, size: u64) {
    std::fs::File::create(path)
        .and_then(|file| file.set_len(size))
        .expect("written");
}

fn write_file(path: &Path, text: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("created");
    }
    std::fs::write(path, text).expect("written");
}

const CONTROL_PLANE: &str =
    "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\n";
const HOOK: &str = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\n";

/// Every case, its files written under `dir` when `prepare` (once per directory: the benchmark
/// runs each case from a process of its own, which lists them again without writing).
pub fn cases(dir: &Path, scale: Scale, prepare: bool) -> Vec<Case> {
    let path = |name: &str| dir.join(name);
    let write = |path: &Path, text: &dyn Fn() -> Vec<u8>| {
        if prepare {
            write_file(path, text());
        }
    };
    let sparse = |path: &Path, size: u64| {
        if prepare {
            sparse_file(path, size);
        }
    };
    let big = (64 << 20) + 1;
    let mut cases = Vec::new();

    // Endless or oversized inputs stop at the byte cap, wherever they come from.
    for (input, values, device) in [
        ("/dev/zero as -f", "/dev/zero as --values", "/dev/zero"),
        (
            "/dev/urandom as -f",
            "/dev/urandom as --values",
            "/dev/urandom",
        ),
    ] {
        cases.push(
            Case::new(input, &["render", "-f", device])
                .expect("larger than 64 MiB, the most kflex reads of one input")
                .expect("--max-input-bytes"),
        );
        cases.push(
            Case::new(values, &["render", "cp1", "--values", device]).expect("larger than 64 MiB"),
        );
    }
    let mut stdin =
        Case::new("endless stdin", &["render", "-f", "-"]).expect("<stdin>: larger than 64 MiB");
    stdin.endless_stdin = true;
    cases.push(stdin);
    let fifo = path("fifo.yaml");
    if prepare {
        let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success(), "mkfifo");
    }
    let mut endless_fifo = Case::new("endless FIFO", &["render", "-f"])
        .arg(&fifo)
        .expect("larger than 64 MiB");
    endless_fifo.endless_fifo = Some(fifo);
    cases.push(endless_fifo);
    sparse(&path("large.yaml"), big);
    cases.push(
        Case::new("a file past the cap", &["render", "-f"])
            .arg(path("large.yaml"))
            .expect("large.yaml: larger than 64 MiB"),
    );
    if prepare {
        std::fs::create_dir_all(path("templates/k8s")).expect("created");
    }
    sparse(&path("templates/k8s/extra.yaml"), big);
    cases.push(
        Case::new("a template past the cap", &["render", "cp1", "--templates"])
            .arg(path("templates"))
            .expect("extra.yaml: larger than 64 MiB"),
    );
    for (name, file) in [
        ("an Argo CD input past the cap", "a.yaml"),
        ("an Argo CD kflex.yaml past the cap", "kflex.yaml"),
    ] {
        let source = path(&format!("source-{file}"));
        if prepare {
            std::fs::create_dir(&source).expect("created");
        }
        sparse(&source.join(file), big);
        let mut case =
            Case::new(name, &["render", "--argocd"]).expect(format!("{file}: larger than 64 MiB"));
        case.cwd = Some(source);
        cases.push(case);
    }

    // Within the byte cap, but too much for the parser.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let levels = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in levels.windows(2) {
        let items = vec![format!("*{}", pair[0]); 10].join(", ");
        bomb.push_str(&format!("{}: &{} [{items}]\n", pair[1], pair[1]));
    }
    write(&path("bomb.yaml"), &|| bomb.clone().into_bytes());
    cases.push(
        Case::new("alias bomb", &["render", "-f"])
            .arg(path("bomb.yaml"))
            .expect("bomb.yaml: too large to read: ")
            .expect("more than 2097152 nodes, the limit for an input of at most 64 MiB"),
    );
    write(&path("deep.yaml"), &|| "[".repeat(60 << 20).into_bytes());
    cases.push(
        Case::new("deep nesting", &["render", "-f"])
            .arg(path("deep.yaml"))
            .expect("nest more than 64 levels deep"),
    );
    // The work of these grows with the caps (see Scale).
    let (cap, cap_name, nodes) = match scale {
        Scale::Test => (4usize << 20, "4Mi", 250_000),
        Scale::Defaults => (64usize << 20, "64Mi", 2_097_152),
    };
    write(&path("tiny.yaml"), &|| {
        format!("[{}a]", "a,".repeat(cap / 2 - 2)).into_bytes()
    });
    cases.push(
        Case::new(
            "a flood of tiny nodes",
            &["render", "--max-input-bytes", cap_name, "-f"],
        )
        .arg(path("tiny.yaml"))
        .expect(format!(
            "more than {nodes} nodes, the limit for an input of at most {} MiB (raise it with \
                 --max-input-bytes)",
            cap >> 20
        )),
    );
    write(&path("documents.yaml"), &|| {
        "---\n".repeat(cap / 4).into_bytes()
    });
    cases.push(
        Case::new(
            "a flood of empty documents",
            &["render", "--max-input-bytes", cap_name, "-f"],
        )
        .arg(path("documents.yaml"))
        .expect(format!("more than {} documents", cap / 64)),
    );
    // Nested single-entry mappings: few bytes and nodes, much memory once parsed.
    let chain = format!("{}1{}", "{a: ".repeat(60), "}".repeat(60));
    write(&path("mappings.yaml"), &|| {
        format!("[{}]", vec![chain.as_str(); 16_000].join(", ")).into_bytes()
    });
    cases.push(
        Case::new(
            "nested mappings",
            &["render", "--max-total-input-bytes", "64Mi", "-f"],
        )
        .arg(path("mappings.yaml"))
        .expect(
            "parsed, the input would take more than 96 MiB of memory, what kflex allows its \
                 parsed inputs (raise it with --max-total-input-bytes)",
        ),
    );
    write(&path("long.yaml"), &|| vec![b'a'; 32 << 20]);
    cases.push(
        Case::new("one long scalar", &["render", "-f"])
            .arg(path("long.yaml"))
            .expect("a document must be a Kubernetes object"),
    );

    // A short hook that repeats a 1 MB variable 10,000 times: 10 GB if expanded.
    write(&path("expansion.yaml"), &|| {
        let var = "x".repeat(1 << 20);
        let data = "{{.Big}}".repeat(10_000);
        format!(
            "{HOOK}metadata: {{name: big}}\nspec:\n  defaultVars: [{{name: Big, value: {var}}}]\n  \
             templates:\n  - {{apiVersion: v1, kind: ConfigMap, metadata: {{name: c}}, data: {{k: \
             \"{data}\"}}}}\n---\n{CONTROL_PLANE}metadata: {{name: cp1}}\nspec: {{type: k8s, \
             postCreateHooks: [{{hookName: big}}]}}\n"
        )
        .into_bytes()
    });
    cases.push(
        Case::new("a hook that expands without bound", &["render", "-f"])
            .arg(path("expansion.yaml"))
            .expect("PostCreateHook \"big\"")
            .expect("at most 16777216 bytes of text (16 MiB)"),
    );
    // Templates that never end, or grow without bound.
    for (name, dir, template, expect) in [
        (
            "a template that never ends",
            "loops",
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
            "steps",
        ),
        (
            "a template that grows without bound",
            "growth",
            "{% for i in range(100000) %}{{ 'x' * 10000000 }}{% endfor %}",
            "bytes of text",
        ),
    ] {
        write(&path(&format!("{dir}/k8s/hostile.yaml")), &|| {
            template.as_bytes().to_vec()
        });
        cases.push(
            Case::new(name, &["render", "cp1", "--templates"])
                .arg(path(dir))
                .expect("k8s/hostile.yaml")
                .expect(expect),
        );
    }
    // Hook uses past the CRD's maxItems: refused before de-duplicating them.
    write(&path("uses.yaml"), &|| {
        let uses = vec!["{hookName: h}"; 60_000].join(", ");
        format!(
            "{HOOK}metadata: {{name: h}}\nspec: {{}}\n---\n{CONTROL_PLANE}metadata: {{name: \
             cp1}}\nspec: {{type: k8s, postCreateHooks: [{uses}]}}\n"
        )
        .into_bytes()
    });
    cases.push(
        Case::new("60,000 hook uses", &["render", "-f"])
            .arg(path("uses.yaml"))
            .expect("lists 60000 hooks; at most 100 are allowed"),
    );
    cases
}
