//! Why a reconcile failed: one variant per operation, each naming the ControlPlane and keeping
//! its cause, so that the retry policy and the metrics decide by the variant and by the API's
//! status code in the cause — never by a message. This module only describes failures; what to
//! do about one is `reconcile::error_policy`'s job.

use std::error::Error as StdError;
use std::fmt;

use super::caches::CacheError;
use super::config::ConfigError;
use super::readiness::ReadinessError;

/// A reconcile of one ControlPlane failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the controller's caches are not ready to reconcile ControlPlane {name}")]
    Caches {
        name: String,
        #[source]
        source: CacheError,
    },
    #[error("failed to read ControlPlane {name}")]
    ReadControlPlane {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The settings ConfigMap is missing or gives no usable settings: nothing is rendered.
    #[error("ControlPlane {name} is not rendered without valid settings")]
    Configuration {
        name: String,
        #[source]
        source: ConfigError,
    },
    #[error("failed to write the finalizer and ApplySet metadata of ControlPlane {name}")]
    PatchParent {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply {} of the objects of ControlPlane {name}", source.0.len())]
    Apply {
        name: String,
        #[source]
        source: ApplyFailures,
    },
    #[error("failed to prune the objects ControlPlane {name} no longer renders")]
    Prune {
        name: String,
        // Seam: `prune::prune`'s error, until it returns a typed one.
        #[source]
        source: anyhow::Error,
    },
    #[error("failed to find out whether ControlPlane {name} is ready")]
    Readiness {
        name: String,
        #[source]
        source: ReadinessError,
    },
    #[error("failed to write the status of ControlPlane {name}")]
    PatchStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to release the finalizer of ControlPlane {name}")]
    ReleaseFinalizer {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The objects one pass could not apply, one message each, as `apply::apply_set` reports them.
/// Seam: the messages become typed write errors once `apply_set` returns them, so that a
/// forbidden or conflicting apply is classified like any other.
#[derive(Debug, PartialEq, Eq)]
pub struct ApplyFailures(pub Vec<String>);

/// At most this many failures are spelled out; the rest are counted.
const SHOWN: usize = 3;

impl fmt::Display for ApplyFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<&str> = self.0.iter().take(SHOWN).map(String::as_str).collect();
        f.write_str(&shown.join("; "))?;
        if self.0.len() > SHOWN {
            write!(f, " (and {} more)", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

impl StdError for ApplyFailures {}

/// What a failure calls for, whichever operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 409: another writer changed the object since it was read.
    Conflict,
    /// 403: the controller's RBAC does not allow the request.
    Forbidden,
    /// The settings: nothing changes until the ConfigMap does.
    Configuration,
    /// Anything else: the API or the network failed, or an object was refused.
    Other,
}

impl Error {
    /// The `error` label of the metrics: stable, lower case, one per variant.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Caches { .. } => "caches",
            Self::ReadControlPlane { .. } => "read_control_plane",
            Self::Configuration { .. } => "configuration",
            Self::PatchParent { .. } => "patch_parent",
            Self::Apply { .. } => "apply",
            Self::Prune { .. } => "prune",
            Self::Readiness { .. } => "readiness",
            Self::PatchStatus { .. } => "patch_status",
            Self::ReleaseFinalizer { .. } => "release_finalizer",
        }
    }

    /// The ControlPlane the reconcile was for.
    pub fn control_plane(&self) -> &str {
        match self {
            Self::Caches { name, .. }
            | Self::ReadControlPlane { name, .. }
            | Self::Configuration { name, .. }
            | Self::PatchParent { name, .. }
            | Self::Apply { name, .. }
            | Self::Prune { name, .. }
            | Self::Readiness { name, .. }
            | Self::PatchStatus { name, .. }
            | Self::ReleaseFinalizer { name, .. } => name,
        }
    }

    /// The API's answer that caused this, if an API request did: the first in the chain of
    /// causes.
    pub fn api_status(&self) -> Option<&kube::core::Status> {
        let mut cause = self.source();
        while let Some(err) = cause {
            if let Some(kube::Error::Api(status)) = err.downcast_ref::<kube::Error>() {
                return Some(status);
            }
            cause = err.source();
        }
        None
    }

    pub fn class(&self) -> Class {
        if matches!(self, Self::Configuration { .. }) {
            return Class::Configuration;
        }
        match self.api_status().map(|status| status.code) {
            Some(409) => Class::Conflict,
            Some(403) => Class::Forbidden,
            _ => Class::Other,
        }
    }

    /// What the controller was not allowed to do, for an administrator who can grant it; `None`
    /// unless the API answered 403.
    pub fn forbidden(&self) -> Option<String> {
        let status = self
            .api_status()
            .filter(|_| self.class() == Class::Forbidden)?;
        let request = match self {
            Self::Caches { .. } => "list and watch the kinds it caches",
            Self::ReadControlPlane { .. } => "get controlplanes.tenancy.kflex.kubestellar.org",
            Self::PatchParent { .. } | Self::ReleaseFinalizer { .. } => {
                "patch controlplanes.tenancy.kflex.kubestellar.org"
            }
            Self::PatchStatus { .. } => {
                "patch controlplanes/status in tenancy.kflex.kubestellar.org"
            }
            Self::Apply { .. } => "apply an object the control plane renders",
            Self::Prune { .. } => "list or delete a member of the control plane",
            Self::Readiness { .. } => "get an object its readiness is read from",
            Self::Configuration { .. } => "read the settings",
        };
        Some(format!(
            "the controller's RBAC does not allow it to {request}: {}",
            status.message
        ))
    }
}

/// `err` and its causes, outermost first, joined by ": " (as `anyhow`'s `{:#}` does). A
/// `kube::Error` ends the chain, told briefly: its own message already repeats its cause, and
/// an API answer's debug form is noise.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(kube) = err.downcast_ref::<kube::Error>() {
            parts.push(describe(kube));
            break;
        }
        parts.push(err.to_string());
        cause = err.source();
    }
    parts.join(": ")
}

/// An API error as the API server put it: its message and code.
fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// An error as the API answers it: `code` and its message.
    pub fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, reason)
                .with_code(code)
                .boxed(),
        )
    }

    fn patch_status(code: u16, reason: &str, message: &str) -> Error {
        Error::PatchStatus {
            name: "cp1".into(),
            source: api_error(code, reason, message),
        }
    }

    #[test]
    fn the_class_comes_from_the_api_status_code_wherever_it_is_in_the_chain() {
        assert_eq!(
            patch_status(409, "Conflict", "changed").class(),
            Class::Conflict
        );
        assert_eq!(
            patch_status(403, "Forbidden", "no").class(),
            Class::Forbidden
        );
        assert_eq!(
            patch_status(500, "InternalError", "oops").class(),
            Class::Other
        );
        // The code decides, not the reason's spelling.
        assert_eq!(patch_status(403, "", "no").class(), Class::Forbidden);
        // Deep in a pruning error's context chain.
        let prune = Error::Prune {
            name: "cp1".into(),
            source: anyhow::Error::new(api_error(403, "Forbidden", "cannot list"))
                .context("listing the deployments of ApplySet x"),
        };
        assert_eq!(prune.class(), Class::Forbidden);
        let missing = Error::Configuration {
            name: "cp1".into(),
            source: ConfigError::Missing {
                namespace: "kubeflex-system".into(),
            },
        };
        assert_eq!(missing.class(), Class::Configuration);
        // Without an API answer there is no code to go by.
        let applied = Error::Apply {
            name: "cp1".into(),
            source: ApplyFailures(vec!["Deployment x: forbidden (403)".into()]),
        };
        assert_eq!(applied.class(), Class::Other);
    }

    #[test]
    fn labels_are_stable_lower_case_names_of_the_operation() {
        assert_eq!(patch_status(500, "", "").label(), "patch_status");
        let apply = Error::Apply {
            name: "cp1".into(),
            source: ApplyFailures(vec![]),
        };
        assert_eq!(apply.label(), "apply");
        let release = Error::ReleaseFinalizer {
            name: "cp1".into(),
            source: api_error(409, "Conflict", ""),
        };
        assert_eq!(release.label(), "release_finalizer");
    }

    #[test]
    fn the_chain_names_the_object_and_the_cause_once() {
        let failures = ApplyFailures(vec![
            "applying Deployment cp1-system/kube-apiserver (from templates/k8s/apiserver.yaml): \
             deployments.apps \"kube-apiserver\" is forbidden (403)"
                .into(),
        ]);
        let err = Error::Apply {
            name: "cp1".into(),
            source: failures,
        };
        assert_eq!(
            chain(&err),
            "failed to apply 1 of the objects of ControlPlane cp1: applying Deployment \
             cp1-system/kube-apiserver (from templates/k8s/apiserver.yaml): deployments.apps \
             \"kube-apiserver\" is forbidden (403)"
        );
        let err = patch_status(409, "Conflict", "the object has been modified");
        assert_eq!(
            chain(&err),
            "failed to write the status of ControlPlane cp1: the object has been modified (409)"
        );
    }

    #[test]
    fn many_apply_failures_show_three_and_count_the_rest() {
        let failures = ApplyFailures((1..=5).map(|i| format!("object {i}")).collect());
        assert_eq!(
            failures.to_string(),
            "object 1; object 2; object 3 (and 2 more)"
        );
    }

    #[test]
    fn a_forbidden_request_says_what_rbac_is_missing() {
        let err = patch_status(
            403,
            "Forbidden",
            "controlplanes.tenancy.kflex.kubestellar.org \"cp1\" is forbidden",
        );
        let said = err.forbidden().expect("forbidden");
        assert!(
            said.contains("patch controlplanes/status") && said.contains("is forbidden"),
            "{said}"
        );
        assert_eq!(patch_status(409, "Conflict", "").forbidden(), None);
    }
}
