//! Rendering many control planes at once, on every core. Each control plane is rendered and
//! then finished (formatted, split into files, ...) on the same worker thread, so its object
//! trees are built, used and freed there; results come back in name order.

use std::num::NonZeroUsize;

use kflex_core::api::ControlPlane;
use kflex_core::manifest::{Manifest, ObjectKey};
use kflex_core::render::{
    HookCatalog, RenderError, Rendered, Renderer, check_restore_sources, check_shared_objects,
    check_single_host,
};

/// One control plane after rendering and finishing.
#[derive(Debug)]
pub struct Finished<R> {
    pub control_plane: String,
    pub warnings: Vec<String>,
    pub output: R,
}

/// Renders `control_planes` sorted by name on up to `threads` threads and applies `finish` to
/// each result, refusing duplicate names, a second host control plane, and objects two control
/// planes would share — with each
/// other or with `rendered` (sets already rendered, such as the system manifests, described as
/// an error message should name them).
/// Any error means no output.
pub fn render_batch<R, E>(
    renderer: &Renderer,
    control_planes: &[ControlPlane],
    catalog: &HookCatalog,
    threads: NonZeroUsize,
    rendered: &[(&str, &[ObjectKey])],
    finish: impl Fn(Vec<Manifest>) -> Result<R, E> + Sync,
) -> Result<Vec<Finished<R>>, E>
where
    R: Send,
    E: Send + From<RenderError>,
{
    let mut sorted: Vec<&ControlPlane> = control_planes.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    if let Some(pair) = sorted
        .windows(2)
        .find(|w| w[0].metadata.name == w[1].metadata.name)
    {
        let name = pair[0].metadata.name.clone().unwrap_or_default();
        return Err(RenderError::DuplicateControlPlane(name).into());
    }
    check_single_host(sorted.iter().copied())?;
    check_restore_sources(sorted.iter().copied())?;
    let results = parallel_map(&sorted, threads, |cp| {
        let Rendered {
            control_plane,
            manifests,
            warnings,
        } = renderer.render(cp, catalog)?;
        let keys: Vec<ObjectKey> = manifests.iter().map(Manifest::key).collect();
        let output = finish(manifests)?;
        let finished = Finished {
            control_plane: control_plane.unwrap_or_default(),
            warnings,
            output,
        };
        Ok::<_, E>((finished, keys))
    })?;
    let owners: Vec<String> = results
        .iter()
        .map(|(f, _)| format!("ControlPlane {:?}", f.control_plane))
        .collect();
    let sets = owners
        .iter()
        .zip(&results)
        .map(|(owner, (_, keys))| (owner.as_str(), keys.as_slice()));
    check_shared_objects(rendered.iter().copied().chain(sets))?;
    Ok(results.into_iter().map(|(finished, _)| finished).collect())
}

/// `f` applied to every item on up to `threads` threads, results in item order; the first error
/// (in item order) wins.
pub fn parallel_map<T: Sync, R: Send, E: Send>(
    items: &[T],
    threads: NonZeroUsize,
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    if items.len() <= 1 || threads.get() == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads.get());
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut results = Vec::with_capacity(items.len());
        for worker in workers {
            // A panic in a worker is a bug; surface it rather than return partial output.
            let part = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            results.extend(part);
        }
        Ok(results)
    })
}

/// The threads to work with: one per available core.
pub fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_order_and_reports_the_first_error() {
        let items: Vec<u32> = (0..100).collect();
        let four = NonZeroUsize::new(4).unwrap();
        let doubled = parallel_map(&items, four, |i| Ok::<_, String>(i * 2)).unwrap();
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let err = parallel_map(
            &items,
            four,
            |i| if *i % 30 == 29 { Err(*i) } else { Ok(*i) },
        )
        .unwrap_err();
        assert_eq!(err, 29);
    }
}
