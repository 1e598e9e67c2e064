//! Every write kflex makes to a cluster from rendered manifests: server-side apply in install
//! order, the wait for a CustomResourceDefinition to be established before objects of its kind,
//! the replacement of objects the API cannot change in place (a Job's template, a binding's
//! roleRef), pruning an ApplySet's members, and the ownership metadata that ties them to their
//! ControlPlane. The controller, `kflex init`, `kflex diff` (dry runs) and the end-to-end suite
//! all write through here, so they agree on field manager, order and what may be replaced.
//!
//! It decides nothing about *whether* an object should be written from the controller's caches
//! or records (that is `controller::apply`), and it renders nothing.

pub mod apply;
pub mod drift;
pub mod error;
pub mod ownership;
pub mod prune;
pub mod resources;
pub mod trust;
mod wait;

use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;

pub use error::Error;

/// The field manager of everything applied from rendered manifests, by the controller and by
/// `kflex init` alike: the system manifests and control planes' objects then have one owner, so
/// neither undoes the other's fields and either can drop a field the other applied.
pub const FIELD_MANAGER: &str = "kflex";

/// The field manager of what a person's command writes that no render holds (the bootstrap
/// Secret of `kflex adopt`). Distinct from [`FIELD_MANAGER`] so that managed fields tell what a
/// person wrote from what kflex renders and keeps in shape.
pub const CLI_FIELD_MANAGER: &str = "kflex-cli";

/// The API of `resource`, in `namespace` when it is namespaced.
pub fn api_for(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    }
}
