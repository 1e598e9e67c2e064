//! The steps every rendered set goes through, whatever produced its objects: placement in a
//! namespace, duplicate detection, kflex's labels, Pod Security labels on the namespace, config
//! hashes on pod templates, GitOps annotations, and install order.

use std::collections::BTreeMap;

use serde_json::Value;

use super::pod_security::{self, Level, Violation};
use super::scope::{self, Scope, Scopes};
use super::{SetError, config_hash, gitops, metadata};
use crate::manifest::{Manifest, ObjectKey, sort_for_install};
use crate::settings::Settings;

/// How far the Pod Security level of a set's home namespace may fall below restricted.
#[derive(Clone, Copy, Debug)]
pub(super) enum PodSecurity {
    /// Every pod must meet restricted (the system manifests).
    Restricted,
    /// A control plane's namespace: it enforces the strictest level its pods meet. Hooks' pods
    /// may need less, as may kflex's own pods that document an exception; `tenant_pods` is the
    /// level pods the control plane itself creates there need, and why.
    ControlPlane {
        tenant_pods: Option<(Level, &'static str)>,
    },
}

/// Checks, labels, annotates and orders `manifests` (already placed), owned by `control_plane`
/// (`None` for the system), whose pods live in `home`, which enforces the Pod Security level
/// `policy` allows. Returns warnings for the reviewer.
pub(super) fn finish(
    manifests: &mut [Manifest],
    control_plane: Option<&str>,
    home: &str,
    policy: PodSecurity,
    settings: &Settings,
) -> Result<Vec<String>, SetError> {
    check_duplicates(manifests)?;
    for manifest in manifests.iter_mut() {
        metadata::label(manifest, control_plane)
            .map_err(|err| object_error(manifest, err.field, err.to_string()))?;
    }
    let mut warnings = apply_pod_security(manifests, home, policy, settings)?;
    config_hash::annotate(manifests);
    // Last, so the check for `$` sees every other change.
    warnings.extend(gitops::annotate(manifests, control_plane.is_none()));
    sort_for_install(manifests);
    Ok(warnings)
}

pub(super) fn object_error(manifest: &Manifest, field: &str, reason: String) -> SetError {
    SetError::Object {
        object: manifest.key().to_string(),
        origin: manifest.source().to_owned(),
        field: field.to_owned(),
        reason,
    }
}

/// Puts a namespaced object in `home` unless it names one of `allowed`; refuses a namespace on a
/// cluster-scoped object and kinds of unknown scope.
pub(super) fn place(
    manifest: &mut Manifest,
    scopes: &Scopes,
    home: &str,
    allowed: &[&str],
) -> Result<(), SetError> {
    match scopes.scope(manifest.group(), manifest.kind()) {
        None => {
            let hint = scope::declare_hint(manifest.group(), manifest.kind());
            Err(object_error(manifest, "kind", hint))
        }
        Some(Scope::Cluster) => match manifest.namespace() {
            Some(namespace) if !namespace.is_empty() => Err(object_error(
                manifest,
                "metadata.namespace",
                format!(
                    "{} is cluster-scoped; remove metadata.namespace ({namespace:?})",
                    manifest.kind()
                ),
            )),
            _ => Ok(()),
        },
        Some(Scope::Namespaced) => match manifest.namespace() {
            None | Some("") => {
                manifest.set_namespace(home);
                Ok(())
            }
            Some(namespace) if allowed.contains(&namespace) => Ok(()),
            Some(namespace) => {
                let reason = format!(
                    "namespaced objects of this control plane belong in {home}; {namespace:?} is not allowed"
                );
                Err(object_error(manifest, "metadata.namespace", reason))
            }
        },
    }
}

fn check_duplicates(manifests: &[Manifest]) -> Result<(), SetError> {
    let mut seen: BTreeMap<ObjectKey, &str> = BTreeMap::new();
    for manifest in manifests {
        if let Some(first) = seen.insert(manifest.key(), manifest.source()) {
            return Err(SetError::Duplicate {
                object: manifest.key().to_string(),
                first: first.to_owned(),
                second: manifest.source().to_owned(),
            });
        }
    }
    Ok(())
}

/// Labels `home` with the strictest Pod Security level its pods meet (explaining any exception)
/// and checks that pods elsewhere (the system namespace) meet restricted.
fn apply_pod_security(
    manifests: &mut [Manifest],
    home: &str,
    policy: PodSecurity,
    settings: &Settings,
) -> Result<Vec<String>, SetError> {
    let tenant_pods = match policy {
        PodSecurity::Restricted => None,
        PodSecurity::ControlPlane { tenant_pods } => tenant_pods,
    };
    let may_relax = matches!(policy, PodSecurity::ControlPlane { .. });
    let mut level = Level::Restricted;
    let mut exceptions = Vec::new();
    let mut relaxed_by = Vec::new();
    if let Some((tenant_level, why)) = tenant_pods {
        level = tenant_level;
        exceptions.push(format!(
            "the tenant's pods need {}: {why}",
            tenant_level.as_str()
        ));
        relaxed_by.push("the tenant's pods".to_owned());
    }
    for manifest in manifests.iter() {
        let Some((path, spec)) = pod_security::pod_spec(manifest) else {
            continue;
        };
        let violations = pod_security::check(spec);
        if violations.is_empty() {
            continue;
        }
        let pod_level = pod_security::level_of(&violations);
        let in_home = manifest.namespace() == Some(home);
        let from_hook = manifest.annotation(metadata::HOOK_ANNOTATION).is_some();
        let documented = manifest.annotation(metadata::POD_SECURITY_EXCEPTION_ANNOTATION);
        let refuse = |violation: &Violation, rule: String| {
            let field = format!(
                "{}.{}",
                path.trim_start_matches('/').replace('/', "."),
                violation.field
            );
            object_error(manifest, &field, format!("{}; {rule}", violation.reason))
        };
        if from_hook && pod_level == Level::Privileged && !settings.allow_privileged_hooks {
            let first = violations
                .iter()
                .find(|v| v.allows == Level::Privileged)
                .unwrap_or(&violations[0]);
            return Err(refuse(
                first,
                format!(
                    "a PostCreateHook may lower {home} to baseline Pod Security, never to \
                     privileged, unless the setting allowPrivilegedHooks is true"
                ),
            ));
        }
        if !in_home || !may_relax {
            let namespace = manifest.namespace().unwrap_or(home);
            return Err(refuse(
                &violations[0],
                format!("pods in {namespace} must meet the restricted Pod Security Standard"),
            ));
        }
        if !from_hook && documented.is_none_or(str::is_empty) {
            return Err(refuse(
                &violations[0],
                format!(
                    "kflex's own pods must meet the restricted Pod Security Standard, or say why \
                     not in the annotation {}",
                    metadata::POD_SECURITY_EXCEPTION_ANNOTATION
                ),
            ));
        }
        level = level.min(pod_level);
        let why = match documented {
            Some(reason) if !from_hook => reason.to_owned(),
            _ => violations
                .iter()
                .map(|v| format!("{} {}", v.field, v.reason))
                .collect::<Vec<_>>()
                .join("; "),
        };
        exceptions.push(format!(
            "{} {} ({}) needs {}: {why}",
            manifest.kind(),
            manifest.name(),
            manifest.source(),
            pod_level.as_str(),
        ));
        relaxed_by.push(format!(
            "{} {} ({})",
            manifest.kind(),
            manifest.name(),
            manifest.source()
        ));
    }
    let namespace = manifests
        .iter_mut()
        .find(|m| m.is::<k8s_openapi::api::core::v1::Namespace>() && m.name() == home)
        .ok_or_else(|| SetError::Template {
            template: "(namespace)".to_owned(),
            detail: format!("no template renders the Namespace {home}"),
        })?;
    let version = format!("v1.{}", settings.kube_minor());
    let labels = namespace.labels_mut();
    for (mode, mode_level) in [
        ("enforce", level),
        ("audit", Level::Restricted),
        ("warn", Level::Restricted),
    ] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            Value::from(mode_level.as_str()),
        );
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            Value::from(version.clone()),
        );
    }
    if exceptions.is_empty() {
        return Ok(Vec::new());
    }
    namespace.annotations_mut().insert(
        metadata::POD_SECURITY_ANNOTATION.to_owned(),
        Value::from(exceptions.join("\n")),
    );
    Ok(vec![format!(
        "namespace {home} enforces Pod Security {} instead of restricted because of {}",
        level.as_str(),
        relaxed_by.join(", ")
    )])
}
