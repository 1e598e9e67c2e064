//! The shapes of names Kubernetes accepts, checked as the API server checks them, so that kflex
//! refuses offline what the cluster (or a file system, or a YAML stream) would otherwise receive:
//! DNS-1123 subdomains and labels, DNS-1035 labels, path-segment names, kinds, API versions and
//! Secret keys. Each check returns why a value is refused, in words a user can act on; the
//! caller adds which object and field.

/// The longest DNS-1123 subdomain (most object names).
pub const MAX_SUBDOMAIN_LEN: usize = 253;
/// The longest DNS label (namespaces, Services, versions).
pub const MAX_LABEL_LEN: usize = 63;

/// Why `value` is not a DNS-1123 subdomain (lower-case alphanumerics, `-` and `.`, starting and
/// ending with an alphanumeric, at most 253 characters): most object names, API groups.
pub fn dns1123_subdomain(value: &str) -> Option<String> {
    if let Some(problem) = common(value, MAX_SUBDOMAIN_LEN) {
        return Some(problem);
    }
    let bad = bad_chars(value, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
    });
    if !bad.is_empty() {
        return Some(format!(
            "must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.'); found {bad}"
        ));
    }
    for part in value.split('.') {
        if part.is_empty() {
            return Some("must not have an empty part between dots".to_owned());
        }
        if !starts_and_ends_alphanumeric(part) {
            return Some(format!(
                "each dot-separated part must start and end with a letter or digit; {part:?} does \
                 not"
            ));
        }
    }
    None
}

/// Why `value` is not a DNS-1123 label (lower-case alphanumerics and `-`, starting and ending
/// with an alphanumeric, at most 63 characters): namespaces.
pub fn dns1123_label(value: &str) -> Option<String> {
    label(value, false)
}

/// Why `value` is not a DNS-1035 label (a DNS-1123 label that starts with a letter): Services.
pub fn dns1035_label(value: &str) -> Option<String> {
    label(value, true)
}

/// Why `value` cannot be a path segment, the one rule every object name follows (RBAC objects
/// may use `:`): not `.` or `..`, no `/` or `%`; kflex also refuses anything unsafe to print.
pub fn path_segment_name(value: &str) -> Option<String> {
    if let Some(problem) = common(value, MAX_SUBDOMAIN_LEN) {
        return Some(problem);
    }
    if value == "." || value == ".." {
        return Some(format!("must not be {value:?}"));
    }
    let bad = bad_chars(value, |c| c.is_ascii_graphic() && c != '/' && c != '%');
    if !bad.is_empty() {
        return Some(format!(
            "may hold printable ASCII characters except '/' and '%' only; found {bad}"
        ));
    }
    None
}

/// Why `value` is not a kind: an ASCII identifier of letters and digits starting with an
/// upper-case letter (`ConfigMap`), at most 63 characters. Kinds name files and appear in
/// messages, so nothing else is accepted.
pub fn kind(value: &str) -> Option<String> {
    if let Some(problem) = common(value, MAX_LABEL_LEN) {
        return Some(problem);
    }
    let bad = bad_chars(value, |c| c.is_ascii_alphanumeric());
    if !bad.is_empty() {
        return Some(format!(
            "must be letters and digits only, like ConfigMap; found {bad}"
        ));
    }
    if !value.starts_with(|c: char| c.is_ascii_uppercase()) {
        return Some("must start with an upper-case letter, like ConfigMap".to_owned());
    }
    None
}

/// Why `value` is not an apiVersion: `version` (the core group) or `group/version`, the group a
/// DNS-1123 subdomain and the version a DNS-1035 label (`v1`, `v1beta1`).
pub fn api_version(value: &str) -> Option<String> {
    let (group, version) = value.rsplit_once('/').unwrap_or(("", value));
    if value.contains('/')
        && let Some(problem) = dns1123_subdomain(group)
    {
        return Some(format!("group {}: {problem}", quoted(group)));
    }
    dns1035_label(version).map(|problem| format!("version {}: {problem}", quoted(version)))
}

/// Why `value` is not a Secret or ConfigMap data key: letters, digits, `-`, `_` and `.`, not
/// `.` and not starting with `..`, at most 253 characters.
pub fn data_key(value: &str) -> Option<String> {
    if let Some(problem) = common(value, MAX_SUBDOMAIN_LEN) {
        return Some(problem);
    }
    if value == "." || value.starts_with("..") {
        return Some("must not be \".\" or start with \"..\"".to_owned());
    }
    let bad = bad_chars(value, |c| {
        c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
    });
    if !bad.is_empty() {
        return Some(format!(
            "may hold letters, digits, '-', '_' and '.' only; found {bad}"
        ));
    }
    None
}

/// `value` as a message quotes it: Rust's debug form escapes every control character.
pub fn quoted(value: &str) -> String {
    format!("{value:?}")
}

fn label(value: &str, letter_first: bool) -> Option<String> {
    if let Some(problem) = common(value, MAX_LABEL_LEN) {
        return Some(problem);
    }
    let bad = bad_chars(value, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    });
    if !bad.is_empty() {
        let which = if letter_first { "1035" } else { "1123" };
        return Some(format!(
            "must be a DNS-{which} label (lower-case letters, digits and '-'); found {bad}"
        ));
    }
    if letter_first && !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some("must start with a lower-case letter".to_owned());
    }
    if !starts_and_ends_alphanumeric(value) {
        return Some("must start and end with a letter or digit".to_owned());
    }
    None
}

/// Emptiness and length, counted in characters (bytes would misreport non-ASCII).
fn common(value: &str, max: usize) -> Option<String> {
    if value.is_empty() {
        return Some("must not be empty".to_owned());
    }
    // Bytes bound characters from above: a cheap check first, so a huge value is not counted.
    if value.len() > max {
        let length = value.chars().count();
        if length > max {
            return Some(format!(
                "is {length} characters long; at most {max} are allowed"
            ));
        }
    }
    None
}

/// The characters of `value` that `allowed` refuses, each once, quoted and escaped, at most a
/// few of them.
fn bad_chars(value: &str, allowed: impl Fn(char) -> bool) -> String {
    const SHOWN: usize = 5;
    let mut bad: Vec<char> = Vec::new();
    for c in value.chars().filter(|c| !allowed(*c)) {
        if !bad.contains(&c) {
            bad.push(c);
            if bad.len() > SHOWN {
                break;
            }
        }
    }
    let mut shown: Vec<String> = bad.iter().take(SHOWN).map(|c| format!("{c:?}")).collect();
    if bad.len() > SHOWN {
        shown.push("…".to_owned());
    }
    shown.join(", ")
}

fn starts_and_ends_alphanumeric(value: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_alphanumeric();
    value.starts_with(alphanumeric) && value.ends_with(alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings that must never pass any check: line breaks, terminal escapes, paths.
    const HOSTILE: [&str; 13] = [
        "a\nb",
        "a\rb",
        "a\0b",
        "a\u{85}b",
        "a\u{2028}b",
        "a\u{2029}b",
        "\u{1b}[2Ja",
        "../x",
        "/abs",
        "a b",
        "a\tb",
        "\u{202e}a",
        "a\u{feff}",
    ];

    #[test]
    fn no_hostile_string_is_any_kind_of_name() {
        for value in HOSTILE {
            for (check, name) in [
                (dns1123_subdomain as fn(&str) -> Option<String>, "subdomain"),
                (dns1123_label, "label"),
                (dns1035_label, "1035"),
                (path_segment_name, "segment"),
                (kind, "kind"),
                (api_version, "apiVersion"),
                (data_key, "data key"),
            ] {
                let problem = check(value);
                assert!(problem.is_some(), "{name} accepted {value:?}");
                // The reason itself is safe to print.
                let problem = problem.unwrap_or_default();
                assert!(
                    !problem.chars().any(crate::text::is_unsafe_char),
                    "{problem:?}"
                );
            }
        }
    }

    #[test]
    fn subdomains() {
        for ok in ["a", "cp1", "a.b-c.d", "hello", "0abc", &"a".repeat(253)] {
            assert_eq!(dns1123_subdomain(ok), None, "{ok}");
        }
        for bad in [
            "",
            "A",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a-",
            "a_b",
            &"a".repeat(254),
        ] {
            assert!(dns1123_subdomain(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn labels() {
        assert_eq!(dns1123_label("0-a"), None);
        assert!(dns1035_label("0-a").is_some());
        assert!(dns1123_label("a.b").is_some());
        assert!(dns1123_label(&"a".repeat(64)).is_some());
        assert_eq!(dns1035_label("kube-system"), None);
    }

    #[test]
    fn rbac_names_may_use_colons_but_never_slashes() {
        assert_eq!(path_segment_name("system:openshift:scc:privileged"), None);
        for bad in ["..", ".", "a/b", "a%2f", "a b", "é"] {
            assert!(path_segment_name(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn kinds_and_api_versions() {
        for ok in ["ConfigMap", "CR1", "Route"] {
            assert_eq!(kind(ok), None, "{ok}");
        }
        for bad in [
            "configMap",
            "Config_Map",
            "Config-Map",
            "Ünicode",
            "A.B",
            "",
        ] {
            assert!(kind(bad).is_some(), "{bad}");
        }
        for ok in [
            "v1",
            "apps/v1",
            "rbac.authorization.k8s.io/v1",
            "example.com/v1beta1",
        ] {
            assert_eq!(api_version(ok), None, "{ok}");
        }
        for bad in [
            "", "/v1", "apps/", "Apps/v1", "a/b/v1", "../v1", "1v", "apps/V1",
        ] {
            assert!(api_version(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn data_keys() {
        for ok in [
            "kubeconfig-incluster",
            "ca.crt",
            "config_1",
            ".dockerconfigjson",
        ] {
            assert_eq!(data_key(ok), None, "{ok}");
        }
        for bad in ["..", ".", "..x", "a/b", "../k", "a b", ""] {
            assert!(data_key(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn long_values_are_measured_in_characters_and_reasons_stay_short() {
        let huge = "é".repeat(1_000_000);
        let problem = dns1123_subdomain(&huge).unwrap_or_default();
        assert!(problem.contains("1000000 characters"), "{problem}");
        let many = "!\"#$&'()*+,;<=>?@[]^`{|}~";
        let problem = dns1123_subdomain(many).unwrap_or_default();
        assert!(problem.len() < 150, "{problem}");
    }
}
