//! Bringing a control plane's kubeconfig into the user's: read the Secret its status names,
//! rename its entries to `<cp>`, `<cp>-cluster`, `<cp>-admin`, mark the context with kflex's
//! extension and make it current. A host control plane has no kubeconfig usable from outside
//! the cluster (it *is* the hosting cluster): its context reaches the hosting cluster with the
//! hosting context's cluster and user. Fetching talks to the cluster; merging is a separate,
//! quick step so that it can run under the kubeconfig lock ([`Kubeconfigs::update`]).

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Secret;
use kflex_core::api::ControlPlane;
use kube::Api;
use serde_json::{Map, Value, json};

use super::kubeconfig::{EntryNames, Kubeconfigs, Section, files};

/// A control plane's cluster, user and namespace, ready to be merged into the user's kubeconfig.
#[derive(Clone, Debug)]
pub struct Entries {
    control_plane: String,
    cluster: Value,
    user: Value,
    namespace: Option<String>,
}

/// Reads `cp`'s entries: from the Secret its status names, or, for a host control plane, the
/// hosting context's own.
pub async fn fetch(
    kubeconfigs: &Kubeconfigs,
    hosting_context: &str,
    client: &kube::Client,
    cp: &ControlPlane,
) -> anyhow::Result<Entries> {
    let name = cp.metadata.name.as_deref().unwrap_or_default();
    let secret_ref = cp
        .status
        .as_ref()
        .and_then(|status| status.secret_ref.as_ref())
        .with_context(|| {
            format!(
                "ControlPlane {name} has no kubeconfig yet (its status.secretRef is empty); \
                 wait until it is Ready (`kflex list`)"
            )
        })?;
    let (cluster, user, namespace) = if secret_ref.key.is_empty() {
        hosting_entries(kubeconfigs, hosting_context)?
    } else {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &secret_ref.namespace);
        let where_ = format!(
            "Secret {}/{} (status.secretRef of ControlPlane {name})",
            secret_ref.namespace, secret_ref.name
        );
        let secret = secrets
            .get_opt(&secret_ref.name)
            .await
            .with_context(|| format!("reading {where_}"))?
            .with_context(|| format!("{where_} does not exist yet"))?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(&secret_ref.key))
            .with_context(|| format!("{where_} has no key {:?}", secret_ref.key))?;
        let text = std::str::from_utf8(&bytes.0)
            .with_context(|| format!("{where_}, key {:?}: not UTF-8", secret_ref.key))?;
        let document =
            files::parse(text).with_context(|| format!("{where_}, key {:?}", secret_ref.key))?;
        served_entries(&document).with_context(|| format!("{where_}, key {:?}", secret_ref.key))?
    };
    Ok(Entries {
        control_plane: name.to_owned(),
        cluster,
        user,
        namespace,
    })
}

impl Entries {
    /// Adds (or replaces) the control plane's entries and makes its context current; the
    /// hosting context is recorded if none is yet.
    pub fn merge_into(
        &self,
        kubeconfigs: &mut Kubeconfigs,
        hosting_context: &str,
    ) -> anyhow::Result<()> {
        let names = EntryNames::of(&self.control_plane);
        kubeconfigs.upsert(
            Section::Clusters,
            json!({"name": names.cluster, "cluster": self.cluster}),
        )?;
        kubeconfigs.upsert(
            Section::Users,
            json!({"name": names.user, "user": self.user}),
        )?;
        let mut context = Map::new();
        context.insert("cluster".into(), Value::String(names.cluster.clone()));
        context.insert("user".into(), Value::String(names.user.clone()));
        if let Some(namespace) = &self.namespace {
            context.insert("namespace".into(), Value::String(namespace.clone()));
        }
        // Replacing the context drops a stale extension; kflex's is written again below.
        kubeconfigs.upsert(
            Section::Contexts,
            json!({"name": names.context, "context": context}),
        )?;
        kubeconfigs.set_control_plane(&names.context, &self.control_plane)?;
        if kubeconfigs.hosting_context().is_none() {
            kubeconfigs.set_hosting_context(hosting_context)?;
        }
        kubeconfigs.set_current_context(&names.context)
    }
}

type EntryBodies = (Value, Value, Option<String>);

/// The hosting context's cluster and user, for a host control plane.
fn hosting_entries(
    kubeconfigs: &Kubeconfigs,
    hosting_context: &str,
) -> anyhow::Result<EntryBodies> {
    let context = kubeconfigs
        .body(Section::Contexts, hosting_context)
        .with_context(|| format!("there is no context {hosting_context:?} in the kubeconfig"))?;
    let field = |key: &str| context.get(key).and_then(Value::as_str).unwrap_or_default();
    let cluster = kubeconfigs
        .body(Section::Clusters, field("cluster"))
        .with_context(|| {
            format!(
                "context {hosting_context:?} names cluster {:?}, which is not in the kubeconfig",
                field("cluster")
            )
        })?;
    let user = kubeconfigs
        .body(Section::Users, field("user"))
        .with_context(|| {
            format!(
                "context {hosting_context:?} names user {:?}, which is not in the kubeconfig",
                field("user")
            )
        })?;
    Ok((
        Value::Object(cluster.clone()),
        Value::Object(user.clone()),
        None,
    ))
}

/// The current context of a served kubeconfig (or its only one): its cluster, user and
/// namespace.
pub fn served_entries(document: &Map<String, Value>) -> anyhow::Result<EntryBodies> {
    let named = |section: &str, name: &str| -> Option<Value> {
        let body = match section {
            "clusters" => "cluster",
            "users" => "user",
            _ => "context",
        };
        document
            .get(section)?
            .as_array()?
            .iter()
            .find(|entry| entry.get("name").and_then(Value::as_str) == Some(name))?
            .get(body)
            .cloned()
    };
    let contexts = document
        .get("contexts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let context_name = match document.get("current-context").and_then(Value::as_str) {
        Some(current) if !current.is_empty() => current.to_owned(),
        _ => match contexts {
            [only] => only
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => bail!(
                "the kubeconfig has {} contexts and no current context",
                contexts.len()
            ),
        },
    };
    let context = named("contexts", &context_name)
        .with_context(|| format!("the kubeconfig has no context {context_name:?}"))?;
    let field = |key: &str| {
        context
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let cluster = named("clusters", &field("cluster")).with_context(|| {
        format!(
            "context {context_name:?} names cluster {:?}, which is not in the kubeconfig",
            field("cluster")
        )
    })?;
    let user = named("users", &field("user")).with_context(|| {
        format!(
            "context {context_name:?} names user {:?}, which is not in the kubeconfig",
            field("user")
        )
    })?;
    let namespace = Some(field("namespace")).filter(|namespace| !namespace.is_empty());
    Ok((cluster, user, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_context_of_a_served_kubeconfig_is_taken() {
        let document = files::parse(
            "apiVersion: v1\nkind: Config\ncurrent-context: b\n\
             clusters:\n- name: ca\n  cluster: {server: 'https://a'}\n- name: cb\n  cluster: {server: 'https://b'}\n\
             users:\n- name: ub\n  user: {token: t}\n\
             contexts:\n- name: a\n  context: {cluster: ca, user: ub}\n- name: b\n  context: {cluster: cb, user: ub, namespace: ns}\n",
        )
        .unwrap();
        let (cluster, user, namespace) = served_entries(&document).unwrap();
        assert_eq!(cluster, json!({"server": "https://b"}));
        assert_eq!(user, json!({"token": "t"}));
        assert_eq!(namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn a_served_kubeconfig_naming_a_missing_user_is_refused() {
        let document = files::parse(
            "clusters:\n- name: c\n  cluster: {server: 'https://c'}\n\
             contexts:\n- name: only\n  context: {cluster: c, user: nobody}\n",
        )
        .unwrap();
        let err = served_entries(&document).unwrap_err();
        assert!(err.to_string().contains("\"nobody\""), "{err}");
    }
}
