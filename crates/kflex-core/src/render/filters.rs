//! Filters templates may use beyond minijinja's own: for configuration files that a template
//! renders into an object (a whole YAML file as one Secret value) and the hash that rolls the
//! pods reading it.

use base64::Engine as _;
use minijinja::{Environment, Error, ErrorKind};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::canonical::CanonicalCache;
use super::config_hash::hex;

/// Adds `canonical_yaml` (answered by `canonical`), `b64encode` and `sha256` to `env`.
pub(super) fn register(env: &mut Environment<'static>, canonical: Arc<CanonicalCache>) {
    env.add_filter("canonical_yaml", move |text: &str| {
        canonical_yaml(&canonical, text)
    });
    env.add_filter("b64encode", b64encode);
    env.add_filter("sha256", sha256);
}

/// YAML text parsed and written again in kflex's canonical form: keys sorted, strings quoted
/// wherever a YAML 1.1 reader would misread them. Invalid YAML is an error naming the problem.
fn canonical_yaml(cache: &CanonicalCache, text: &str) -> Result<String, Error> {
    cache.canonical(text).map_err(|problem| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("canonical_yaml: {problem}"),
        )
    })
}

/// Standard base64 with padding, as Secret `data` holds it.
fn b64encode(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Lower-case hex sha256 of the UTF-8 text.
fn sha256(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_yaml_sorts_keys_and_protects_yaml_1_1_words() {
        let cache = CanonicalCache::default();
        let text = canonical_yaml(&cache, "b: 1\na:\n  on: \"on\"\n  list: [x, 'no']\n").unwrap();
        assert_eq!(
            text,
            "a:\n  list:\n  - x\n  - \"no\"\n  \"on\": \"on\"\nb: 1\n"
        );
        let err = canonical_yaml(&cache, "a: [").unwrap_err();
        assert!(err.to_string().contains("not valid YAML"), "{err}");
    }

    #[test]
    fn base64_and_sha256_match_their_standard_values() {
        assert_eq!(b64encode("kflex"), "a2ZsZXg=");
        assert_eq!(
            sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
