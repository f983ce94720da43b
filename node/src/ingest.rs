//! Ingest: validate what devices publish, store it in batches, and acknowledge each QoS 1
//! message to the broker only after the transaction that stores it has committed.
//!
//! One task owns the whole path, so acknowledgements go out in the order messages came.
//! A batch closes when it holds `batch_max` messages or when `batch_linger` has passed since
//! its first message. A refused message is acknowledged too (it must not come back for ever)
//! and gets a reject notice; it never disturbs the good messages around it. When a commit
//! fails, nothing of the batch is acknowledged and the same batch is retried with backoff.
//!
//! Team acknowledgements (`yingji/v1/ack/{team}`) take the same path: a valid one becomes an
//! outbox row of kind `ack` in the batch's transaction, and the forwarder relays it to the hub
//! until the hub's receipt names it; an invalid one gets a reject notice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::{AsyncClient, Publish, QoS};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};
use yingji_proto::dispatch::Ack;
use yingji_proto::event::RejectNotice;
use yingji_proto::report::FieldReport;
use yingji_proto::senml::{self, Value};
use yingji_proto::status::DeviceStatus;
use yingji_proto::topic::{self, FieldTopic};
use yingji_proto::{Invalid, Limits, media};

use crate::devices::Registry;
use crate::metrics::{CodeLabel, Metrics};
use crate::regions::{self, Regions};
use crate::store::{Batch, NewMedia, NewReading, NewReport, NewStatus, OutboxEvent, Seen, Store};

/// What ingest needs.
pub struct Ingest {
    pub node_id: String,
    pub store: Store,
    /// Woken after a commit that queued events for the hub.
    pub forward: Arc<tokio::sync::Notify>,
    pub regions: Arc<Regions>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub client: AsyncClient,
    /// The field topic prefix (`--field-mount`) rejects are published under; empty: none.
    pub mount: String,
    pub limits: Limits,
    pub batch_max: usize,
    pub batch_linger: Duration,
    /// Readings older than this are refused: retention has already folded their time into
    /// aggregates, and counting them in again would count them twice.
    pub raw_retention: Duration,
    /// Sensor monitoring and reporting discipline; `None` when monitoring is off.
    pub watch: tokio::sync::Mutex<Option<crate::watch::Watch>>,
}

/// Counters per topic kind, taken from their families once so the hot path does not allocate
/// a label per message.
struct KindCounters {
    received: [prometheus_client::metrics::counter::Counter; KINDS.len()],
    stored: [prometheus_client::metrics::counter::Counter; KINDS.len()],
}

const KINDS: [&str; 6] = ["report", "senml", "status", "media", "ack", "other"];

impl KindCounters {
    fn new(metrics: &Metrics) -> KindCounters {
        KindCounters {
            received: KINDS.map(|k| metrics.received.get_or_create(&Metrics::kind(k)).clone()),
            stored: KINDS.map(|k| metrics.stored.get_or_create(&Metrics::kind(k)).clone()),
        }
    }
}

/// A collected batch: the rows to store, the team acknowledgements to queue for the hub, the
/// messages to acknowledge after the commit, and the notices to send.
struct Staged {
    batch: Batch,
    relays: Vec<OutboxEvent>,
    pending: Vec<Publish>,
    refused: Vec<Refused>,
}

/// Whether the committer waits for a batch, and a way to wait until it does.
#[derive(Default)]
struct Idle {
    flag: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Idle {
    fn is_idle(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Acquire)
    }

    fn set(&self, idle: bool) {
        self.flag.store(idle, std::sync::atomic::Ordering::Release);
        if idle {
            self.notify.notify_one();
        }
    }

    async fn wait(&self) {
        self.notify.notified().await;
    }
}

/// A message refused, with where its notice goes.
struct Refused {
    device: Option<String>,
    notice: RejectNotice,
}

impl Ingest {
    /// Runs until `stop` is cancelled or the message channel closes. Batches already collected
    /// when `stop` comes are committed and acknowledged first.
    ///
    /// Two stages overlap: while one batch is being committed the next is collected and
    /// validated. The committer handles batches strictly in order, so acknowledgements still go
    /// out in the order the messages came.
    pub async fn run(self, messages: mpsc::UnboundedReceiver<Publish>, stop: CancellationToken) {
        let this = Arc::new(self);
        let counters = Arc::new(KindCounters::new(&this.metrics));
        // One batch waits while another commits: enough to overlap the stages, and the
        // broker's in-flight window bounds what is held unacknowledged anyway.
        let (staged_tx, staged_rx) = mpsc::channel::<Staged>(1);
        // Committed batches come back emptied, so that the next ones reuse their memory: a batch
        // of 10,000 packs holds 200,000 readings, and growing that afresh each time cost more
        // than storing it (page faults and copies).
        let (spare_tx, spare_rx) = mpsc::channel::<Staged>(2);
        let idle = Arc::new(Idle::default());
        let committer =
            tokio::spawn(this.clone().commit_loop(staged_rx, spare_tx, counters.clone(), idle.clone(), stop.clone()));
        this.collect_loop(messages, staged_tx, spare_rx, &counters, &idle, &stop).await;
        if let Err(e) = committer.await {
            error!(error = %e, "the commit task ended abnormally");
        }
    }

    async fn collect_loop(
        &self,
        mut messages: mpsc::UnboundedReceiver<Publish>,
        staged: mpsc::Sender<Staged>,
        mut spare: mpsc::Receiver<Staged>,
        counters: &KindCounters,
        idle: &Idle,
        stop: &CancellationToken,
    ) {
        let mut seen: HashMap<String, Seen> = HashMap::new();
        loop {
            let first = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                message = messages.recv() => match message {
                    Some(m) => m,
                    None => break,
                },
            };
            let now = Utc::now();
            let mut next = spare.try_recv().unwrap_or_else(|_| Staged {
                batch: Batch::default(),
                relays: Vec::new(),
                pending: Vec::with_capacity(256),
                refused: Vec::new(),
            });
            self.accept(&first, now, counters, &mut next, &mut seen);
            next.pending.push(first);
            let deadline = tokio::time::Instant::now() + self.batch_linger;
            // Ship the batch as soon as nothing more is waiting and the committer is idle (low
            // latency when the load is light); while the committer is busy, keep collecting, up
            // to `batch_max` or `batch_linger` (large batches when the load is heavy).
            while next.pending.len() < self.batch_max {
                let message = match messages.try_recv() {
                    Ok(m) => m,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if idle.is_idle() {
                            break;
                        }
                        tokio::select! {
                            m = messages.recv() => match m {
                                Some(m) => m,
                                None => break,
                            },
                            _ = idle.wait() => break,
                            _ = tokio::time::sleep_until(deadline) => break,
                        }
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                };
                self.accept(&message, now, counters, &mut next, &mut seen);
                next.pending.push(message);
            }
            self.metrics.ingest_queue.set(messages.len() as i64);
            next.batch.seen.extend(seen.drain().map(|(_, s)| s));
            if staged.send(next).await.is_err() {
                // The committer stopped (the database failed while stopping): what is left
                // stays unacknowledged and the broker delivers it again.
                break;
            }
        }
    }

    async fn commit_loop(
        self: Arc<Self>,
        mut staged: mpsc::Receiver<Staged>,
        spare: mpsc::Sender<Staged>,
        counters: Arc<KindCounters>,
        idle: Arc<Idle>,
        stop: CancellationToken,
    ) {
        // Time passes for the stations every 10 s; overdue reports are looked for every minute.
        let mut ticks = tokio::time::interval(Duration::from_secs(10));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut overdue_due = Instant::now();
        // Events of a tick whose transaction failed, sent with the next.
        let mut unsent = Vec::new();
        loop {
            let next = match staged.try_recv() {
                Ok(next) => next,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    idle.set(true);
                    let next = loop {
                        tokio::select! {
                            next = staged.recv() => break next,
                            _ = ticks.tick() => self.watch_tick(&mut overdue_due, &mut unsent).await,
                        }
                    };
                    idle.set(false);
                    match next {
                        Some(next) => next,
                        None => break,
                    }
                }
            };
            let Staged { mut batch, mut relays, mut pending, mut refused } = next;
            if !self.commit(&batch, &relays, pending.len(), &stop).await {
                // Stopped while the database was failing: leave the batch unacknowledged; the
                // broker delivers it again to the next session.
                return;
            }
            for message in pending.drain(..) {
                counters.stored[kind_of(&message.topic)].inc();
                if let Err(e) = self.client.ack(&message).await {
                    warn!(error = %e, "could not queue an acknowledgement; the broker will redeliver the message");
                }
            }
            for r in refused.drain(..) {
                self.notify(r);
            }
            batch.clear();
            relays.clear();
            // When two spares wait already, this one is simply freed.
            let _ = spare.try_send(Staged { batch, relays, pending, refused });
        }
    }

    /// Commits a batch with the events it gives rise to, retrying with backoff while the
    /// database fails. False when stopped first.
    async fn commit(&self, batch: &Batch, relays: &[OutboxEvent], messages: usize, stop: &CancellationToken) -> bool {
        // Sensor warnings and stations coming back: observed once; every try carries them.
        let watch_events = match self.watch.lock().await.as_ref() {
            Some(w) => w.observe(&batch.readings, Utc::now().timestamp_millis()),
            None => Vec::new(),
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            let started = Instant::now();
            match self.store_batch(batch, relays, &watch_events).await {
                Ok((written, events)) => {
                    self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
                    self.metrics.batch_messages.observe(messages as f64);
                    self.metrics.reports_new.inc_by(written.reports);
                    self.metrics.readings_new.inc_by(written.readings);
                    self.metrics.media_new.inc_by(written.media);
                    let offered = (batch.reports.len() + batch.readings.len() + batch.media.len()) as u64;
                    let new = written.reports + written.readings + written.media;
                    self.metrics.duplicates.inc_by(offered.saturating_sub(new));
                    if events > 0 {
                        self.forward.notify_one();
                    }
                    debug!(messages, new, events, "batch committed");
                    return true;
                }
                Err(e) => {
                    self.metrics.commit_failures.inc();
                    error!(error = %e, messages, retry_in_ms = backoff.as_millis() as u64,
                        "storing a batch failed; nothing of it is acknowledged, retrying. Check the database");
                    tokio::select! {
                        _ = stop.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One transaction: the batch's rows, the events for the hub that come from them, and the
    /// team acknowledgements to relay.
    async fn store_batch(
        &self,
        batch: &Batch,
        relays: &[OutboxEvent],
        watch_events: &[OutboxEvent],
    ) -> Result<(crate::store::Written, usize), crate::store::StoreError> {
        let mut tx = self.store.begin().await?;
        let inserted = tx.insert(batch).await?;
        let mut events = Vec::with_capacity(
            inserted.new_reports.len() + inserted.new_media.len() + watch_events.len() + relays.len(),
        );
        events.extend_from_slice(relays);
        events.extend_from_slice(watch_events);
        for &i in &inserted.new_reports {
            events.push(crate::events::report(&self.node_id, &batch.reports[i], &self.regions));
        }
        // Statistics: the store made the new reports compete for latest of their region; the
        // divisions they touch get a fresh snapshot.
        if !inserted.new_reports.is_empty() {
            let rows: Vec<&NewReport> = inserted.new_reports.iter().map(|&i| &batch.reports[i]).collect();
            let mut touched: std::collections::BTreeMap<(String, bool), std::collections::BTreeSet<String>> =
                std::collections::BTreeMap::new();
            for row in &rows {
                touched.entry((row.incident.clone(), row.exercise)).or_default().insert(row.region.clone());
            }
            for ((incident, exercise), changed) in touched {
                let latest = tx.latest(&incident, exercise).await?;
                events.extend(crate::events::stats(
                    &self.node_id,
                    &incident,
                    exercise,
                    &latest,
                    &changed,
                    &self.regions,
                ));
            }
        }
        for &i in &inserted.new_media {
            let m = &batch.media[i];
            let (region, exercise) =
                tx.report_meta(&m.device, &m.report_id).await?.unwrap_or_else(|| (regions::UNKNOWN.to_owned(), false));
            events.push(crate::events::media(&self.node_id, m, &region, exercise));
        }
        tx.enqueue(&events).await?;
        tx.commit().await?;
        Ok((inserted.written, events.len()))
    }

    /// Lets time pass for the stations (windows slide, silent stations go offline) and, once a
    /// minute, raises overdue-report events. Its events commit in a transaction of their own.
    async fn watch_tick(&self, overdue_due: &mut Instant, unsent: &mut Vec<crate::store::OutboxEvent>) {
        let mut watch = self.watch.lock().await;
        let Some(w) = watch.as_mut() else { return };
        let now_ms = Utc::now().timestamp_millis();
        let mut events = std::mem::take(unsent);
        events.extend(w.tick(now_ms));
        if Instant::now() >= *overdue_due {
            *overdue_due = Instant::now() + Duration::from_secs(60);
            match self.store.incidents().await {
                Ok(incidents) => {
                    // Incidents with a report in the last week are still followed.
                    for i in incidents.iter().filter(|i| now_ms - i.last_observed_ms < 7 * 86_400_000) {
                        match self.store.filings(&i.incident, i.exercise).await {
                            Ok(filings) => events.extend(w.overdue(&i.incident, i.exercise, &filings, now_ms)),
                            Err(e) => warn!(error = %e, "could not read filings for reporting discipline"),
                        }
                    }
                }
                Err(e) => warn!(error = %e, "could not list incidents for reporting discipline"),
            }
        }
        if events.is_empty() {
            return;
        }
        let result = async {
            let mut tx = self.store.begin().await?;
            tx.enqueue(&events).await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => self.forward.notify_one(),
            Err(e) => {
                warn!(error = %e, "could not queue station events; retrying at the next tick");
                *unsent = events;
            }
        }
    }

    /// Validates one message into the batch, or records why it is refused.
    fn accept(
        &self,
        message: &Publish,
        now: chrono::DateTime<Utc>,
        counters: &KindCounters,
        staged: &mut Staged,
        seen: &mut HashMap<String, Seen>,
    ) {
        let Staged { batch, relays, refused, .. } = staged;
        counters.received[kind_of(&message.topic)].inc();
        let parsed = match FieldTopic::parse(&message.topic) {
            Ok(t) => t,
            Err(invalid) => {
                let device = message.topic.split('/').nth(3).filter(|d| publishable_level(d)).map(str::to_owned);
                self.refuse(refused, device, &message.topic, None, invalid);
                return;
            }
        };
        let device = parsed.device().to_owned();
        let received_at_ms = now.timestamp_millis();
        let payload = &message.payload[..];
        let outcome: Result<(), (Option<String>, Invalid)> = match &parsed {
            FieldTopic::Report { .. } => match FieldReport::parse(payload, &device, now, &self.limits) {
                Ok(report) => {
                    batch.reports.push(self.place(report, &device, received_at_ms));
                    Ok(())
                }
                Err(e) => Err((peek_id(payload), e)),
            },
            FieldTopic::Senml { .. } => match senml::parse_pack(payload, &device, now, &self.limits).and_then(|r| {
                let horizon = now.timestamp_micros().saturating_sub(self.raw_retention.as_micros() as i64);
                match r.iter().position(|x| x.time_us < horizon) {
                    Some(i) => Err(Invalid::new(
                        yingji_proto::Code::TimeTooOld,
                        format!(
                            "record {i}: older than the {} h this node keeps raw readings",
                            self.raw_retention.as_secs() / 3600
                        ),
                    )),
                    None => Ok(r),
                }
            }) {
                Ok(readings) => {
                    let registered = self.registry.contains(&device);
                    if !registered {
                        self.metrics.unregistered_readings.inc_by(readings.len() as u64);
                    }
                    // One allocation of the device for the whole pack.
                    let shared: Arc<str> = Arc::from(device.as_str());
                    batch
                        .readings
                        .extend(readings.into_iter().map(|r| reading_row(&shared, r, registered, received_at_ms)));
                    Ok(())
                }
                Err(e) => Err((None, e)),
            },
            FieldTopic::Status { .. } => match DeviceStatus::parse(payload, &device, now, &self.limits) {
                Ok(status) => {
                    batch.statuses.push(NewStatus {
                        device: device.clone(),
                        online: status.online,
                        battery: status.battery,
                        at_ms: status.at.timestamp_millis(),
                    });
                    Ok(())
                }
                Err(e) => Err((None, e)),
            },
            FieldTopic::Media { report, .. } => match media::sniff(payload, &self.limits) {
                Ok(kind) => {
                    batch.media.push(NewMedia {
                        device: device.clone(),
                        report_id: report.clone(),
                        sha256: hex(&Sha256::digest(payload)),
                        content_type: kind.content_type().to_owned(),
                        bytes: payload.to_vec(),
                        received_at_ms,
                    });
                    Ok(())
                }
                Err(e) => Err((Some(report.clone()), e)),
            },
            FieldTopic::Ack { team } => {
                match Ack::parse(payload, team, now, &self.limits)
                    .and_then(|ack| crate::events::ack(&self.node_id, team, &ack.id, payload))
                {
                    Ok(row) => {
                        relays.push(row);
                        // A team is not a station: its acknowledgements do not mark it seen.
                        return;
                    }
                    Err(e) => Err((peek_id(payload), e)),
                }
            }
        };
        match outcome {
            Ok(()) => {
                let registered = self.registry.contains(&device);
                let entry =
                    seen.entry(device.clone()).or_insert_with(|| Seen { device, registered, at_ms: received_at_ms });
                entry.at_ms = entry.at_ms.max(received_at_ms);
            }
            Err((id, invalid)) => self.refuse(refused, Some(device), &message.topic, id, invalid),
        }
    }

    /// Gives a report its region: its own code, else the division its location lies in,
    /// else `unknown` (kept and counted, never refused).
    fn place(&self, report: FieldReport, device: &str, received_at_ms: i64) -> NewReport {
        let (region, region_source) = match report.region.clone() {
            Some(code) => (code, "given"),
            None => match self.regions.locate(report.location.lat, report.location.lon) {
                Some(division) => (division.code.clone(), "located"),
                None => {
                    self.metrics.unknown_region_reports.inc();
                    (regions::UNKNOWN.to_owned(), "unknown")
                }
            },
        };
        NewReport {
            device: device.to_owned(),
            figures: serde_json::to_string(&report.figures).unwrap_or_else(|_| "{}".to_owned()),
            observed_at: report.observed_at.to_rfc3339(),
            observed_at_ms: report.observed_at.timestamp_millis(),
            incident: report.incident,
            stage: report.stage.as_str().to_owned(),
            hazard: report.hazard.as_str().to_owned(),
            lat: report.location.lat,
            lon: report.location.lon,
            region,
            region_source,
            text: report.text,
            exercise: report.exercise,
            received_at_ms,
            id: report.id,
        }
    }

    fn refuse(
        &self,
        refused: &mut Vec<Refused>,
        device: Option<String>,
        topic: &str,
        id: Option<String>,
        invalid: Invalid,
    ) {
        self.metrics.rejected.get_or_create(&CodeLabel { code: invalid.code.as_str().to_owned() }).inc();
        debug!(topic, code = invalid.code.as_str(), reason = %invalid.reason, "message refused");
        refused.push(Refused {
            device,
            notice: RejectNotice {
                topic: topic.to_owned(),
                id,
                code: invalid.code.as_str().to_owned(),
                reason: invalid.reason,
            },
        });
    }

    /// Sends a reject notice (QoS 0: it is advice to the device, and must never hold up ingest).
    fn notify(&self, refused: Refused) {
        let Some(device) = refused.device else { return };
        let Ok(payload) = serde_json::to_vec(&refused.notice) else { return };
        if let Err(e) = self.client.try_publish(
            format!("{}{}", self.mount, topic::reject(&device)),
            QoS::AtMostOnce,
            false,
            payload,
        ) {
            debug!(error = %e, device, "reject notice dropped: the request queue is full");
        }
    }
}

fn reading_row(device: &Arc<str>, r: senml::Reading, registered: bool, received_at_ms: i64) -> NewReading {
    let (value_num, value_str, value_bool, value_data) = match r.value {
        Some(Value::Number(x)) => (Some(x), None, None, None),
        Some(Value::String(s)) => (None, Some(s), None, None),
        Some(Value::Bool(b)) => (None, None, Some(b), None),
        Some(Value::Data(d)) => (None, None, None, Some(d)),
        None => (None, None, None, None),
    };
    NewReading {
        device: device.clone(),
        name: NewReading::name_of(r.name),
        time_us: r.time_us,
        unit: r.unit.map(NewReading::unit_of),
        value_num,
        value_str,
        value_bool,
        value_data,
        sum: r.sum,
        registered,
        received_at_ms,
    }
}

/// The topic kind for metrics, as an index into [`KINDS`]: the third level of `yingji/v1/<kind>/...`.
fn kind_of(topic: &str) -> usize {
    let level = topic.split('/').nth(2).unwrap_or("other");
    KINDS.iter().position(|k| *k == level).unwrap_or(KINDS.len() - 1)
}

/// A topic level we can publish a notice under (no wildcards, not empty).
fn publishable_level(level: &str) -> bool {
    !level.is_empty() && !level.contains(['+', '#']) && level.len() <= 256
}

/// The `id` of a refused report, when the JSON is good enough to show one.
fn peek_id(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    serde_json::from_slice::<IdOnly>(payload).ok().and_then(|x| x.id).filter(|id| id.len() <= yingji_proto::MAX_ID_LEN)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
