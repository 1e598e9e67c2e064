//! `kflex controller`: KubeFlex's operator rebuilt on the renderer. For each ControlPlane the
//! desired state is exactly what `kflex render` prints for it; the controller applies it with
//! server-side apply, prunes what is no longer rendered, and reports status.

pub mod apply;
pub mod caches;
pub mod cleanup;
pub mod config;
pub mod context;
pub mod desired;
pub mod error;
pub mod events;
pub mod exposure;
pub mod metrics;
pub mod prune;
pub mod readiness;
pub mod reconcile;
pub mod run;
pub mod server;
pub mod status;
pub mod watches;

use kflex_core::settings::Settings;

use context::Context;

/// The settings from the configuration ConfigMap (an error when it does not exist).
fn settings_for(ctx: &Context) -> Result<Settings, config::ConfigError> {
    ctx.renderers
        .settings(&ctx.system_namespace, ctx.config_data().as_ref())
}

/// The context's time as RFC 3339, as conditions hold it.
fn timestamp(ctx: &Context) -> String {
    time::OffsetDateTime::from_unix_timestamp((ctx.clock)())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
