//! Why a reconcile failed: one variant per operation, each naming the ControlPlane and keeping
//! its cause, so that the retry policy and the metrics decide by the variant and by the API's
//! status code in the cause — never by a message. This module only describes failures; what to
//! do about one is `reconcile::error_policy`'s job.

use std::error::Error as StdError;
use std::fmt;

pub use crate::cluster::error::chain;

use super::apply::Failure;
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
        #[source]
        source: crate::cluster::Error,
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

/// The objects one pass could not apply, each with its cause.
#[derive(Debug)]
pub struct ApplyFailures(pub Vec<Failure>);

/// At most this many failures are spelled out; the rest are counted.
const SHOWN: usize = 3;

impl fmt::Display for ApplyFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.0.iter().take(SHOWN).map(Failure::describe).collect();
        f.write_str(&shown.join("; "))?;
        if self.0.len() > SHOWN {
            write!(f, " (and {} more)", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

impl ApplyFailures {
    /// The API answer that decides what the failures call for: a refusal by RBAC anywhere (the
    /// one an administrator must act on), else a conflict, else the first answer.
    fn api_status(&self) -> Option<&kube::core::Status> {
        let statuses: Vec<&kube::core::Status> = self
            .0
            .iter()
            .filter_map(|f| first_api_status(Some(f)))
            .collect();
        [403, 409]
            .iter()
            .find_map(|code| statuses.iter().find(|s| s.code == *code))
            .or(statuses.first())
            .copied()
    }
}

impl StdError for ApplyFailures {}

/// The first API answer in `err`'s chain of causes, `err` included.
fn first_api_status<'a>(
    err: Option<&'a (dyn StdError + 'static)>,
) -> Option<&'a kube::core::Status> {
    let mut cause = err;
    while let Some(current) = cause {
        if let Some(kube::Error::Api(status)) = current.downcast_ref::<kube::Error>() {
            return Some(status);
        }
        cause = current.source();
    }
    None
}

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
    /// causes (of the failed applies, the one [`ApplyFailures`] picks).
    pub fn api_status(&self) -> Option<&kube::core::Status> {
        match self {
            Self::Apply { source, .. } => source.api_status(),
            _ => first_api_status(self.source()),
        }
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

#[cfg(test)]
pub mod tests {
    use super::*;
    use kflex_core::manifest::ObjectKey;

    /// An error as the API answers it: `code` and its message.
    pub fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, reason)
                .with_code(code)
                .boxed(),
        )
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some("cp1-system".into()),
            name: name.into(),
        }
    }

    /// Deployment cp1-system/`name` refused with `code`.
    fn failed_apply(name: &str, code: u16) -> Failure {
        Failure::Write(crate::cluster::Error::Apply {
            key: key(name),
            origin: "templates/k8s/apiserver.yaml".into(),
            source: api_error(code, "", &format!("deployments.apps \"{name}\" is refused")),
        })
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
        // Under a pruning error.
        let prune = Error::Prune {
            name: "cp1".into(),
            source: crate::cluster::Error::ListMembers {
                plural: "deployments".into(),
                id: "x".into(),
                source: api_error(403, "Forbidden", "cannot list"),
            },
        };
        assert_eq!(prune.class(), Class::Forbidden);
        let missing = Error::Configuration {
            name: "cp1".into(),
            source: ConfigError::Missing {
                namespace: "kubeflex-system".into(),
            },
        };
        assert_eq!(missing.class(), Class::Configuration);
        // Of several failed applies, a refusal by RBAC decides, wherever it is in the list.
        let applied = |codes: &[u16]| Error::Apply {
            name: "cp1".into(),
            source: ApplyFailures(codes.iter().map(|code| failed_apply("x", *code)).collect()),
        };
        assert_eq!(applied(&[500, 403, 409]).class(), Class::Forbidden);
        assert_eq!(applied(&[500, 409]).class(), Class::Conflict);
        assert_eq!(applied(&[422]).class(), Class::Other);
        // A failure without an API answer has no code to go by.
        let taken = Error::Apply {
            name: "cp1".into(),
            source: ApplyFailures(vec![Failure::Taken {
                key: key("x"),
                owner: "cp2".into(),
            }]),
        };
        assert_eq!(taken.class(), Class::Other);
    }

    #[test]
    fn labels_are_stable_lower_case_names_of_the_operation() {
        assert_eq!(patch_status(500, "", "").label(), "patch_status");
        let apply = Error::Apply {
            name: "cp1".into(),
            source: ApplyFailures(Vec::new()),
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
        let err = Error::Apply {
            name: "cp1".into(),
            source: ApplyFailures(vec![failed_apply("kube-apiserver", 403)]),
        };
        assert_eq!(
            chain(&err),
            "failed to apply 1 of the objects of ControlPlane cp1: failed to apply Deployment \
             cp1-system/kube-apiserver (from templates/k8s/apiserver.yaml): deployments.apps \
             \"kube-apiserver\" is refused (403)"
        );
        let err = patch_status(409, "Conflict", "the object has been modified");
        assert_eq!(
            chain(&err),
            "failed to write the status of ControlPlane cp1: the object has been modified (409)"
        );
    }

    #[test]
    fn many_apply_failures_show_three_and_count_the_rest() {
        let failures = ApplyFailures(
            (1..=5)
                .map(|i| Failure::Taken {
                    key: key(&format!("d{i}")),
                    owner: "cp2".into(),
                })
                .collect(),
        );
        let said = failures.to_string();
        assert!(said.contains("cp1-system/d3 belongs"), "{said}");
        assert!(!said.contains("d4"), "{said}");
        assert!(said.ends_with(" (and 2 more)"), "{said}");
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
