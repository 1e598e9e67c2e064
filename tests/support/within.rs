//! A time limit for every async test: a hang fails that one test, with its name, instead of
//! stalling the whole run until CI gives up on it.

use std::future::Future;
use std::time::Duration;

/// Far above what any test takes on a loaded 2-core machine (the slowest run a PostgreSQL
/// server or the controller for a few seconds).
const LIMIT: Duration = Duration::from_secs(300);

/// Runs `test`, panicking if it is not done within [`LIMIT`].
pub async fn within<T>(test: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, test).await {
        Ok(done) => done,
        Err(_) => panic!("the test did not finish within {LIMIT:?}: a hang"),
    }
}
