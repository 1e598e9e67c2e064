//! What GitOps tools need on rendered objects, added to the finished objects so every consumer
//! (`kubectl`, Argo CD, Flux, the kflex controller, which ignores these) gets the same bytes:
//!
//! - Argo CD sync waves, from the install classes of `manifest::order` through one table
//!   ([`class_wave`]) and the tier an object belongs to ([`Tier`]);
//! - on Jobs, what makes Argo CD and Flux delete and re-create a changed Job instead of failing
//!   on its immutable template, and no `ttlSecondsAfterFinished`;
//! - Flux's opt-out of post-build variable substitution on every object whose text contains `$`.
//!
//! An annotation an object already carries (a PostCreateHook's own choice) is left as it is.
//! Nothing here reads anything but the objects.

use serde_json::Value;

use super::metadata::HOOK_ANNOTATION;
use crate::manifest::{InstallClass, Manifest, install_class};

/// Argo CD applies lower waves first and waits for each wave to be healthy.
pub const SYNC_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";
/// Argo CD's per-object sync options.
pub const SYNC_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/sync-options";
/// Marks an Argo CD resource hook; Argo CD tracks hooks differently (a finished hook may go).
pub const ARGOCD_HOOK_ANNOTATION: &str = "argocd.argoproj.io/hook";
/// Flux skips post-build substitution for an object labelled or annotated `disabled`.
pub const FLUX_SUBSTITUTE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/substitute";
pub const FLUX_SUBSTITUTE_DISABLED: &str = "disabled";
/// Flux deletes and re-creates an object labelled or annotated `enabled` when applying it fails
/// on an immutable field (fluxcd/kustomize-controller#787; the value is `enabled`, lower case).
pub const FLUX_FORCE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/force";
pub const FLUX_FORCE_ENABLED: &str = "enabled";

/// The sync options of every Job. Argo CD's documentation (docs/user-guide/sync-options.md,
/// "Force Sync", argoproj/argo-cd commit 03070f7a) gives `Force=true,Replace=true` for "job
/// resources that should run every time when syncing": `Replace=true` alone makes Argo CD run
/// `kubectl replace`, which the API server refuses for a Job whose (immutable) pod template
/// changed; with `Force=true` it deletes the Job and creates it again. kflex's Jobs are
/// idempotent, so running one again is harmless.
pub const JOB_SYNC_OPTIONS: &str = "Force=true,Replace=true";

/// Which part of the output an object belongs to. Each tier is applied, wave by wave, before the
/// next one starts: the cluster's one-time objects, then a control plane, then its
/// PostCreateHooks, which (as in KubeFlex) expect the control plane to be up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    System,
    ControlPlane,
    Hook,
}

/// Waves of one tier lie in `base .. base + TIER_SPAN`.
const TIER_SPAN: i32 = 10;

impl Tier {
    fn base(self) -> i32 {
        match self {
            Self::System => -TIER_SPAN,
            Self::ControlPlane => 0,
            Self::Hook => TIER_SPAN,
        }
    }
}

/// The sync wave of each install class within a tier: the one table waves come from.
///
/// It follows the install order except for Jobs: kflex's bootstrap Jobs create the Secrets its
/// workloads mount (`k8s-certs`, `kine-datastore`, PostgreSQL's password and certificate), and
/// Argo CD does not start a wave until the previous one is healthy, so Jobs placed after the
/// workloads would wait forever for workloads that wait for them. PersistentVolumeClaims go with
/// the workloads: a claim of a `WaitForFirstConsumer` StorageClass stays Pending (unhealthy to
/// Argo CD) until a pod uses it.
pub fn class_wave(class: InstallClass) -> i32 {
    use InstallClass as C;
    match class {
        C::Namespace | C::CustomResourceDefinition | C::PriorityClass => 0,
        C::ServiceAccount
        | C::ClusterRole
        | C::ClusterRoleBinding
        | C::Role
        | C::RoleBinding
        | C::Policy => 1,
        C::Secret | C::ConfigMap | C::Storage | C::Service => 2,
        C::Job => 3,
        C::Claim | C::Workload => 4,
        C::IngressClass | C::Exposure | C::Extension => 5,
        C::Other => 6,
    }
}

/// The sync wave of an object of `class` in `tier`.
pub fn wave(tier: Tier, class: InstallClass) -> i32 {
    tier.base() + class_wave(class)
}

/// Adds the annotations to every object of a set (`system` for the one-time manifests) and
/// returns warnings for what it had to change.
pub(super) fn annotate(manifests: &mut [Manifest], system: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    for manifest in manifests.iter_mut() {
        let tier = if system {
            Tier::System
        } else if manifest.annotation(HOOK_ANNOTATION).is_some() {
            Tier::Hook
        } else {
            Tier::ControlPlane
        };
        let wave = wave(tier, install_class(manifest.group(), manifest.kind()));
        add_annotation(manifest, SYNC_WAVE_ANNOTATION, &wave.to_string());
        if manifest.is::<k8s_openapi::api::batch::v1::Job>() {
            if let Some(warning) = drop_ttl(manifest) {
                warnings.push(warning);
            }
            add_annotation(manifest, SYNC_OPTIONS_ANNOTATION, JOB_SYNC_OPTIONS);
            if manifest.label(FLUX_FORCE_ANNOTATION).is_none() {
                add_annotation(manifest, FLUX_FORCE_ANNOTATION, FLUX_FORCE_ENABLED);
            }
        }
        mark_substitution(manifest);
    }
    warnings
}

/// Removes `spec.ttlSecondsAfterFinished` from a Job that is not an Argo CD hook. Such a Job
/// deletes itself when done; Argo CD then reports it Missing and creates it again on the next
/// sync (argoproj/argo-cd#8586), and the kflex controller likewise re-creates a missing object,
/// so the Job would run over and over.
fn drop_ttl(manifest: &mut Manifest) -> Option<String> {
    if manifest.annotation(ARGOCD_HOOK_ANNOTATION).is_some() {
        return None;
    }
    let key = manifest.key();
    let source = manifest.source().to_owned();
    let spec = manifest.object_mut().get_mut("spec")?.as_object_mut()?;
    spec.remove("ttlSecondsAfterFinished")?;
    Some(format!(
        "{key} (from {source}): removed spec.ttlSecondsAfterFinished; a Job that deletes itself \
         is created again by Argo CD and the kflex controller, so it would run again and again"
    ))
}

/// Disables Flux's post-build substitution on an object whose text contains `$` anywhere.
/// Flux substitutes with drone/envsubst, which expands `$name` as well as `${name}` and turns an
/// undefined variable into the empty string, so a shell script or a regular expression would be
/// silently changed. Objects that say either way themselves keep their choice.
fn mark_substitution(manifest: &mut Manifest) {
    let decided = manifest.label(FLUX_SUBSTITUTE_ANNOTATION).is_some()
        || manifest.annotation(FLUX_SUBSTITUTE_ANNOTATION).is_some();
    if !decided && contains_dollar(manifest.object()) {
        add_annotation(
            manifest,
            FLUX_SUBSTITUTE_ANNOTATION,
            FLUX_SUBSTITUTE_DISABLED,
        );
    }
}

fn contains_dollar(map: &serde_json::Map<String, Value>) -> bool {
    map.iter()
        .any(|(key, value)| key.contains('$') || value_contains_dollar(value))
}

fn value_contains_dollar(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('$'),
        Value::Array(items) => items.iter().any(value_contains_dollar),
        Value::Object(map) => contains_dollar(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn add_annotation(manifest: &mut Manifest, key: &str, value: &str) {
    manifest
        .annotations_mut()
        .entry(key.to_owned())
        .or_insert_with(|| Value::from(value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(api_version: &str, kind: &str, extra: Value) -> Manifest {
        let mut object =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
        if let (Value::Object(map), Value::Object(more)) = (&mut object, extra) {
            map.extend(more);
        }
        Manifest::new("t", object).unwrap()
    }

    fn wave_of(m: &Manifest) -> i32 {
        m.annotation(SYNC_WAVE_ANNOTATION).unwrap().parse().unwrap()
    }

    #[test]
    fn definitions_then_rbac_then_config_then_jobs_then_workloads_then_exposure() {
        let order = [
            ("v1", "Namespace"),
            ("rbac.authorization.k8s.io/v1", "Role"),
            ("v1", "Secret"),
            ("batch/v1", "Job"),
            ("apps/v1", "Deployment"),
            ("networking.k8s.io/v1", "Ingress"),
            ("example.com/v1", "Widget"),
        ];
        let mut manifests: Vec<Manifest> = order
            .iter()
            .map(|(api, kind)| manifest(api, kind, json!({})))
            .collect();
        annotate(&mut manifests, false);
        let waves: Vec<i32> = manifests.iter().map(wave_of).collect();
        assert_eq!(waves, [0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn every_class_has_a_wave_inside_its_tier() {
        use InstallClass as C;
        let classes = [
            C::Namespace,
            C::CustomResourceDefinition,
            C::PriorityClass,
            C::ServiceAccount,
            C::ClusterRole,
            C::ClusterRoleBinding,
            C::Role,
            C::RoleBinding,
            C::Policy,
            C::Secret,
            C::ConfigMap,
            C::Storage,
            C::Claim,
            C::Service,
            C::Workload,
            C::Job,
            C::IngressClass,
            C::Exposure,
            C::Extension,
            C::Other,
        ];
        for class in classes {
            assert!((0..TIER_SPAN).contains(&class_wave(class)), "{class:?}");
        }
        // Namespaces and CRDs first, custom resources (which need them) last, in every tier.
        let first = class_wave(C::Namespace);
        assert!(classes.iter().all(|c| class_wave(*c) >= first));
        assert!(
            classes
                .iter()
                .all(|c| class_wave(*c) <= class_wave(C::Other))
        );
        // The tiers do not overlap: the whole system set comes before any control plane, and
        // a control plane before its hooks.
        assert!(wave(Tier::System, C::Other) < wave(Tier::ControlPlane, C::Namespace));
        assert!(wave(Tier::ControlPlane, C::Other) < wave(Tier::Hook, C::Namespace));
    }

    #[test]
    fn system_objects_and_hook_objects_get_their_tier() {
        let mut system = vec![manifest("apps/v1", "StatefulSet", json!({}))];
        annotate(&mut system, true);
        assert_eq!(wave_of(&system[0]), -10 + 4);
        let mut hook = manifest("v1", "ConfigMap", json!({}));
        hook.annotations_mut()
            .insert(HOOK_ANNOTATION.into(), json!("hello"));
        let mut set = vec![hook];
        annotate(&mut set, false);
        assert_eq!(wave_of(&set[0]), 10 + 2);
    }

    #[test]
    fn jobs_are_replaced_and_lose_their_ttl_unless_argo_runs_them_as_hooks() {
        let job = manifest(
            "batch/v1",
            "Job",
            json!({"spec": {"ttlSecondsAfterFinished": 60, "backoffLimit": 1}}),
        );
        let mut argo_hook = job.clone();
        argo_hook
            .annotations_mut()
            .insert(ARGOCD_HOOK_ANNOTATION.into(), json!("PostSync"));
        let cron = manifest(
            "batch/v1",
            "CronJob",
            json!({"spec": {"jobTemplate": {"spec": {"ttlSecondsAfterFinished": 60}}}}),
        );
        let mut set = vec![job, argo_hook, cron];
        let warnings = annotate(&mut set, false);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("Job x (from t): removed spec.ttlSecondsAfterFinished"));
        assert_eq!(set[0].object()["spec"], json!({"backoffLimit": 1}));
        assert_eq!(
            set[0].annotation(SYNC_OPTIONS_ANNOTATION),
            Some("Force=true,Replace=true")
        );
        assert_eq!(set[0].annotation(FLUX_FORCE_ANNOTATION), Some("enabled"));
        assert_eq!(set[1].object()["spec"]["ttlSecondsAfterFinished"], 60);
        // A CronJob's Jobs are not tracked by Argo CD; their TTL is the CronJob's business.
        assert_eq!(set[2].annotation(SYNC_OPTIONS_ANNOTATION), None);
        assert_eq!(set[2].annotation(FLUX_FORCE_ANNOTATION), None);
        assert_eq!(
            set[2].object()["spec"]["jobTemplate"]["spec"]["ttlSecondsAfterFinished"],
            60
        );
    }

    #[test]
    fn objects_with_a_dollar_anywhere_opt_out_of_flux_substitution() {
        let script = manifest("v1", "ConfigMap", json!({"data": {"run.sh": "echo $HOME"}}));
        let nested = manifest(
            "batch/v1",
            "Job",
            json!({"spec": {"template": {"spec": {"containers": [{"args": ["-c", "x=${Y}"]}]}}}}),
        );
        let in_key = manifest("v1", "ConfigMap", json!({"data": {"$k": "v"}}));
        let plain = manifest("v1", "ConfigMap", json!({"data": {"k": "5 USD"}}));
        let mut chosen = script.clone();
        chosen
            .labels_mut()
            .insert(FLUX_SUBSTITUTE_ANNOTATION.into(), json!("enabled"));
        let mut set = vec![script, nested, in_key, plain, chosen];
        annotate(&mut set, false);
        let marks: Vec<Option<&str>> = set
            .iter()
            .map(|m| m.annotation(FLUX_SUBSTITUTE_ANNOTATION))
            .collect();
        assert_eq!(
            marks,
            [
                Some("disabled"),
                Some("disabled"),
                Some("disabled"),
                None,
                None
            ]
        );
    }

    #[test]
    fn annotations_an_object_sets_itself_are_kept() {
        let mut job = manifest("batch/v1", "Job", json!({}));
        job.annotations_mut()
            .insert(SYNC_WAVE_ANNOTATION.into(), json!("42"));
        job.annotations_mut()
            .insert(SYNC_OPTIONS_ANNOTATION.into(), json!("Replace=true"));
        let mut set = vec![job];
        annotate(&mut set, false);
        assert_eq!(set[0].annotation(SYNC_WAVE_ANNOTATION), Some("42"));
        assert_eq!(
            set[0].annotation(SYNC_OPTIONS_ANNOTATION),
            Some("Replace=true")
        );
    }
}
