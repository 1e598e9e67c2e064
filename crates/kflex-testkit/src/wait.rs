//! Waiting in tests for what something running in the background does: on a condition, never
//! for a fixed time, so a test is as fast as the machine allows and slow machines only wait.

use std::time::Duration;

/// How long a condition may take before the test fails: far above what any takes on a loaded
/// 2-core machine, far below the whole test's limit.
const LIMIT: Duration = Duration::from_secs(30);
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// Returns once `check` holds; panics naming `what` if it does not within 30 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {LIMIT:?}"
        );
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_once_the_condition_holds_and_fails_naming_what_never_did() {
        let mut looks = 0;
        eventually("the third look", || {
            looks += 1;
            looks == 3
        })
        .await;
        assert_eq!(looks, 3);

        let never = tokio::spawn(eventually("the impossible", || false));
        let panic = never.await.expect_err("it gives up").into_panic();
        let message = panic.downcast_ref::<String>().expect("a message");
        assert!(
            message.contains("the impossible did not happen"),
            "{message}"
        );
    }
}
