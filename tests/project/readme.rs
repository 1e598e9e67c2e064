//! The README documents every setting key and the commands it promises.

#[test]
fn every_setting_is_documented() {
    let readme = include_str!("../../README.md");
    for (key, _) in kflex_core::settings::known_keys() {
        let documented = if let Some(rest) = key.strip_prefix("images.") {
            let (image, field) = rest.split_once('.').expect("images.<image>.<field>");
            readme.contains(&format!("`images.<image>.{field}`"))
                && readme.contains(&format!("`{image}`"))
        } else {
            readme.contains(&format!("| `{key}` |"))
        };
        assert!(documented, "README.md does not document setting {key}");
    }
}

#[test]
fn the_main_job_and_the_test_command_are_shown() {
    let readme = include_str!("../../README.md");
    assert!(readme.contains("cargo run --release -- render cp1"));
    assert!(readme.contains("\n.ci/run\n"));
}
