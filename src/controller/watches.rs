//! The controller's watches: ControlPlanes, PostCreateHooks, the configuration ConfigMap, and
//! metadata-only, label-selected watches of the kinds control planes consist of. Each feeds a
//! cache (used while reconciling) and wakes the ControlPlanes it concerns.

use futures::stream::BoxStream;
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::ConfigMap;
use kflex_core::api::{ControlPlane, PostCreateHook};
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};

use super::caches::{MetaCaches, WATCHED_KINDS};
use super::config::CONFIG_MAP;

type Touched<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The caches and the streams that fill them; the streams must be polled (by the controller, or
/// by [`Watches::drive`]).
pub struct Watches {
    pub caches: MetaCaches,
    pub config: Store<ConfigMap>,
    pub hooks: Store<PostCreateHook>,
    pub(crate) config_stream: Touched<ConfigMap>,
    pub(crate) hook_stream: Touched<PostCreateHook>,
    pub(crate) member_streams: Vec<(ApiResource, Touched<PartialObjectMeta<DynamicObject>>)>,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("caches", &self.caches)
            .finish_non_exhaustive()
    }
}

fn reflected<K, S>(writer: reflector::store::Writer<K>, stream: S) -> Touched<K>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    stream
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .boxed()
}

/// OpenShift's Routes, watched on OpenShift.
pub const ROUTE: (&str, &str) = ("route.openshift.io/v1", "Route");
/// Gateway API's TLSRoutes, watched where the hosting cluster serves them.
pub const TLS_ROUTE: (&str, &str) = ("gateway.networking.k8s.io/v1", "TLSRoute");

impl Watches {
    /// The watches of kflex's objects through `client`, with `optional` kinds (as (apiVersion,
    /// kind): [`ROUTE`], [`TLS_ROUTE`]) that only some hosting clusters serve.
    pub fn new(client: &kube::Client, system_namespace: &str, optional: &[(&str, &str)]) -> Self {
        let (config, config_writer) = reflector::store();
        let config_api: Api<ConfigMap> = Api::namespaced(client.clone(), system_namespace);
        let config_stream = reflected(
            config_writer,
            watcher(
                config_api,
                watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}")),
            ),
        );
        let (hooks, hook_writer) = reflector::store();
        let hook_stream = reflected(
            hook_writer,
            watcher(
                Api::<PostCreateHook>::all(client.clone()),
                watcher::Config::default(),
            ),
        );
        let mut caches = MetaCaches::default();
        let mut member_streams = Vec::new();
        let kinds = WATCHED_KINDS.iter().chain(optional).copied();
        for (api_version, kind) in kinds {
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            let api: Api<PartialObjectMeta<DynamicObject>> =
                Api::all_with(client.clone(), &resource);
            let writer = reflector::store::Writer::new(resource.clone());
            let store = writer.as_reader();
            let events = watcher(api, watcher::Config::default().labels(CONTROL_PLANE_LABEL))
                .modify(super::caches::reduce);
            member_streams.push((resource.clone(), reflected(writer, events)));
            caches.insert(resource, store);
        }
        Self {
            caches,
            config,
            hooks,
            config_stream,
            hook_stream,
            member_streams,
        }
    }

    /// Polls every stream in the background (for use without a `Controller`).
    pub fn drive(&mut self) {
        fn spawn<S: Stream + Send + Unpin + 'static>(mut stream: S) {
            tokio::spawn(async move { while stream.next().await.is_some() {} });
        }
        spawn(std::mem::replace(
            &mut self.config_stream,
            futures::stream::empty().boxed(),
        ));
        spawn(std::mem::replace(
            &mut self.hook_stream,
            futures::stream::empty().boxed(),
        ));
        for (_, stream) in std::mem::take(&mut self.member_streams) {
            spawn(stream);
        }
    }
}

/// The ControlPlane an object of a control plane belongs to (its label).
pub fn owner_of<K: kube::Resource>(object: &K) -> Option<ObjectRef<ControlPlane>> {
    object
        .meta()
        .labels
        .as_ref()?
        .get(CONTROL_PLANE_LABEL)
        .map(|name| ObjectRef::new(name))
}

/// The ControlPlanes in `control_planes` that use `hook`.
pub fn users_of(
    control_planes: &Store<ControlPlane>,
    hook: &PostCreateHook,
) -> Vec<ObjectRef<ControlPlane>> {
    let Some(name) = hook.metadata.name.as_deref() else {
        return Vec::new();
    };
    control_planes
        .state()
        .iter()
        .filter(|cp| {
            cp.spec.post_create_hook.as_deref() == Some(name)
                || cp
                    .spec
                    .post_create_hooks
                    .iter()
                    .flatten()
                    .any(|u| u.hook_name == name)
        })
        .map(|cp| ObjectRef::from_obj(cp.as_ref()))
        .collect()
}
