//! Checks on resolved settings that types alone cannot express.

use super::{ImageRef, MIN_KUBE_MINOR, PostgresMode, Settings};

/// An invalid setting: its key and why.
pub(super) type Invalid = (String, String);

/// The whole-number settings and the values each allows. `k8s.replicas` must fit a
/// Deployment's replicas (an `i32`).
pub(super) const INTEGER_RANGES: [(&str, u64, u64); 3] = [
    ("externalPort", 1, 65_535),
    ("k8s.replicas", 1, 2_147_483_647),
    ("postgres.maxConnections", 10, 100_000),
];

/// Why `value` is not a whole number from `low` to `high`, if it is not.
pub(super) fn out_of_range(value: &serde_json::Value, low: u64, high: u64) -> Option<String> {
    match value.as_u64() {
        Some(number) if (low..=high).contains(&number) => None,
        // Not a number at all: the type check says so.
        _ if !value.is_number() => None,
        _ if value.is_f64() => Some(format!(
            "must be a whole number between {low} and {high}, got {value}"
        )),
        _ => Some(format!("must be between {low} and {high}, got {value}")),
    }
}

/// Validates `settings`; the error names the first offending key.
pub(super) fn check(settings: &Settings) -> Result<(), Invalid> {
    let fail = |key: &str, reason: String| (key.to_owned(), reason);
    for (key, value) in [
        ("domain", &settings.domain),
        ("clusterDomain", &settings.cluster_domain),
        ("hostContainer", &settings.host_container),
        ("ingressClassName", &settings.ingress_class_name),
    ] {
        if !is_dns_subdomain(value) {
            return Err(fail(key, format!("{value:?} is not a DNS name")));
        }
    }
    for (key, value) in [
        ("externalPort", u64::from(settings.external_port)),
        ("k8s.replicas", u64::from(settings.k8s.replicas)),
        (
            "postgres.maxConnections",
            u64::from(settings.postgres.max_connections),
        ),
    ] {
        if let Some((_, low, high)) = INTEGER_RANGES.iter().find(|(k, _, _)| *k == key)
            && let Some(reason) = out_of_range(&serde_json::Value::from(value), *low, *high)
        {
            return Err(fail(key, reason));
        }
    }
    match kube_minor(&settings.kube_version) {
        None => {
            return Err(fail(
                "kubeVersion",
                format!(
                    "{:?} is not a Kubernetes version like 1.33",
                    settings.kube_version
                ),
            ));
        }
        Some(minor) if minor < MIN_KUBE_MINOR => {
            return Err(fail(
                "kubeVersion",
                format!(
                    "the hosting cluster must run Kubernetes 1.{MIN_KUBE_MINOR} or newer, got {}",
                    settings.kube_version
                ),
            ));
        }
        Some(_) => {}
    }
    if let Some(reason) = crate::api::kubernetes_version_problem(&settings.kubernetes_version) {
        return Err(fail("kubernetesVersion", reason));
    }
    if !settings.image_registry.is_empty() && !is_image_path(&settings.image_registry) {
        return Err(fail(
            "imageRegistry",
            format!(
                "{:?} is not a registry host and path",
                settings.image_registry
            ),
        ));
    }
    let images = &settings.images;
    for (name, image, tag_required) in [
        ("kflex", &images.kflex, true),
        ("kubeApiserver", &images.kube_apiserver, false),
        (
            "kubeControllerManager",
            &images.kube_controller_manager,
            false,
        ),
        ("kine", &images.kine, true),
        ("postgres", &images.postgres, true),
        ("k3s", &images.k3s, false),
        ("vcluster", &images.vcluster, true),
        ("vclusterKubernetes", &images.vcluster_kubernetes, false),
    ] {
        check_image(name, image, tag_required)
            .map_err(|(field, reason)| fail(&format!("images.{name}.{field}"), reason))?;
    }
    for (key, volume) in [
        (
            "postgres",
            (
                &settings.postgres.storage_size,
                &settings.postgres.storage_class_name,
            ),
        ),
        (
            "k3s",
            (&settings.k3s.storage_size, &settings.k3s.storage_class_name),
        ),
        (
            "vcluster",
            (
                &settings.vcluster.storage_size,
                &settings.vcluster.storage_class_name,
            ),
        ),
        (
            "postgres.dedicated",
            (
                &settings.postgres.dedicated.storage_size,
                &settings.postgres.dedicated.storage_class_name,
            ),
        ),
    ] {
        check_volume(volume).map_err(|(field, reason)| fail(&format!("{key}.{field}"), reason))?;
    }
    for (key, cidr) in [
        ("k3s.clusterCidr", &settings.k3s.cluster_cidr),
        ("k3s.serviceCidr", &settings.k3s.service_cidr),
    ] {
        if !is_cidr(cidr) {
            return Err(fail(
                key,
                format!("{cidr:?} is not a network like 10.42.0.0/16"),
            ));
        }
    }
    let secret = &settings.postgres.external.secret_name;
    if settings.postgres.mode == PostgresMode::External && secret.is_empty() {
        return Err(fail(
            "postgres.external.secretName",
            "is required with postgres.mode external: name the Secret in kubeflex-system that \
             holds the server (host, port) and the account kflex creates roles and databases \
             with (username, password)"
                .to_owned(),
        ));
    }
    if !secret.is_empty() && !is_dns_subdomain(secret) {
        return Err(fail(
            "postgres.external.secretName",
            format!("{secret:?} is not a Secret name (a DNS subdomain)"),
        ));
    }
    for (key, kinds) in [
        ("namespacedKinds", &settings.namespaced_kinds),
        ("clusterScopedKinds", &settings.cluster_scoped_kinds),
    ] {
        if let Some(bad) = kinds.iter().find(|kind| !is_group_kind(kind)) {
            return Err(fail(
                key,
                format!(
                    "{bad:?} is not Kind.group (e.g. Widget.example.com, or Widget for the core group)"
                ),
            ));
        }
    }
    for resource in &settings.hook_resources {
        check_hook_resource(resource).map_err(|why| fail("hookResources", why))?;
    }
    if let Some(both) = settings
        .namespaced_kinds
        .iter()
        .find(|kind| settings.cluster_scoped_kinds.contains(kind))
    {
        return Err(fail(
            "clusterScopedKinds",
            format!("{both} is also listed in namespacedKinds; a kind has one scope"),
        ));
    }
    super::backup::check(&settings.backup)?;
    super::exposure::check(settings)
}

/// `1.33`, `v1.33`, `1.33.2` or `v1.33.2` → 33.
pub(super) fn kube_minor(version: &str) -> Option<u32> {
    let rest = version
        .strip_prefix('v')
        .unwrap_or(version)
        .strip_prefix("1.")?;
    let mut parts = rest.split('.');
    let minor = parts.next()?.parse().ok()?;
    match (parts.next(), parts.next()) {
        (None, None) => Some(minor),
        (Some(patch), None) if !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()) => {
            Some(minor)
        }
        _ => None,
    }
}

/// A data volume's size and StorageClass.
fn check_volume((size, class): (&String, &String)) -> Result<(), (&'static str, String)> {
    if !is_quantity(size) {
        return Err((
            "storageSize",
            format!("{size:?} is not a storage size like 8Gi"),
        ));
    }
    if !class.is_empty() && !is_dns_subdomain(class) {
        return Err(("storageClassName", format!("{class:?} is not a DNS name")));
    }
    Ok(())
}

fn check_image(
    _name: &str,
    image: &ImageRef,
    tag_required: bool,
) -> Result<(), (&'static str, String)> {
    if !is_image_path(&image.repository) {
        return Err((
            "repository",
            format!("{:?} is not an image repository", image.repository),
        ));
    }
    let tag_ok = image.tag.len() <= 128
        && image.tag.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphanumeric() || c == '_' || (i > 0 && (c == '.' || c == '-'))
        });
    if !tag_ok || (tag_required && image.tag.is_empty() && image.digest.is_empty()) {
        return Err(("tag", format!("{:?} is not an image tag", image.tag)));
    }
    let digest_ok = image.digest.is_empty()
        || image.digest.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    if !digest_ok {
        return Err((
            "digest",
            format!("{:?} is not sha256:<64 hex digits>", image.digest),
        ));
    }
    Ok(())
}

pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_image_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._:".contains(&b))
        })
}

/// A DNS-1123 label: a namespace's name.
pub(super) fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns_subdomain(name)
}

/// A qualified name as labels and annotations have them: an optional DNS-subdomain prefix and
/// `/`, then a name of at most 63 characters (alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric).
pub(super) fn is_qualified_name(text: &str) -> bool {
    let (prefix, name) = match text.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, text),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(is_dns_subdomain)
}

/// `address/prefix`, IPv4 or IPv6.
pub(super) fn is_cidr(text: &str) -> bool {
    let Some((address, prefix)) = text.split_once('/') else {
        return false;
    };
    let max = match address.parse::<core::net::IpAddr>() {
        Ok(core::net::IpAddr::V4(_)) => 32,
        Ok(core::net::IpAddr::V6(_)) => 128,
        Err(_) => return false,
    };
    prefix.bytes().all(|b| b.is_ascii_digit()) && prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

pub(super) fn is_quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|suffix| {
        text.strip_suffix(suffix).is_some_and(|number| {
            let mut parts = number.splitn(2, '.');
            let whole = parts.next().unwrap_or_default();
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            digits(whole) && parts.next().is_none_or(digits)
        })
    })
}

/// `resource.group` (or `resource`), as `kubectl create clusterrole --resource` takes it.
fn check_hook_resource(text: &str) -> Result<(), String> {
    let (resource, group) = match text.split_once('.') {
        Some((resource, group)) => (resource, Some(group)),
        None => (text, None),
    };
    let resource_ok = !resource.is_empty()
        && resource
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !resource_ok || !group.is_none_or(is_dns_subdomain) {
        return Err(format!(
            "{text:?} is not resource.group (e.g. horizontalpodautoscalers.autoscaling, or \
             resourcequotas for the core group)"
        ));
    }
    if group.is_none() && resource == "secrets" {
        // The controller reads only its own Secrets, by name; hooks may create Secrets already.
        return Err(
            "secrets cannot be granted: the controller reads only the Secrets it needs, by name, \
             and may already create, update and delete Secrets"
                .to_owned(),
        );
    }
    Ok(())
}

fn is_group_kind(text: &str) -> bool {
    let (kind, group) = text.split_once('.').unwrap_or((text, ""));
    let kind_ok = kind.starts_with(|c: char| c.is_ascii_uppercase())
        && kind.bytes().all(|b| b.is_ascii_alphanumeric());
    kind_ok && (group.is_empty() || is_dns_subdomain(group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        check(&Settings::default()).unwrap();
    }

    #[test]
    fn kube_versions_in_helm_forms() {
        for (text, minor) in [("1.33", 33), ("v1.34", 34), ("1.35.1", 35), ("v1.36.0", 36)] {
            assert_eq!(kube_minor(text), Some(minor), "{text}");
        }
        for bad in ["1", "2.3", "1.x", "1.33.", "1.33.1.2", ""] {
            assert_eq!(kube_minor(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_old_hosting_cluster_is_refused() {
        let settings = Settings {
            kube_version: "1.29".into(),
            ..Settings::default()
        };
        let (key, reason) = check(&settings).unwrap_err();
        assert_eq!(key, "kubeVersion");
        assert!(reason.contains("1.33 or newer"), "{reason}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        type Mutation = Box<dyn Fn(&mut Settings)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("domain", Box::new(|s| s.domain = "Example.COM".into())),
            ("externalPort", Box::new(|s| s.external_port = 0)),
            (
                "kubernetesVersion",
                Box::new(|s| s.kubernetes_version = "1.34".into()),
            ),
            (
                "images.kine.tag",
                Box::new(|s| s.images.kine.tag = "v1 beta".into()),
            ),
            (
                "images.postgres.digest",
                Box::new(|s| s.images.postgres.digest = "md5:x".into()),
            ),
            (
                "images.kflex.repository",
                Box::new(|s| s.images.kflex.repository = "Ghcr.io/x".into()),
            ),
            (
                "postgres.storageSize",
                Box::new(|s| s.postgres.storage_size = "8 GB".into()),
            ),
            (
                "k3s.storageClassName",
                Box::new(|s| s.k3s.storage_class_name = "Fast_SSD".into()),
            ),
            (
                "k3s.serviceCidr",
                Box::new(|s| s.k3s.service_cidr = "10.43.0.0".into()),
            ),
            (
                "vcluster.storageSize",
                Box::new(|s| s.vcluster.storage_size = "lots".into()),
            ),
            (
                "images.vcluster.tag",
                Box::new(|s| s.images.vcluster.tag = String::new()),
            ),
            (
                "namespacedKinds",
                Box::new(|s| s.namespaced_kinds = vec!["widget.example.com".into()]),
            ),
            (
                "clusterScopedKinds",
                Box::new(|s| {
                    s.namespaced_kinds = vec!["W.x.io".into()];
                    s.cluster_scoped_kinds = vec!["W.x.io".into()];
                }),
            ),
            (
                "hookResources",
                Box::new(|s| s.hook_resources = vec!["HorizontalPodAutoscaler".into()]),
            ),
            (
                "exposure",
                Box::new(|s| s.exposure = Some(super::super::Exposure::Route)),
            ),
            (
                "gateway.create",
                Box::new(|s| {
                    s.exposure = Some(super::super::Exposure::Gateway);
                    s.gateway.create = true;
                }),
            ),
            (
                "gateway.className",
                Box::new(|s| s.gateway.class_name = "Envoy".into()),
            ),
            (
                "gateway.namespace",
                Box::new(|s| {
                    s.gateway.create = true;
                    s.gateway.class_name = "eg".into();
                    s.gateway.namespace = "gateways".into();
                }),
            ),
            (
                "gateway.sectionName",
                Box::new(|s| s.gateway.section_name = "TLS".into()),
            ),
            (
                "loadBalancer.sourceRanges",
                Box::new(|s| s.load_balancer.source_ranges = vec!["10.0.0.1/8".into()]),
            ),
            (
                "loadBalancer.class",
                Box::new(|s| s.load_balancer.class = "/nlb".into()),
            ),
            (
                "loadBalancer.annotations",
                Box::new(|s| {
                    s.load_balancer.annotations = [(
                        super::super::EXTERNAL_DNS_HOSTNAME.to_owned(),
                        "x".to_owned(),
                    )]
                    .into();
                }),
            ),
            (
                "apiServerServiceType",
                Box::new(|s| {
                    s.exposure = Some(super::super::Exposure::LoadBalancer);
                    s.api_server_service_type = super::super::ServiceType::NodePort;
                }),
            ),
            ("k8s.replicas", Box::new(|s| s.k8s.replicas = 0)),
            (
                "k8s.replicas",
                Box::new(|s| s.k8s.replicas = u32::try_from(i32::MAX).unwrap_or(0) + 1),
            ),
            (
                "postgres.external.secretName",
                Box::new(|s| s.postgres.mode = PostgresMode::External),
            ),
            (
                "postgres.external.secretName",
                Box::new(|s| s.postgres.external.secret_name = "PG Admin".into()),
            ),
            (
                "postgres.dedicated.storageSize",
                Box::new(|s| s.postgres.dedicated.storage_size = "2 GB".into()),
            ),
        ];
        for (key, mutate) in cases {
            let mut settings = Settings::default();
            mutate(&mut settings);
            let (got, reason) = check(&settings).unwrap_err();
            assert_eq!(got, key, "{reason}");
        }
    }

    #[test]
    fn an_external_server_is_named_by_a_secret() {
        let mut settings = Settings::default();
        settings.postgres.mode = PostgresMode::External;
        let (key, reason) = check(&settings).unwrap_err();
        assert_eq!(key, "postgres.external.secretName");
        assert!(reason.contains("postgres.mode external"), "{reason}");
        settings.postgres.external.secret_name = "pg-admin".into();
        check(&settings).unwrap();
    }

    #[test]
    fn hook_resources_are_resource_dot_group_and_never_secrets() {
        for good in [
            "resourcequotas",
            "horizontalpodautoscalers.autoscaling",
            "certificates.cert-manager.io",
        ] {
            check_hook_resource(good).unwrap();
        }
        for bad in [
            "",
            "*",
            "deployments/scale",
            "Widgets.example.com",
            "widgets.Example.com",
            "widgets.",
        ] {
            let why = check_hook_resource(bad).unwrap_err();
            assert!(why.contains("not resource.group"), "{bad}: {why}");
        }
        let why = check_hook_resource("secrets").unwrap_err();
        assert!(why.contains("reads only the Secrets it needs"), "{why}");
        // Another group's `secrets` is not the core Secret.
        check_hook_resource("secrets.vault.example.com").unwrap();
    }

    #[test]
    fn networks() {
        for good in ["10.42.0.0/16", "fd00::/108", "0.0.0.0/0"] {
            assert!(is_cidr(good), "{good}");
        }
        for bad in [
            "10.42.0.0",
            "10.42.0.0/33",
            "10.42/16",
            "x/8",
            "10.0.0.0/+8",
            "",
        ] {
            assert!(!is_cidr(bad), "{bad}");
        }
    }

    #[test]
    fn qualified_names() {
        for good in [
            "a",
            "example.com/internal-vip",
            "service.beta.kubernetes.io/aws-load-balancer-type",
            "A_b.c",
        ] {
            assert!(is_qualified_name(good), "{good}");
        }
        for bad in [
            "",
            "/x",
            "x/",
            "Example.com/x",
            "a b",
            "-a",
            "a/b/c",
            &"x".repeat(64),
        ] {
            assert!(!is_qualified_name(bad), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        for good in ["8Gi", "500M", "1", "1.5Gi"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Gi", "8 Gi", "8GB", "1.Gi", ".5Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
