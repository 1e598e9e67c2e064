//! The bootstrap programs' Kubernetes API calls against a mocked API server, request by
//! request: what is sent (method, path, body) and how each answer — including 409 conflicts and
//! a Secret that appears between read and create — is handled.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::ServiceAccount;
use kflex::bootstrap::kubeconfig;
use kflex::bootstrap::secrets::{KubeSecrets, Outcome, SecretData, upsert};
use kflex::bootstrap::tokens::{
    ensure_adopted_identity, hosting_cluster, request_token, write_token_kubeconfig,
};
use kube::api::Api;
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One expected request and the answer to give.
struct Step {
    method: Method,
    path: &'static str,
    check: fn(&Value),
    status: StatusCode,
    answer: Value,
}

fn step(method: Method, path: &'static str, status: StatusCode, answer: Value) -> Step {
    Step {
        method,
        path,
        check: |_| {},
        status,
        answer,
    }
}

/// A client whose API server answers `steps` in order and fails the test on anything else.
fn mocked(steps: Vec<Step>) -> (kube::Client, tokio::task::JoinHandle<()>) {
    let (service, mut handle): (_, Handle) = tower_test::mock::pair();
    let server = tokio::spawn(async move {
        for (index, step) in steps.into_iter().enumerate() {
            let (request, respond) = handle.next_request().await.unwrap_or_else(|| {
                panic!("request {index} ({} {}) never came", step.method, step.path)
            });
            assert_eq!(request.method(), step.method, "request {index}");
            assert_eq!(request.uri().path(), step.path, "request {index}");
            let bytes = request.into_body().collect_bytes().await.expect("a body");
            if !bytes.is_empty() {
                let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
                (step.check)(&body);
            }
            let answer = serde_json::to_vec(&step.answer).expect("JSON");
            respond.send_response(
                Response::builder()
                    .status(step.status)
                    .header("content-type", "application/json")
                    .body(Body::from(answer))
                    .expect("a response"),
            );
        }
    });
    (kube::Client::new(service, "default"), server)
}

/// A GET of `path` answered 404.
fn missing(path: &'static str) -> Step {
    step(
        Method::GET,
        path,
        StatusCode::NOT_FOUND,
        status(404, "NotFound"),
    )
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
           "reason": reason, "message": format!("{reason} (mocked)")})
}

fn secret(name: &str, version: &str, data: &[(&str, &[u8])]) -> Value {
    use base64::Engine as _;
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                Value::from(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": "ns", "resourceVersion": version},
           "type": "Opaque", "data": data})
}

const SECRETS: &str = "/api/v1/namespaces/ns/secrets";
const SECRET: &str = "/api/v1/namespaces/ns/secrets/s";

fn wants(
    value: &str,
) -> impl FnMut(Option<&SecretData>) -> anyhow::Result<Option<SecretData>> + use<> {
    let wanted: SecretData = [("k".to_owned(), value.as_bytes().to_vec())].into();
    move |current| Ok((current != Some(&wanted)).then(|| wanted.clone()))
}

#[tokio::test]
async fn a_missing_secret_is_created_with_its_labels() {
    crate::within(async move {
        let mut create = step(
            Method::POST,
            SECRETS,
            StatusCode::CREATED,
            secret("s", "1", &[("k", b"v")]),
        );
        create.check = |body| {
            assert_eq!(body["metadata"]["name"], "s");
            assert_eq!(
                body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "kflex-bootstrap"
            );
            assert_eq!(body["data"]["k"], "dg==");
            assert!(body["metadata"].get("resourceVersion").is_none());
        };
        let (client, server) = mocked(vec![missing(SECRET), create]);
        let store = KubeSecrets::new(client, "ns");
        let labels = BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            "kflex-bootstrap".to_owned(),
        )]);
        let outcome = upsert(&store, "s", &labels, wants("v"))
            .await
            .expect("upsert");
        assert_eq!(outcome, Outcome::Created);
        server.await.expect("every request answered");
    })
    .await;
}

#[tokio::test]
async fn a_secret_that_appears_between_read_and_create_is_read_again() {
    crate::within(async move {
        let (client, server) = mocked(vec![
            missing(SECRET),
            step(
                Method::POST,
                SECRETS,
                StatusCode::CONFLICT,
                status(409, "AlreadyExists"),
            ),
            // Someone else wrote exactly what is wanted: nothing more to do.
            step(
                Method::GET,
                SECRET,
                StatusCode::OK,
                secret("s", "7", &[("k", b"v")]),
            ),
        ]);
        let store = KubeSecrets::new(client, "ns");
        let outcome = upsert(&store, "s", &BTreeMap::new(), wants("v"))
            .await
            .expect("upsert");
        assert_eq!(outcome, Outcome::Unchanged);
        server.await.expect("every request answered");
    })
    .await;
}

#[tokio::test]
async fn an_update_conflict_is_retried_on_the_new_version() {
    crate::within(async move {
        let mut first_put = step(
            Method::PUT,
            SECRET,
            StatusCode::CONFLICT,
            status(409, "Conflict"),
        );
        first_put.check = |body| assert_eq!(body["metadata"]["resourceVersion"], "1");
        let mut second_put = step(
            Method::PUT,
            SECRET,
            StatusCode::OK,
            secret("s", "3", &[("k", b"v")]),
        );
        second_put.check = |body| {
            assert_eq!(body["metadata"]["resourceVersion"], "2");
            // Labels someone else set are kept.
            assert_eq!(body["metadata"]["labels"]["team"], "a");
        };
        let mut relabelled = secret("s", "2", &[("k", b"older")]);
        relabelled["metadata"]["labels"] = json!({"team": "a"});
        let (client, server) = mocked(vec![
            step(
                Method::GET,
                SECRET,
                StatusCode::OK,
                secret("s", "1", &[("k", b"old")]),
            ),
            first_put,
            step(Method::GET, SECRET, StatusCode::OK, relabelled),
            second_put,
        ]);
        let store = KubeSecrets::new(client, "ns");
        let outcome = upsert(&store, "s", &BTreeMap::new(), wants("v"))
            .await
            .expect("upsert");
        assert_eq!(outcome, Outcome::Updated);
        server.await.expect("every request answered");
    })
    .await;
}

#[tokio::test]
async fn a_forbidden_write_is_an_error_naming_the_secret_without_its_data() {
    crate::within(async move {
        let (client, server) = mocked(vec![
            missing(SECRET),
            step(
                Method::POST,
                SECRETS,
                StatusCode::FORBIDDEN,
                status(403, "Forbidden"),
            ),
        ]);
        let store = KubeSecrets::new(client, "ns");
        let err = upsert(&store, "s", &BTreeMap::new(), wants("hunter2"))
            .await
            .expect_err("forbidden");
        let text = format!("{err:#}");
        assert!(
            text.contains("Secret ns/s") && text.contains("403"),
            "{text}"
        );
        assert!(
            !text.contains("hunter2") && !text.contains("aHVudGVyMg"),
            "{text}"
        );
        server.await.expect("every request answered");
    })
    .await;
}

fn jwt(issued: i64, expires: i64) -> String {
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!(r#"{{"iat":{issued},"exp":{expires}}}"#));
    format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln")
}

fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .expect("a time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formatted")
}

const NOW: i64 = 1_800_000_000;

fn token_answer(lifetime: i64) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
           "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": lifetime},
           "status": {"token": jwt(NOW, NOW + lifetime), "expirationTimestamp": rfc3339(NOW + lifetime)}})
}

#[tokio::test]
async fn host_kubeconfig_requests_a_bound_token_and_writes_the_kubeconfig() {
    crate::within(async move {
        let mut token = step(
            Method::POST,
            "/api/v1/namespaces/ns/serviceaccounts/hosting/token",
            StatusCode::CREATED,
            token_answer(3600),
        );
        token.check = |body| {
            assert_eq!(body["kind"], "TokenRequest");
            assert_eq!(body["spec"]["expirationSeconds"], 3600);
        };
        let mut create = step(
            Method::POST,
            SECRETS,
            StatusCode::CREATED,
            secret("admin-kubeconfig", "1", &[]),
        );
        create.check = |body| {
            use base64::Engine as _;
            let yaml = base64::engine::general_purpose::STANDARD
                .decode(
                    body["data"]["kubeconfig-incluster"]
                        .as_str()
                        .expect("the key"),
                )
                .expect("base64");
            let parsed = kubeconfig::parse(&yaml).expect("a kubeconfig");
            let current = kubeconfig::current(&parsed).expect("current");
            assert_eq!(current.server(), Some("https://kubernetes.default.svc"));
            assert_eq!(current.context.name, "hosting");
            assert_eq!(current.token(), Some(jwt(NOW, NOW + 3600)));
            assert_eq!(
                body["data"].as_object().expect("data").len(),
                1,
                "one key only"
            );
        };
        let (client, server) = mocked(vec![
            missing("/api/v1/namespaces/ns/secrets/admin-kubeconfig"),
            token,
            missing("/api/v1/namespaces/ns/secrets/admin-kubeconfig"),
            create,
        ]);
        let store = KubeSecrets::new(client.clone(), "ns");
        let accounts: Api<ServiceAccount> = Api::namespaced(client, "ns");
        let cluster = hosting_cluster("hosting", "https://kubernetes.default.svc", "CA");
        let outcome = write_token_kubeconfig(
            &store,
            "admin-kubeconfig",
            "kubeconfig-incluster",
            &BTreeMap::new(),
            &cluster,
            ("hosting", None),
            NOW,
            || request_token(&accounts, "ns", "hosting", Duration::from_secs(3600), NOW),
        )
        .await
        .expect("written");
        assert_eq!(outcome, Outcome::Created);
        server.await.expect("every request answered");
    })
    .await;
}

#[tokio::test]
async fn a_shorter_token_than_asked_for_is_refused_with_the_reason() {
    crate::within(async move {
        let (client, server) = mocked(vec![step(
            Method::POST,
            "/api/v1/namespaces/ns/serviceaccounts/hosting/token",
            StatusCode::CREATED,
            token_answer(3600),
        )]);
        let accounts: Api<ServiceAccount> = Api::namespaced(client, "ns");
        let err = request_token(&accounts, "ns", "hosting", Duration::from_secs(86_400), NOW)
            .await
            .expect_err("capped by the API server");
        let text = err.to_string();
        assert!(
            text.contains("3600s instead of 86400s")
                && text.contains("service-account-max-token-expiration"),
            "{text}"
        );
        server.await.expect("every request answered");
    })
    .await;
}

#[tokio::test]
async fn a_fresh_token_kubeconfig_is_left_alone_without_asking_for_a_token() {
    crate::within(async move {
        let cluster = hosting_cluster("hosting", "https://kubernetes.default.svc", "CA");
        let current = kubeconfig::single(
            cluster.clone(),
            "hosting",
            kubeconfig::Credentials::Token(&jwt(NOW - 60, NOW + 3540)),
            "hosting",
            None,
        );
        let yaml = kubeconfig::to_yaml(&current).expect("YAML");
        let stored = secret(
            "admin-kubeconfig",
            "4",
            &[("kubeconfig-incluster", yaml.as_bytes())],
        );
        let (client, server) = mocked(vec![step(
            Method::GET,
            "/api/v1/namespaces/ns/secrets/admin-kubeconfig",
            StatusCode::OK,
            stored,
        )]);
        let store = KubeSecrets::new(client, "ns");
        let outcome = write_token_kubeconfig(
            &store,
            "admin-kubeconfig",
            "kubeconfig-incluster",
            &BTreeMap::new(),
            &cluster,
            ("hosting", None),
            NOW,
            || async { panic!("no token may be requested for a fresh kubeconfig") },
        )
        .await
        .expect("checked");
        assert_eq!(outcome, Outcome::Unchanged);
        server.await.expect("every request answered");
    })
    .await;
}

fn binding(subject: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": "kubeflex-clusterrolebinding"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
           "subjects": [{"kind": "ServiceAccount", "name": subject, "namespace": "kube-system"}]})
}

const ADOPTED_BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
const ADOPTED_BINDING: &str =
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeflex-clusterrolebinding";

#[tokio::test]
async fn adoption_creates_kubeflex_identity_on_the_adopted_cluster_once() {
    crate::within(async move {
        let mut account = step(
            Method::POST,
            "/api/v1/namespaces/kube-system/serviceaccounts",
            StatusCode::CONFLICT,
            status(409, "AlreadyExists"),
        );
        account.check = |body| assert_eq!(body["metadata"]["name"], "kubeflex");
        let mut create_binding = step(
            Method::POST,
            ADOPTED_BINDINGS,
            StatusCode::CREATED,
            binding("kubeflex"),
        );
        create_binding.check = |body| {
            assert_eq!(body["roleRef"]["name"], "cluster-admin");
            assert_eq!(body["subjects"][0]["name"], "kubeflex");
            assert_eq!(body["subjects"][0]["namespace"], "kube-system");
        };
        let (client, server) = mocked(vec![
            account,
            create_binding,
            step(
                Method::GET,
                ADOPTED_BINDING,
                StatusCode::OK,
                binding("kubeflex"),
            ),
        ]);
        ensure_adopted_identity(&client).await.expect("prepared");
        server.await.expect("every request answered");
    })
    .await;
}

#[tokio::test]
async fn a_binding_of_that_name_to_someone_else_is_refused() {
    crate::within(async move {
        let (client, server) = mocked(vec![
            step(
                Method::POST,
                "/api/v1/namespaces/kube-system/serviceaccounts",
                StatusCode::CREATED,
                json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "kubeflex", "namespace": "kube-system"}}),
            ),
            step(
                Method::POST,
                ADOPTED_BINDINGS,
                StatusCode::CONFLICT,
                status(409, "AlreadyExists"),
            ),
            step(
                Method::GET,
                ADOPTED_BINDING,
                StatusCode::OK,
                binding("somebody-else"),
            ),
        ]);
        let err = ensure_adopted_identity(&client)
            .await
            .expect_err("not ours");
        assert!(
            err.to_string().contains("does not bind cluster-admin"),
            "{err}"
        );
        server.await.expect("every request answered");
    })
    .await;
}

/// The off-cluster kubeconfig in `body`'s `key`, decoded: its server and certificate name.
fn published_endpoint(body: &Value, key: &str) -> (String, Option<String>) {
    use base64::Engine as _;
    let encoded = body["data"][key].as_str().expect("the key is written");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    let parsed = kubeconfig::parse(&bytes).expect("a kubeconfig");
    let current = kubeconfig::current(&parsed).expect("a current context");
    (
        current.server().expect("a server").to_owned(),
        current.tls_server_name().map(str::to_owned),
    )
}

fn k3s_source(dir: &std::path::Path) -> kflex::bootstrap::publish::Source {
    let config = kubeconfig::single(
        kubeconfig::cluster("default", "https://127.0.0.1:6443", "CA"),
        "default",
        kubeconfig::Credentials::Token("t"),
        "default",
        None,
    );
    let path = dir.join("kubeconfig.yaml");
    std::fs::write(&path, kubeconfig::to_yaml(&config).expect("YAML")).expect("written");
    kflex::bootstrap::publish::Source::File(path)
}

/// One pass of the k3s publisher with `loadBalancer.publishAddress`: it reads the API Service,
/// and the off-cluster key names the load balancer's address, with `<cp>.<domain>` as the name
/// the certificate is checked against; the in-cluster key is as always.
async fn publish_once(service: Step, create_check: fn(&Value)) {
    use kflex::bootstrap::address;
    use kflex::bootstrap::publish::{Published, publish};
    let mut create = step(
        Method::POST,
        "/api/v1/namespaces/edge-system/secrets",
        StatusCode::CREATED,
        secret("k3s-config", "1", &[]),
    );
    create.check = create_check;
    let (client, server) = mocked(vec![
        service,
        missing("/api/v1/namespaces/edge-system/secrets/k3s-config"),
        create,
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let found = address::read(&client, "edge-system", "k3s")
        .await
        .expect("the Service read");
    let published = [
        Published {
            key: "config".into(),
            endpoint: address::endpoint("https://edge.example.com:9443", found.as_deref())
                .expect("an endpoint"),
        },
        Published::at("config-incluster", "https://k3s.edge-system.svc"),
    ];
    let store = KubeSecrets::new(client, "edge-system");
    let outcome = publish(
        &store,
        "k3s-config",
        &k3s_source(dir.path()),
        &published,
        false,
        &BTreeMap::new(),
    )
    .await
    .expect("published");
    assert_eq!(outcome, Some(Outcome::Created));
    server.await.expect("every request answered");
}

const K3S_SERVICE: &str = "/api/v1/namespaces/edge-system/services/k3s";

#[tokio::test]
async fn the_load_balancer_address_is_published_with_the_host_as_certificate_name() {
    crate::within(async move {
        let service = step(
            Method::GET,
            K3S_SERVICE,
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "k3s", "namespace": "edge-system"},
               "spec": {"type": "LoadBalancer"},
               "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}),
        );
        publish_once(service, |body| {
            assert_eq!(
                published_endpoint(body, "config"),
                (
                    "https://203.0.113.7:9443".to_owned(),
                    Some("edge.example.com".to_owned())
                )
            );
            assert_eq!(
                published_endpoint(body, "config-incluster"),
                ("https://k3s.edge-system.svc".to_owned(), None)
            );
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn until_the_load_balancer_has_an_address_the_host_is_published() {
    crate::within(async move {
        let pending = step(
            Method::GET,
            K3S_SERVICE,
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "k3s", "namespace": "edge-system"},
               "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}}),
        );
        publish_once(pending, |body| {
            assert_eq!(
                published_endpoint(body, "config"),
                ("https://edge.example.com:9443".to_owned(), None)
            );
        })
        .await;
        // A Service not applied yet is no address either.
        publish_once(missing(K3S_SERVICE), |body| {
            assert_eq!(
                published_endpoint(body, "config"),
                ("https://edge.example.com:9443".to_owned(), None)
            );
        })
        .await;
    })
    .await;
}
