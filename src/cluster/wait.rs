//! The waits a write depends on, on kube-runtime's watch-based conditions: a
//! CustomResourceDefinition established (so objects of its kind can follow), and an object
//! deleted to be replaced gone (so it can be created again). Each is bounded: an API server
//! that never gets there is an error naming the object, not a hang.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kflex_core::manifest::ObjectKey;
use kube::api::{Api, DynamicObject};
use kube::runtime::wait::{await_condition, conditions};

use super::Error;

/// How long an API server may take to establish a CRD or to finish a deletion.
pub const WAIT: Duration = Duration::from_secs(30);

/// Waits until CustomResourceDefinition `key` is established.
pub async fn established(client: &kube::Client, key: &ObjectKey) -> Result<(), Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let condition = await_condition(crds, &key.name, conditions::is_crd_established());
    match tokio::time::timeout(WAIT, condition).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(Error::Watch {
            key: key.clone(),
            what: "until it is established",
            source,
        }),
        Err(_) => Err(Error::NotEstablished {
            key: key.clone(),
            waited: WAIT,
        }),
    }
}

/// Waits until the object `key` with `uid` is gone from `api` (one created again since, with
/// another uid, counts as gone).
pub async fn gone(api: &Api<DynamicObject>, key: &ObjectKey, uid: &str) -> Result<(), Error> {
    let condition = await_condition(api.clone(), &key.name, conditions::is_deleted(uid));
    match tokio::time::timeout(WAIT, condition).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(Error::Watch {
            key: key.clone(),
            what: "until it is gone",
            source,
        }),
        Err(_) => Err(Error::StillThere {
            key: key.clone(),
            waited: WAIT,
        }),
    }
}
