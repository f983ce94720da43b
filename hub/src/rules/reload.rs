//! The rules in force, replaced whole on a good reload and kept on a bad one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{RuleError, RuleSet};

/// A shared handle on the rules in force. Cloning shares the same rules and counters.
#[derive(Clone)]
pub struct RuleHandle {
    inner: Arc<Inner>,
}

struct Inner {
    rules: RwLock<Arc<RuleSet>>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Counts reload attempts, good or bad, so that a caller can wait for the next one.
    attempts: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for RuleHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleHandle").field("rules", &self.current()).field("stats", &self.stats()).finish()
    }
}

/// Reload counters, for `/metrics` and `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadStats {
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The error of the last failed reload (`file:line:col: message`); cleared by a good reload.
    pub last_error: Option<String>,
}

impl RuleHandle {
    pub fn new(rules: RuleSet) -> RuleHandle {
        RuleHandle {
            inner: Arc::new(Inner {
                rules: RwLock::new(Arc::new(rules)),
                reloads_ok: AtomicU64::new(0),
                reloads_failed: AtomicU64::new(0),
                last_error: Mutex::new(None),
                attempts: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// The rules in force (a snapshot: a reload does not change it under the caller).
    pub fn current(&self) -> Arc<RuleSet> {
        Arc::clone(&self.inner.rules.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Puts `rules` in force.
    pub fn replace(&self, rules: RuleSet) {
        *self.inner.rules.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(rules);
    }

    /// Loads `path` and puts it in force, giving the number of rules; on error the rules in force
    /// stay. Either way the counters are updated.
    pub fn reload_from(&self, path: &Path) -> Result<usize, RuleError> {
        match RuleSet::load(path) {
            Ok(rules) => {
                let n = rules.len();
                self.replace(rules);
                self.inner.reloads_ok.fetch_add(1, Ordering::Relaxed);
                *self.last_error() = None;
                self.inner.attempts.send_modify(|n| *n += 1);
                Ok(n)
            }
            Err(e) => {
                self.inner.reloads_failed.fetch_add(1, Ordering::Relaxed);
                *self.last_error() = Some(e.to_string());
                self.inner.attempts.send_modify(|n| *n += 1);
                Err(e)
            }
        }
    }

    /// Changes after every reload attempt, good or bad, once its counters are updated: wait on
    /// it rather than polling [`RuleHandle::stats`].
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.attempts.subscribe()
    }

    pub fn stats(&self) -> ReloadStats {
        ReloadStats {
            reloads_ok: self.inner.reloads_ok.load(Ordering::Relaxed),
            reloads_failed: self.inner.reloads_failed.load(Ordering::Relaxed),
            last_error: self.last_error().clone(),
        }
    }

    fn last_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner.last_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the watcher compares: modification time and length; none when the file cannot be read.
fn fingerprint(path: &Path) -> Option<(Option<SystemTime>, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

/// Polls `path` every `interval` and reloads it into `handle` when its modification time or
/// length differs from what it was when the watcher was spawned (start it right after loading the
/// rules the handle holds) or at the last reload. A failed reload is logged with its position and the old rules stay; it is
/// retried only when the file changes again. Stops when `cancel` is cancelled.
pub fn spawn_watcher(
    handle: RuleHandle,
    path: impl Into<PathBuf>,
    interval: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let path = path.into();
    // Taken now, not when the task first runs, so that a change made right after this call counts.
    let mut seen = fingerprint(&path);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
            let now = fingerprint(&path);
            if now == seen {
                continue;
            }
            seen = now;
            if seen.is_none() {
                tracing::error!(path = %path.display(), "rule file cannot be read; the rules in force stay");
                continue;
            }
            let loader = handle.clone();
            let file = path.clone();
            // Parsing compiles every expression: keep it off the async workers.
            let result = tokio::task::spawn_blocking(move || loader.reload_from(&file)).await;
            match result {
                Ok(Ok(n)) => tracing::info!(path = %path.display(), rules = n, "rules reloaded"),
                Ok(Err(e)) => tracing::error!(error = %e, "rule file refused; the rules in force stay"),
                Err(e) => tracing::error!(error = %e, "rule reload task failed; the rules in force stay"),
            }
        }
    })
}
