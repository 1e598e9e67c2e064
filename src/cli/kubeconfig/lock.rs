//! Exclusive access to kubeconfig files while kflex reads, edits and writes them back.
//!
//! The convention is kubectl's (client-go's `clientcmd`): a file `<kubeconfig>.lock` beside the
//! kubeconfig, created only if it does not exist and removed when the edit is done. So two kflex
//! commands, or kflex and kubectl, never write the same file from two different reads: without
//! it, parallel `kflex create`s lose each other's contexts. kubectl gives up at once when the
//! lock is held; kflex waits a little, since a concurrent kflex holds it for milliseconds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// How long an edit waits for other programs' locks before giving up.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);
const RETRY_EVERY: Duration = Duration::from_millis(20);

/// Held lock files, removed when dropped (also when the edit failed).
#[derive(Debug)]
pub struct Locks {
    held: Vec<PathBuf>,
}

impl Locks {
    /// Locks every kubeconfig in `paths`, in a fixed order so that two processes locking the
    /// same files cannot each hold one the other waits for.
    pub fn acquire(paths: &[PathBuf], wait: Duration) -> anyhow::Result<Self> {
        let mut ordered: Vec<&PathBuf> = paths.iter().collect();
        ordered.sort();
        ordered.dedup();
        let mut locks = Self { held: Vec::new() };
        let deadline = Instant::now() + wait;
        for path in ordered {
            let lock = lock_path(path);
            if let Some(directory) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
                super::files::create_private_dir(directory)?;
            }
            acquire_one(&lock, path, deadline, wait)?;
            locks.held.push(lock);
        }
        Ok(locks)
    }
}

impl Drop for Locks {
    fn drop(&mut self) {
        for lock in &self.held {
            // Nothing to do about a failure here: the next writer reports the stale lock.
            let _ = std::fs::remove_file(lock);
        }
    }
}

/// `<kubeconfig>.lock`, as client-go names it.
pub fn lock_path(kubeconfig: &Path) -> PathBuf {
    let mut name = kubeconfig.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn acquire_one(
    lock: &Path,
    kubeconfig: &Path,
    deadline: Instant,
    wait: Duration,
) -> anyhow::Result<()> {
    let mut said = false;
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(lock)
        {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "kubeconfig {} is locked by another program ({} exists) and stayed \
                         locked for {}s; if no kubectl or kflex is running, remove that file",
                        kubeconfig.display(),
                        lock.display(),
                        wait.as_secs()
                    );
                }
                if !said {
                    // A wait nobody is told about looks like a hang.
                    eprintln!(
                        "kubeconfig {} is locked by another program ({} exists); waiting up to \
                         {}s",
                        kubeconfig.display(),
                        lock.display(),
                        wait.as_secs()
                    );
                    said = true;
                }
                std::thread::sleep(RETRY_EVERY);
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!(
                        "locking kubeconfig {}: creating {}",
                        kubeconfig.display(),
                        lock.display()
                    )
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_released_when_dropped_and_blocks_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let held = Locks::acquire(std::slice::from_ref(&config), Duration::ZERO).unwrap();
        assert!(dir.path().join("config.lock").exists());
        let err = Locks::acquire(std::slice::from_ref(&config), Duration::from_millis(50))
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.lock exists"), "{err}");
        drop(held);
        assert!(!dir.path().join("config.lock").exists());
        Locks::acquire(&[config], Duration::ZERO).unwrap();
    }

    #[test]
    fn a_failed_acquisition_releases_the_locks_it_took() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(lock_path(&b), "").unwrap();
        Locks::acquire(&[b, a], Duration::ZERO).unwrap_err();
        assert!(!lock_path(&dir.path().join("a")).exists());
    }
}
