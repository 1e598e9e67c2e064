//! `kflex bootstrap password`: a random password under one key of a Secret, kept once made.

use clap::Args;

use super::{client, labels, report};
use crate::bootstrap::random;
use crate::bootstrap::secrets::{KubeSecrets, SecretStore, upsert};

/// Length of generated passwords (letters and digits: about 190 bits).
const LENGTH: usize = 32;

#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Namespace of the Secret.
    #[arg(long)]
    namespace: String,
    /// Name of the Secret.
    #[arg(long)]
    secret: String,
    /// Key holding the password.
    #[arg(long)]
    key: String,
}

pub async fn run(args: PasswordArgs) -> anyhow::Result<()> {
    let store = KubeSecrets::new(client().await?, &args.namespace);
    ensure(&store, &args.secret, &args.key).await?;
    Ok(())
}

/// Adds a password under `key` unless one is there; other keys are kept.
pub async fn ensure<S: SecretStore>(store: &S, secret: &str, key: &str) -> anyhow::Result<()> {
    let password = random::password(LENGTH)?;
    let outcome = upsert(store, secret, &labels(None), |current| {
        if current
            .and_then(|d| d.get(key))
            .is_some_and(|v| !v.is_empty())
        {
            return Ok(None);
        }
        let mut data = current.cloned().unwrap_or_default();
        data.insert(key.to_owned(), password.clone().into_bytes());
        Ok(Some(data))
    })
    .await?;
    report("Secret", store.namespace(), secret, outcome);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::secrets::MemorySecrets;

    #[test]
    fn a_password_is_made_once() {
        let store = MemorySecrets::new("kubeflex-system");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(ensure(&store, "pg", "postgres-password"))
            .unwrap();
        let first = store.data("pg").unwrap();
        assert_eq!(first["postgres-password"].len(), LENGTH);
        runtime
            .block_on(ensure(&store, "pg", "postgres-password"))
            .unwrap();
        assert_eq!(store.data("pg").unwrap(), first);
    }
}
