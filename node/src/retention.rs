//! Retention: raw readings are kept for a configured time, then only as per-minute and per-hour
//! aggregates, which expire in turn, so that the database stays flat under a steady load.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{Retention, Store};

/// The horizons of one pass at `now_us`.
pub fn policy(now_us: i64, raw: Duration, minute: Duration, hour: Duration) -> Retention {
    let back = |d: Duration| now_us.saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Retention { raw_before_us: back(raw), minute_before_us: back(minute), hour_before_us: back(hour) }
}

/// Runs a pass every `interval` until stopped.
pub async fn run(
    store: Store,
    raw: Duration,
    minute: Duration,
    hour: Duration,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now_us = Utc::now().timestamp_micros();
        match store.retain(&policy(now_us, raw, minute, hour)).await {
            Ok(done) if done.raw_deleted + done.minute_deleted + done.hour_deleted > 0 => {
                info!(
                    raw_deleted = done.raw_deleted,
                    minute_buckets = done.minute_buckets,
                    minute_deleted = done.minute_deleted,
                    hour_deleted = done.hour_deleted,
                    "retention pass"
                );
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "retention pass failed; it runs again at the next interval"),
        }
    }
}
