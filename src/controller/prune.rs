//! The controller's pruning: `cluster::prune` with the members of watched kinds taken from its
//! metadata caches instead of listed.

use std::collections::HashSet;

use kflex_core::manifest::ObjectKey;

pub use crate::cluster::prune::{Member, Pruned};
use crate::cluster::{self, Error, ownership::Members, trust::Owner};

use super::context::Context;

/// The members of ApplySet `id` of the kinds (and Secrets) `recorded` names, watched kinds
/// from the controller's caches.
pub async fn members(ctx: &Context, id: &str, recorded: &Members) -> Result<Vec<Member>, Error> {
    cluster::prune::list_members(&ctx.client, &ctx.resources, id, recorded, |group, kind| {
        ctx.caches.members(group, kind, id)
    })
    .await
}

/// Deletes `member` (already gone is fine).
pub async fn delete(ctx: &Context, member: &Member) -> Result<(), Error> {
    cluster::prune::delete(&ctx.client, &member.resource, &member.key).await
}

/// Deletes the members of ApplySet `id` (of what `recorded` names) that `wanted` does not hold
/// and that belong to `owner`; the others are left alone and reported.
pub async fn prune(
    ctx: &Context,
    id: &str,
    recorded: &Members,
    wanted: &HashSet<ObjectKey>,
    owner: &Owner<'_>,
) -> Result<Pruned, Error> {
    let members = members(ctx, id, recorded).await?;
    cluster::prune::prune(&ctx.client, id, members, wanted, owner).await
}
