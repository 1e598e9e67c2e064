//! The API server's side of kflex's rules, evaluated with a CEL interpreter: the CRDs'
//! validation rules and the controller's admission policy. One test binary, as each links all
//! of kflex.

mod admission_policy;
mod crd_rules;

/// The Python that has cel-python (and PyYAML): `KFLEX_CEL_PYTHON` (`.ci/run` installs it in
/// its virtualenv), else `python3`. Without it, `test` says it was skipped and gets `None` —
/// unless the variable was set, when it fails.
fn cel_python(test: &str) -> Option<String> {
    let configured = std::env::var("KFLEX_CEL_PYTHON").ok();
    let python = configured.clone().unwrap_or_else(|| "python3".to_owned());
    let available = std::process::Command::new(&python)
        .args(["-c", "import celpy, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if available {
        return Some(python);
    }
    assert!(
        configured.is_none(),
        "KFLEX_CEL_PYTHON={python} cannot import celpy (cel-python) and yaml"
    );
    eprintln!("SKIPPED {test}: no cel-python in {python}; set KFLEX_CEL_PYTHON (.ci/run does)");
    None
}
