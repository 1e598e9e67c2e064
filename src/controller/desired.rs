//! What the controller applies for a ControlPlane: its render, with the ownership metadata that
//! ties each object to it, and what of the system namespace it may delete. The controller's
//! reconcile and `kflex create` / `kflex diff` (which show or refuse what the controller would
//! do) both take it from here, so they cannot drift apart.

use std::collections::HashSet;

use kflex_core::api::ControlPlane;
use kflex_core::manifest::{Manifest, ObjectKey};
use kflex_core::render::{HookCatalog, RenderError, Renderer};

use crate::cluster::ownership;

/// `cp` rendered with `renderer` and `catalog`, every object a member of its ApplySet and (outside
/// `system_namespace`) owned by it. A ControlPlane that does not exist yet (no uid) gets no
/// owner references: the controller adds them once it exists.
pub fn manifests(
    renderer: &Renderer,
    catalog: &HookCatalog,
    cp: &ControlPlane,
    system_namespace: &str,
) -> Result<Vec<Manifest>, RenderError> {
    let mut manifests = renderer.render(cp, catalog)?.manifests;
    ownership::decorate(&mut manifests, cp, system_namespace);
    if cp.metadata.uid.is_none() {
        for manifest in &mut manifests {
            if let Some(metadata) = manifest
                .object_mut()
                .get_mut("metadata")
                .and_then(serde_json::Value::as_object_mut)
            {
                metadata.remove("ownerReferences");
            }
        }
    }
    Ok(manifests)
}

/// The keys of `manifests` (what [`manifests`] gave for `cp`) and of `cp`'s cleanup Jobs: what
/// pruning and cleanup may delete in the system namespace (see `cluster::trust`). The error is
/// the cleanup render's; the controller then keeps to `manifests`, a smaller set, never larger.
pub fn deletable(
    renderer: &Renderer,
    cp: &ControlPlane,
    manifests: &[Manifest],
) -> Result<HashSet<ObjectKey>, RenderError> {
    let cleanup = renderer.render_cleanup(cp)?;
    Ok(manifests
        .iter()
        .chain(&cleanup)
        .map(Manifest::key)
        .collect())
}
