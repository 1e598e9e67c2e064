//! What can go wrong writing to a cluster, one variant per operation. Each message names the
//! object and the operation; the API's own answer is the source, said once by whoever prints
//! the chain (the CLI's `describe_error`, the controller's conditions through [`chain`]).

use std::time::Duration;

use kflex_core::manifest::ObjectKey;

/// A failed write (or the read or wait a write depends on).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to find which API resource serves {key}")]
    Resolve {
        key: ObjectKey,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to read {key}")]
    Read {
        key: ObjectKey,
        #[source]
        source: kube::Error,
    },
    #[error("failed to apply {key} (from {origin})")]
    Apply {
        key: ObjectKey,
        /// The template or file the manifest came from.
        origin: String,
        #[source]
        source: kube::Error,
    },
    /// A StatefulSet's change refused as immutable: kflex never replaces one, its volumes hold
    /// data.
    #[error(
        "failed to apply {key} (from {origin}); kflex does not replace StatefulSets (their volumes \
         hold data): to apply this change, delete it with `kubectl delete --cascade=orphan` and \
         kflex creates it again"
    )]
    ApplyStatefulSet {
        key: ObjectKey,
        origin: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to dry-run apply {key}")]
    DryRun {
        key: ObjectKey,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete {key} to replace it")]
    ReplaceDelete {
        key: ObjectKey,
        #[source]
        source: kube::Error,
    },
    #[error("failed to create {key} again after deleting it to replace it")]
    ReplaceCreate {
        key: ObjectKey,
        #[source]
        source: kube::Error,
    },
    #[error("failed to watch {key} {what}")]
    Watch {
        key: ObjectKey,
        /// What was waited for: "being established", "going away".
        what: &'static str,
        #[source]
        source: kube::runtime::wait::Error,
    },
    #[error("{key} is still there {}s after it was deleted to be replaced", .waited.as_secs())]
    StillThere { key: ObjectKey, waited: Duration },
    #[error("{key} is not established after {}s", .waited.as_secs())]
    NotEstablished { key: ObjectKey, waited: Duration },
    #[error("failed to list the {plural} of ApplySet {id}")]
    ListMembers {
        plural: String,
        id: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to find which API resource serves {group_kind}")]
    ResolveKind {
        group_kind: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to delete {key}")]
    Delete {
        key: ObjectKey,
        #[source]
        source: kube::Error,
    },
}

/// `err` and its causes on one line, `: `-separated (for a condition, an Event or a log line,
/// which have no "caused by"). A `kube::Error` ends the chain, told briefly: its own message
/// already repeats its cause, and an API server's refusal is its message and code, without the
/// library's wrapping.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cause = Some(err);
    while let Some(current) = cause {
        if let Some(kube) = current.downcast_ref::<kube::Error>() {
            parts.push(match kube {
                kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
                other => other.to_string(),
            });
            break;
        }
        parts.push(current.to_string());
        cause = current.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_names_the_object_and_ends_with_the_api_servers_reason() {
        let status =
            kube::core::Status::failure("Job.batch \"j\" is invalid", "Invalid").with_code(422);
        let err = Error::Apply {
            key: ObjectKey {
                group: "batch".into(),
                kind: "Job".into(),
                namespace: Some("ns".into()),
                name: "j".into(),
            },
            origin: "templates/k8s/job.yaml".into(),
            source: kube::Error::Api(Box::new(status)),
        };
        let text = chain(&err);
        assert!(text.starts_with("failed to apply Job"), "{text}");
        assert!(text.contains("ns/j"), "{text}");
        assert!(text.contains("(from templates/k8s/job.yaml)"), "{text}");
        assert!(
            text.ends_with(": Job.batch \"j\" is invalid (422)"),
            "{text}"
        );
    }
}
