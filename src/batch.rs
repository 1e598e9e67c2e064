//! Rendering many control planes at once, on every core. Each control plane renders
//! independently with one shared, read-only [`Renderer`]; results come back in name order.

use std::num::NonZeroUsize;

use kflex_core::api::ControlPlane;
use kflex_core::render::{HookCatalog, RenderError, Rendered, Renderer, check_shared_objects};

/// Renders `control_planes` sorted by name on up to `threads` threads, refusing duplicate names
/// and objects two control planes would share. Any error means no output.
pub fn render_batch(
    renderer: &Renderer,
    control_planes: &[ControlPlane],
    catalog: &HookCatalog,
    threads: NonZeroUsize,
) -> Result<Vec<Rendered>, RenderError> {
    let mut sorted: Vec<&ControlPlane> = control_planes.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    if let Some(pair) = sorted
        .windows(2)
        .find(|w| w[0].metadata.name == w[1].metadata.name)
    {
        return Err(RenderError::DuplicateControlPlane(
            pair[0].metadata.name.clone().unwrap_or_default(),
        ));
    }
    let chunk = sorted.len().div_ceil(threads.get()).max(1);
    let outputs = if sorted.len() <= 1 || threads.get() == 1 {
        sorted
            .iter()
            .map(|cp| renderer.render(cp, catalog))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        std::thread::scope(|scope| {
            let workers: Vec<_> = sorted
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|cp| renderer.render(cp, catalog))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut outputs = Vec::with_capacity(sorted.len());
            for worker in workers {
                // A panic in a worker is a bug; surface it rather than render partially.
                let part = worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                outputs.extend(part);
            }
            Ok::<_, RenderError>(outputs)
        })?
    };
    check_shared_objects(&outputs)?;
    Ok(outputs)
}

/// The threads to render with: one per available core.
pub fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}
