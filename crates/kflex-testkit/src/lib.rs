//! An in-process fake Kubernetes API server, enough of one for kflex's controller: objects kept
//! as JSON by resource, get / list (label selectors) / watch (full or metadata-only) / create /
//! replace / delete, server-side apply (the body replaces what was there apart from status and
//! identity — unlike Kubernetes, fields other managers set are dropped too — with Jobs'
//! immutable template and bindings' immutable roleRef), lists in pages (`limit`, `continue`, as
//! kube's watcher asks for them), merge patches (with resourceVersion preconditions, the status
//! subresource, and finalizers that hold a deleted object), resource versions, generations where
//! Kubernetes keeps them, RBAC-like denials of a verb on a resource, pods' logs as the test sets
//! them, a log of every request, and injected failures.
//! It is a tower `Service`, so `kube::Client::new(fake.clone(), "default")` talks to it
//! directly.
//!
//! Not modelled: garbage collection, namespace termination, admission, field selectors other
//! than `metadata.name` (kube-runtime's waits for one object), managed fields and defaulting; dry runs only for server-side apply (what `kflex diff` uses).

mod wait;

pub use wait::eventually;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The body of the fake's answers: whole, or a stream of watch events.
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Namespaced resources, by plural (anything else is cluster-scoped).
const NAMESPACED: [&str; 24] = [
    "configmaps",
    "secrets",
    "services",
    "serviceaccounts",
    "pods",
    "persistentvolumeclaims",
    "endpoints",
    "events",
    "deployments",
    "statefulsets",
    "daemonsets",
    "replicasets",
    "jobs",
    "cronjobs",
    "roles",
    "rolebindings",
    "ingresses",
    "networkpolicies",
    "routes",
    "leases",
    "poddisruptionbudgets",
    "resourcequotas",
    "tlsroutes",
    "gateways",
];

/// One request as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    pub query: String,
}

impl Logged {
    /// Whether the request changes something (anything but GET).
    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

impl std::fmt::Display for Logged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// A failure to inject: requests of `method` whose path contains `path` get `status`, `times`
/// times.
#[derive(Clone, Debug)]
struct Failure {
    method: Method,
    path: String,
    status: u16,
    reason: String,
    times: usize,
}

/// Where an object lives: its collection (group, plural) and its namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    group: String,
    plural: String,
    namespace: Option<String>,
    name: String,
}

struct Watcher {
    group: String,
    plural: String,
    namespace: Option<String>,
    selector: Option<String>,
    /// `metadata.name=<name>`, the one field selector kube-runtime's waits use.
    name: Option<String>,
    metadata_only: bool,
    sender: mpsc::UnboundedSender<Bytes>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    version: u64,
    log: Vec<Logged>,
    failures: VecDeque<Failure>,
    /// (verb, plural) pairs answered with 403, as RBAC would.
    denied: Vec<(String, String)>,
    watchers: Vec<Watcher>,
    /// Every change, so a watch from a resourceVersion gets what happened since (as the API
    /// server's watch cache does), not only what happens after it connects.
    history: Vec<Change>,
    /// Pods' logs (`pods/<name>/log`), by namespace and pod, as the test sets them.
    pod_logs: BTreeMap<(String, String), String>,
}

/// One change, as watchers see it.
struct Change {
    version: u64,
    key: Key,
    kind: &'static str,
    object: Value,
}

impl Watcher {
    fn wants(&self, key: &Key, object: &Value) -> bool {
        self.group == key.group
            && self.plural == key.plural
            && (self.namespace.is_none() || self.namespace == key.namespace)
            && labels_match(object, self.selector.as_deref())
            && self.name.as_ref().is_none_or(|name| *name == key.name)
    }

    /// Sends one event; whether the watcher is still there.
    fn send(&self, kind: &str, object: &Value) -> bool {
        let object = if self.metadata_only {
            metadata_only(object)
        } else {
            object.clone()
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.sender.send(Bytes::from(line)).is_ok()
    }
}

/// The fake API server. Clones share state.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApi").finish_non_exhaustive()
    }
}

/// Which part of a list a request asks for (`limit`, `continue`).
#[derive(Clone, Copy, Debug, Default)]
struct Page<'a> {
    limit: Option<usize>,
    from: Option<&'a str>,
}

/// A parsed request path.
#[derive(Debug)]
struct Target {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (String::new(), (*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => ((*group).to_owned(), (*version).to_owned(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, plural, rest @ ..] => (Some((*namespace).to_owned()), {
            let mut v = vec![*plural];
            v.extend_from_slice(rest);
            v
        }),
        other => (None, other.to_vec()),
    };
    // `/api/v1/namespaces/x` is the Namespace x itself.
    let (plural, name, subresource) = match (namespace.as_deref(), rest.as_slice()) {
        (Some(namespace), []) => ("namespaces".to_owned(), Some(namespace.to_owned()), None),
        (_, [plural]) => ((*plural).to_owned(), None, None),
        (_, [plural, name]) => ((*plural).to_owned(), Some((*name).to_owned()), None),
        (_, [plural, name, sub]) => (
            (*plural).to_owned(),
            Some((*name).to_owned()),
            Some((*sub).to_owned()),
        ),
        _ => return None,
    };
    let namespace = if plural == "namespaces" {
        None
    } else {
        namespace
    };
    Some(Target {
        group,
        version,
        plural,
        namespace,
        name,
        subresource,
    })
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes).boxed())
        .unwrap_or_else(|_| Response::new(http_body_util::Empty::new().boxed()))
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                "reason": reason, "message": message}),
    )
}

/// Deep merge (JSON merge patch semantics: null removes, objects merge, the rest replaces).
pub fn merge(target: &mut Value, patch: &Value) {
    // RFC 7386: an object patch applies to an empty object where the target is not one.
    if patch.is_object() && !target.is_object() {
        *target = json!({});
    }
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// The name a `fieldSelector` of `metadata.name=<name>` asks for (the only field selector the
/// fake understands; any other is ignored, as if every object matched).
fn named(params: &BTreeMap<String, String>) -> Option<String> {
    params
        .get("fieldSelector")?
        .strip_prefix("metadata.name=")
        .map(str::to_owned)
}

fn labels_match(object: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let labels = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object);
    selector.split(',').all(|term| match term.split_once('=') {
        Some((key, value)) => {
            labels
                .and_then(|l| l.get(key.trim_end_matches('=')))
                .and_then(Value::as_str)
                == Some(value)
        }
        None => labels.is_some_and(|l| l.contains_key(term)),
    })
}

fn metadata_only(object: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": object["metadata"]})
}

impl State {
    fn bump(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    fn notify(&mut self, key: &Key, kind: &'static str, object: &Value) {
        self.watchers.retain(|watcher| {
            if watcher.wants(key, object) {
                watcher.send(kind, object)
            } else {
                !watcher.sender.is_closed()
            }
        });
        self.history.push(Change {
            version: self.version,
            key: key.clone(),
            kind,
            object: object.clone(),
        });
    }

    /// Stores `object` under `key` with a new resourceVersion (and generation when the spec
    /// changed), telling watchers.
    fn store(&mut self, key: &Key, mut object: Value, previous: Option<&Value>) -> Value {
        let version = self.bump();
        let metadata = object
            .as_object_mut()
            .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut);
        if let Some(metadata) = metadata {
            metadata.insert("resourceVersion".into(), json!(version));
            metadata.insert("name".into(), json!(key.name));
            if let Some(namespace) = &key.namespace {
                metadata.insert("namespace".into(), json!(namespace));
            }
            let old_uid = previous.and_then(|p| p.pointer("/metadata/uid")).cloned();
            metadata.insert(
                "uid".into(),
                old_uid.unwrap_or_else(|| json!(format!("uid-{version}"))),
            );
        }
        // Kubernetes keeps a generation for objects with a spec outside the core group
        // (Deployments, Jobs, CRDs, custom resources...), not for ConfigMaps, Secrets, RBAC...
        if object.get("spec").is_some() && !key.group.is_empty() {
            let old_generation = previous
                .and_then(|p| p.pointer("/metadata/generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let spec_changed = previous.is_none_or(|p| p.get("spec") != object.get("spec"));
            let generation = if spec_changed {
                old_generation + 1
            } else {
                old_generation.max(1)
            };
            if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.insert("generation".into(), json!(generation));
            }
        }
        let kind = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.objects.insert(key.clone(), object.clone());
        self.notify(key, kind, &object);
        object
    }

    fn remove(&mut self, key: &Key) -> Option<Value> {
        let removed = self.objects.remove(key)?;
        self.bump();
        self.notify(key, "DELETED", &removed);
        Some(removed)
    }
}

impl FakeApi {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A kube client talking to this fake.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    /// Every request so far.
    /// Sets the log of pod `namespace/name` (what `pods/<name>/log` answers).
    pub fn set_pod_log(&self, namespace: &str, name: &str, text: &str) {
        self.lock()
            .pod_logs
            .insert((namespace.to_owned(), name.to_owned()), text.to_owned());
    }

    pub fn log(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Forgets the requests so far.
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// The requests that change something.
    pub fn writes(&self) -> Vec<Logged> {
        self.log().into_iter().filter(Logged::is_write).collect()
    }

    /// Makes the next `times` requests of `method` whose path contains `path` fail with `code`.
    pub fn fail(&self, method: Method, path: &str, code: u16, reason: &str, times: usize) {
        self.lock().failures.push_back(Failure {
            method,
            path: path.to_owned(),
            status: code,
            reason: reason.to_owned(),
            times,
        });
    }

    /// Drops every injected failure still pending.
    pub fn heal(&self) {
        self.lock().failures.clear();
    }

    /// Answers every `verb` (get, list, watch, create, update, patch, delete) on `plural` with
    /// 403 Forbidden from now on, as RBAC would.
    pub fn deny(&self, verb: &str, plural: &str) {
        self.lock()
            .denied
            .push((verb.to_owned(), plural.to_owned()));
    }

    /// kflex's settings ConfigMap (kubeflex-system/kubeflex-config) with `data`, as `kflex init`
    /// installs it: without it the controller and the commands refuse to use defaults.
    pub fn put_kflex_config(&self, data: Value) -> Value {
        self.put(
            "",
            "configmaps",
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kubeflex-config", "namespace": "kubeflex-system"},
                "data": data}),
        )
    }

    /// Puts an object in place as if someone else wrote it (kind and plural are the caller's).
    pub fn put(&self, group: &str, plural: &str, object: Value) -> Value {
        let key = Key {
            group: group.to_owned(),
            plural: plural.to_owned(),
            namespace: object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned),
            name: object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        let mut state = self.lock();
        let previous = state.objects.get(&key).cloned();
        state.store(&key, object, previous.as_ref())
    }

    /// The object, if it exists.
    pub fn get(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = Key {
            group: group.to_owned(),
            plural: plural.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        };
        self.lock().objects.get(&key).cloned()
    }

    /// Edits an existing object as someone else would.
    pub fn edit(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Option<Value> {
        let mut object = self.get(group, plural, namespace, name)?;
        merge(&mut object, patch);
        Some(self.put(group, plural, object))
    }

    /// Every object of `group`/`plural`.
    pub fn objects(&self, group: &str, plural: &str) -> Vec<Value> {
        self.lock()
            .objects
            .iter()
            .filter(|(k, _)| k.group == group && k.plural == plural)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// How many objects of `group`/`plural` exist.
    pub fn count(&self, group: &str, plural: &str) -> usize {
        self.lock()
            .objects
            .keys()
            .filter(|k| k.group == group && k.plural == plural)
            .count()
    }

    async fn handle(&self, request: Request<kube::client::Body>) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let accept = request
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = request
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        {
            let mut state = self.lock();
            state.log.push(Logged {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
            });
            if let Some(target) = parse_path(&path) {
                let watch = query
                    .split('&')
                    .any(|p| p == "watch=true" || p == "watch=1");
                let verb = match (&method, &target.name) {
                    (&Method::GET, None) if watch => "watch",
                    (&Method::GET, None) => "list",
                    (&Method::GET, Some(_)) => "get",
                    (&Method::POST, _) => "create",
                    (&Method::PUT, _) => "update",
                    (&Method::PATCH, _) => "patch",
                    (&Method::DELETE, _) => "delete",
                    _ => "",
                };
                if state
                    .denied
                    .iter()
                    .any(|(v, p)| v == verb && *p == target.plural)
                {
                    return status(
                        403,
                        "Forbidden",
                        &format!(
                            "{} is forbidden: User \"fake\" cannot {verb} resource \"{}\" in API group \"{}\"",
                            target.plural, target.plural, target.group
                        ),
                    );
                }
            }
            let failure = state
                .failures
                .iter_mut()
                .find(|f| f.method == method && path.contains(&f.path) && f.times > 0);
            if let Some(failure) = failure {
                failure.times -= 1;
                let (code, reason) = (failure.status, failure.reason.clone());
                state.failures.retain(|f| f.times > 0);
                return status(code, &reason, "injected by the test");
            }
        }
        let params: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if path == "/version" && method == Method::GET {
            // What every API server answers, even without credentials (`kubectl version`).
            return json_response(
                StatusCode::OK,
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                        "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
                        "goVersion": "", "compiler": "", "platform": "linux/amd64"}),
            );
        }
        let Some(target) = parse_path(&path) else {
            return status(404, "NotFound", "no such path in the fake");
        };
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(value) => value,
                Err(err) => return status(400, "BadRequest", &err.to_string()),
            }
        };
        let metadata = accept.contains("as=PartialObjectMetadata");
        if method == Method::GET
            && target.plural == "pods"
            && target.subresource.as_deref() == Some("log")
        {
            let key = (
                target.namespace.clone().unwrap_or_default(),
                target.name.clone().unwrap_or_default(),
            );
            return match self.lock().pod_logs.get(&key) {
                Some(text) => Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "text/plain")
                    .body(http_body_util::Full::new(Bytes::from(text.clone())).boxed())
                    .unwrap_or_else(|_| Response::new(http_body_util::Empty::new().boxed())),
                None => status(404, "NotFound", "no log for this pod in the fake"),
            };
        }
        match (&method, &target.name) {
            (&Method::GET, None)
                if params.get("watch").is_some_and(|w| w == "true" || w == "1") =>
            {
                self.watch(
                    &target,
                    params.get("labelSelector").cloned(),
                    named(&params),
                    metadata,
                    params.get("resourceVersion").and_then(|v| v.parse().ok()),
                )
            }
            (&Method::GET, None) => self.list(
                &target,
                params.get("labelSelector").map(String::as_str),
                named(&params).as_deref(),
                metadata,
                Page {
                    limit: params.get("limit").and_then(|l| l.parse().ok()),
                    from: params.get("continue").map(String::as_str),
                },
            ),
            (&Method::GET, Some(name)) => self.read(&target, name, metadata),
            (&Method::POST, None) => self.create(&target, body),
            (&Method::POST, Some(_)) => {
                status(404, "NotFound", "no subresource creation in the fake")
            }
            (&Method::PUT, Some(name)) => self.replace(&target, name, body),
            (&Method::PATCH, Some(name)) if content_type.contains("apply-patch") => {
                let dry_run = params.get("dryRun").is_some_and(|value| value == "All");
                self.apply(&target, name, body, dry_run)
            }
            (&Method::PATCH, Some(name)) => self.merge_patch(&target, name, &body),
            (&Method::DELETE, Some(name)) => self.delete(&target, name),
            _ => status(405, "MethodNotAllowed", "not in the fake"),
        }
    }

    fn key(target: &Target, name: &str) -> Key {
        Key {
            group: target.group.clone(),
            plural: target.plural.clone(),
            namespace: target.namespace.clone(),
            name: name.to_owned(),
        }
    }

    fn read(&self, target: &Target, name: &str, metadata: bool) -> Response<Body> {
        match self.lock().objects.get(&Self::key(target, name)) {
            Some(object) if metadata => json_response(StatusCode::OK, &metadata_only(object)),
            Some(object) => json_response(StatusCode::OK, object),
            None => status(
                404,
                "NotFound",
                &format!("{} {name} not found", target.plural),
            ),
        }
    }

    fn list(
        &self,
        target: &Target,
        selector: Option<&str>,
        name: Option<&str>,
        metadata: bool,
        page: Page<'_>,
    ) -> Response<Body> {
        let state = self.lock();
        // A continue token is "<resourceVersion of the first page>/<items already listed>": the
        // list as a whole has the first page's version, and a watch from it replays what changed
        // while paging, as the API server's does.
        let (version, skip) = page
            .from
            .and_then(|token| token.split_once('/'))
            .and_then(|(version, skip)| Some((version.to_owned(), skip.parse::<usize>().ok()?)))
            .unwrap_or_else(|| (state.version.to_string(), 0));
        let limit = page.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut matching = state
            .objects
            .iter()
            .filter(|(k, _)| {
                k.group == target.group
                    && k.plural == target.plural
                    && (target.namespace.is_none() || k.namespace == target.namespace)
            })
            .filter(|(k, o)| labels_match(o, selector) && name.is_none_or(|n| n == k.name))
            .skip(skip);
        let items: Vec<Value> = matching
            .by_ref()
            .take(limit)
            .map(|(_, o)| {
                if metadata {
                    metadata_only(o)
                } else {
                    o.clone()
                }
            })
            .collect();
        let kind = if metadata {
            "PartialObjectMetadataList"
        } else {
            "List"
        };
        let api_version = if metadata {
            "meta.k8s.io/v1".to_owned()
        } else if target.group.is_empty() {
            target.version.clone()
        } else {
            format!("{}/{}", target.group, target.version)
        };
        let mut list_meta = json!({"resourceVersion": version});
        if matching.next().is_some() {
            list_meta["continue"] = json!(format!("{version}/{}", skip + items.len()));
        }
        json_response(
            StatusCode::OK,
            &json!({"apiVersion": api_version, "kind": kind, "metadata": list_meta, "items": items}),
        )
    }

    fn watch(
        &self,
        target: &Target,
        selector: Option<String>,
        name: Option<String>,
        metadata: bool,
        since: Option<u64>,
    ) -> Response<Body> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let watcher = Watcher {
            group: target.group.clone(),
            plural: target.plural.clone(),
            namespace: target.namespace.clone(),
            selector,
            name,
            metadata_only: metadata,
            sender,
        };
        let mut state = self.lock();
        if let Some(since) = since {
            for change in state.history.iter().filter(|c| c.version > since) {
                if watcher.wants(&change.key, &change.object) {
                    watcher.send(change.kind, &change.object);
                }
            }
        }
        state.watchers.push(watcher);
        drop(state);
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            let bytes = receiver.recv().await?;
            Some((Ok::<_, Infallible>(http_body::Frame::data(bytes)), receiver))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(http_body_util::StreamBody::new(stream).boxed())
            .unwrap_or_else(|_| Response::new(http_body_util::Empty::new().boxed()))
    }

    fn create(&self, target: &Target, body: Value) -> Response<Body> {
        let name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                body.pointer("/metadata/generateName")
                    .and_then(Value::as_str)
                    .map(|prefix| format!("{prefix}{}", self.lock().version + 1))
            });
        let Some(name) = name else {
            return status(422, "Invalid", "metadata.name is required");
        };
        let key = Self::key(target, &name);
        let mut state = self.lock();
        if state.objects.contains_key(&key) {
            return status(
                409,
                "AlreadyExists",
                &format!("{} {name} already exists", target.plural),
            );
        }
        let stored = state.store(&key, body, None);
        json_response(StatusCode::CREATED, &stored)
    }

    fn replace(&self, target: &Target, name: &str, body: Value) -> Response<Body> {
        let key = Self::key(target, name);
        let mut state = self.lock();
        let Some(previous) = state.objects.get(&key).cloned() else {
            return status(
                404,
                "NotFound",
                &format!("{} {name} not found", target.plural),
            );
        };
        let wanted = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        let current = previous
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if wanted.is_some() && wanted != current {
            return status(409, "Conflict", "the object has been modified");
        }
        let stored = state.store(&key, body, Some(&previous));
        json_response(StatusCode::OK, &stored)
    }

    /// Server-side apply; a dry run answers what would be stored and stores nothing.
    fn apply(&self, target: &Target, name: &str, body: Value, dry_run: bool) -> Response<Body> {
        let key = Self::key(target, name);
        let mut state = self.lock();
        let previous = state.objects.get(&key).cloned();
        let mut object = previous.clone().unwrap_or_else(|| json!({}));
        if let Some(previous) = &previous
            && target.group == "batch"
            && target.plural == "jobs"
            && previous.pointer("/spec/template") != body.pointer("/spec/template")
        {
            return status(
                422,
                "Invalid",
                &format!(
                    "Job.batch \"{name}\" is invalid: spec.template: Invalid value: field is immutable"
                ),
            );
        }
        if let Some(previous) = &previous
            && target.group == "rbac.authorization.k8s.io"
            && target.plural.ends_with("rolebindings")
            && previous.get("roleRef") != body.get("roleRef")
        {
            return status(
                422,
                "Invalid",
                &format!(
                    "RoleBinding.rbac.authorization.k8s.io \"{name}\" is invalid: roleRef: Invalid value: cannot change roleRef"
                ),
            );
        }
        // Server-side apply sets exactly the fields given; what kflex stops sending goes.
        let status_field = object.get("status").cloned();
        let kept_metadata = object.get("metadata").cloned();
        object = body;
        if let Some(status_field) = status_field {
            object["status"] = status_field;
        }
        if let Some(Value::Object(kept)) = kept_metadata {
            for field in [
                "uid",
                "creationTimestamp",
                "finalizers",
                "deletionTimestamp",
            ] {
                if let Some(value) = kept.get(field) {
                    object["metadata"][field] = value.clone();
                }
            }
        }
        if target.group == "apiextensions.k8s.io" && target.plural == "customresourcedefinitions" {
            // The fake serves every kind at once: a CRD is established as soon as it exists.
            object["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
        }
        let created = previous.is_none();
        if dry_run {
            if let (Some(previous), Some(metadata)) = (&previous, object.get_mut("metadata")) {
                for field in ["resourceVersion", "generation"] {
                    if let Some(value) = previous.pointer(&format!("/metadata/{field}")) {
                        metadata[field] = value.clone();
                    }
                }
            }
            return json_response(StatusCode::OK, &object);
        }
        let stored = state.store(&key, object, previous.as_ref());
        json_response(
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            &stored,
        )
    }

    fn merge_patch(&self, target: &Target, name: &str, patch: &Value) -> Response<Body> {
        let key = Self::key(target, name);
        let mut state = self.lock();
        let Some(previous) = state.objects.get(&key).cloned() else {
            return status(
                404,
                "NotFound",
                &format!("{} {name} not found", target.plural),
            );
        };
        if let Some(wanted) = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && previous
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                != Some(wanted)
        {
            return status(409, "Conflict", "the object has been modified");
        }
        let mut object = previous.clone();
        match target.subresource.as_deref() {
            Some("status") => {
                if let (Some(status_patch), Some(fields)) =
                    (patch.get("status"), object.as_object_mut())
                {
                    merge(fields.entry("status").or_insert(json!({})), status_patch);
                }
            }
            _ => {
                let mut without_status = patch.clone();
                if let Some(map) = without_status.as_object_mut() {
                    map.remove("status");
                }
                merge(&mut object, &without_status);
            }
        }
        let released = object.pointer("/metadata/deletionTimestamp").is_some()
            && object
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if released {
            state.remove(&key);
            return json_response(StatusCode::OK, &object);
        }
        let stored = state.store(&key, object, Some(&previous));
        json_response(StatusCode::OK, &stored)
    }

    fn delete(&self, target: &Target, name: &str) -> Response<Body> {
        let key = Self::key(target, name);
        let mut state = self.lock();
        let Some(previous) = state.objects.get(&key).cloned() else {
            return status(
                404,
                "NotFound",
                &format!("{} {name} not found", target.plural),
            );
        };
        let held = previous
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if held {
            if previous.pointer("/metadata/deletionTimestamp").is_none() {
                let mut object = previous.clone();
                object["metadata"]["deletionTimestamp"] = json!("2026-11-21T00:00:00Z");
                let stored = state.store(&key, object, Some(&previous));
                return json_response(StatusCode::OK, &stored);
            }
            return json_response(StatusCode::OK, &previous);
        }
        state.remove(&key);
        json_response(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
        )
    }
}

impl tower::Service<Request<kube::client::Body>> for FakeApi {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let fake = self.clone();
        Box::pin(async move { Ok(fake.handle(request).await) })
    }
}

/// Whether `plural` is namespaced in the fake's view.
pub fn is_namespaced(plural: &str) -> bool {
    NAMESPACED.contains(&plural)
}

impl FakeApi {
    /// Serves the fake over plain HTTP on a free loopback port, for processes that reach an API
    /// server through a kubeconfig (the `kflex controller` binary in benchmarks); its address.
    pub async fn serve_http(&self) -> std::io::Result<std::net::SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let fake = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let fake = fake.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: Request<hyper::body::Incoming>| {
                            let fake = fake.clone();
                            async move {
                                let (parts, body) = request.into_parts();
                                let bytes = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let request = Request::from_parts(
                                    parts,
                                    kube::client::Body::from(bytes.to_vec()),
                                );
                                Ok::<_, Infallible>(fake.handle(request).await)
                            }
                        },
                    );
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(address)
    }

    /// A kubeconfig for [`FakeApi::serve_http`]'s address.
    pub fn kubeconfig(address: std::net::SocketAddr) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{address}\n\
             users:\n- name: fake\n  user:\n    token: fake\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\n"
        )
    }
}
