//! The controller's watches: ControlPlanes, PostCreateHooks, the configuration ConfigMap, and
//! metadata-only, label-selected watches of the kinds control planes consist of. Each feeds a
//! cache (used while reconciling) and wakes the ControlPlanes it concerns — only for a change
//! that can matter to a reconcile: an event that leaves what kflex compares as it was (a
//! Deployment's status, a ControlPlane's own status write) wakes nothing, and neither does the
//! initial list (every ControlPlane is reconciled once at start anyway). At ten thousand control
//! planes each waking event is a full pass; see docs/controller.md, "At scale".

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::ConfigMap;
use kflex_core::api::{ControlPlane, PostCreateHook};
use kflex_core::render::metadata::CONTROL_PLANE_LABEL;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, predicates, watcher};

use super::caches::{Entry, KindCache, Located, MetaCaches, WATCHED_KINDS};
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

/// Reflects `stream` into `writer` and yields the objects whose change may matter to a
/// reconcile: deleted ones, and ones `changed(before, now)` says changed (`before` is `None` for
/// a new object). Nothing is yielded for the initial list: the controller reconciles every
/// ControlPlane at start, and waking them again from each kind's list would queue every control
/// plane once per kind. A later relist (after a watch expired) yields what changed meanwhile,
/// objects gone included.
fn changes<K, S>(
    writer: reflector::store::Writer<K>,
    dyntype: K::DynamicType,
    stream: S,
    changed: impl Fn(Option<&K>, &K) -> bool + Send + 'static,
) -> Touched<K>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let mut writer = writer;
    let reader = writer.as_reader();
    let mut listed = false;
    // The objects seen in the relist under way, to find the ones deleted while not watching.
    let mut relisted: HashSet<ObjectRef<K>> = HashSet::new();
    stream
        .default_backoff()
        .map_ok(move |event| {
            let mut touched = Vec::new();
            match &event {
                watcher::Event::Apply(obj) => {
                    let before = reader.get(&ObjectRef::from_obj_with(obj, dyntype.clone()));
                    if changed(before.as_deref(), obj) {
                        touched.push(obj.clone());
                    }
                }
                watcher::Event::Delete(obj) => touched.push(obj.clone()),
                watcher::Event::Init => relisted.clear(),
                watcher::Event::InitApply(obj) if listed => {
                    let key = ObjectRef::from_obj_with(obj, dyntype.clone());
                    if changed(reader.get(&key).as_deref(), obj) {
                        touched.push(obj.clone());
                    }
                    relisted.insert(key);
                }
                watcher::Event::InitApply(_) => {}
                watcher::Event::InitDone => {
                    if listed {
                        touched.extend(
                            reader
                                .state()
                                .iter()
                                .filter(|obj| {
                                    let key =
                                        ObjectRef::from_obj_with(obj.as_ref(), dyntype.clone());
                                    !relisted.contains(&key)
                                })
                                .map(|obj| (**obj).clone()),
                        );
                    }
                    relisted = HashSet::new();
                    listed = true;
                }
            }
            writer.apply_watcher_event(&event);
            futures::stream::iter(touched.into_iter().map(Ok))
        })
        .try_flatten()
        .boxed()
}

fn located(meta: &PartialObjectMeta<DynamicObject>) -> Located {
    (
        meta.metadata.namespace.clone(),
        meta.metadata.name.clone().unwrap_or_default(),
    )
}

/// Fills `cache` from a kind's watch `events`, yielding (as [`changes`] does, after the initial
/// list) the objects whose fingerprint moved — spec, labels, annotations; not status — or that
/// went: drift to correct.
fn members<S>(cache: KindCache, events: S) -> Touched<PartialObjectMeta<DynamicObject>>
where
    S: Stream<Item = Result<watcher::Event<PartialObjectMeta<DynamicObject>>, watcher::Error>>
        + Send
        + 'static,
{
    // The relist under way; it replaces the cache when complete.
    let mut relisted: HashMap<Located, Entry> = HashMap::new();
    events
        .default_backoff()
        .map_ok(move |event| {
            let mut touched = Vec::new();
            match event {
                watcher::Event::Apply(obj) => {
                    let entry = Entry::of(&obj);
                    let before = cache.insert(located(&obj), entry.clone());
                    if before.is_none_or(|b| b.fingerprint != entry.fingerprint) {
                        touched.push(obj);
                    }
                }
                watcher::Event::Delete(obj) => {
                    cache.remove(&located(&obj));
                    touched.push(obj);
                }
                watcher::Event::Init => relisted = HashMap::new(),
                watcher::Event::InitApply(obj) => {
                    let entry = Entry::of(&obj);
                    let at = located(&obj);
                    if cache.is_listed()
                        && cache
                            .get(&at)
                            .is_none_or(|b| b.fingerprint != entry.fingerprint)
                    {
                        touched.push(obj);
                    }
                    relisted.insert(at, entry);
                }
                watcher::Event::InitDone => {
                    let listed_before = cache.is_listed();
                    let gone_meanwhile = cache.replace(std::mem::take(&mut relisted));
                    if listed_before {
                        // Gone while not watched: their control planes are woken by their label.
                        touched.extend(
                            gone_meanwhile
                                .into_iter()
                                .map(|((namespace, name), entry)| gone(namespace, name, entry)),
                        );
                    }
                }
            }
            futures::stream::iter(touched.into_iter().map(Ok))
        })
        .try_flatten()
        .boxed()
}

/// An object known only from its cache entry, as far as waking its control plane needs.
fn gone(namespace: Option<String>, name: String, entry: Entry) -> PartialObjectMeta<DynamicObject> {
    PartialObjectMeta {
        types: None,
        metadata: kube::api::ObjectMeta {
            namespace,
            name: Some(name),
            labels: entry
                .control_plane
                .map(|cp| BTreeMap::from([(CONTROL_PLANE_LABEL.to_owned(), cp.into())])),
            ..Default::default()
        },
        _phantom: std::marker::PhantomData,
    }
}

/// What a ControlPlane's reconcile depends on besides its spec (which `generation` covers): its
/// labels, annotations (the pause annotation, the ApplySet's member list), finalizers and
/// deletion. Its status is not among them: the controller's own status writes wake nothing.
pub fn control_plane_relevant(cp: &ControlPlane) -> Option<u64> {
    let meta = &cp.metadata;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    predicates::generation(cp).hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
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
        // Only its data gives settings.
        let config_stream = changes(
            config_writer,
            (),
            watcher(
                config_api,
                watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}")),
            ),
            |before: Option<&ConfigMap>, now| before.is_none_or(|b| b.data != now.data),
        );
        let (hooks, hook_writer) = reflector::store();
        let hook_stream = changes(
            hook_writer,
            (),
            watcher(
                Api::<PostCreateHook>::all(client.clone()),
                watcher::Config::default(),
            ),
            |before: Option<&PostCreateHook>, now| {
                before
                    .is_none_or(|b| b.spec != now.spec || b.metadata.labels != now.metadata.labels)
            },
        );
        let mut caches = MetaCaches::default();
        let mut member_streams = Vec::new();
        let kinds = WATCHED_KINDS.iter().chain(optional).copied();
        for (api_version, kind) in kinds {
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            let api: Api<PartialObjectMeta<DynamicObject>> =
                Api::all_with(client.clone(), &resource);
            let cache = KindCache::default();
            let events = watcher(api, watcher::Config::default().labels(CONTROL_PLANE_LABEL));
            member_streams.push((resource.clone(), members(cache.clone(), events)));
            caches.insert(resource, cache);
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
