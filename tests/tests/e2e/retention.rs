//! Retention under a steady load with a compressed clock: raw readings go after their horizon,
//! live on as exact per-minute and per-hour aggregates, and the database stops growing.

use yingji_node::retention::policy;
use yingji_node::store::{AggregateQuery, Batch, NewReading, Seen, Store};
use yingji_tests::{TestDb, db_kinds};

const HOUR_US: i64 = 3_600_000_000;
const MINUTE_US: i64 = 60_000_000;
const SERIES: usize = 10;
/// An hour boundary, so that buckets line up with the simulated hours.
const BASE_US: i64 = 494_444 * HOUR_US;

fn hour_of_readings(hour: i64) -> Batch {
    let mut batch = Batch::default();
    for s in 0..SERIES {
        for m in 0..60 {
            batch.readings.push(NewReading {
                device: format!("g{s}").into(),
                name: "water_level".into(),
                time_us: BASE_US + hour * HOUR_US + m * MINUTE_US,
                unit: Some("m".into()),
                value_num: Some(m as f64),
                value_str: None,
                value_bool: None,
                value_data: None,
                sum: None,
                registered: true,
                received_at_ms: 0,
            });
        }
        batch.seen.push(Seen { device: format!("g{s}"), registered: true, at_ms: 0 });
    }
    batch
}

#[tokio::test]
async fn the_database_stays_flat_and_aggregates_stay_exact() {
    for kind in db_kinds() {
        let db = TestDb::new(kind).await;
        let store = Store::connect(&db.url).await.expect("connect");
        let (raw, minute, hour) = (
            std::time::Duration::from_secs(24 * 3600),
            std::time::Duration::from_secs(2 * 86_400),
            std::time::Duration::from_secs(4 * 86_400),
        );
        let mut sizes = Vec::new();
        for h in 0..(12 * 24) {
            store.write(&hour_of_readings(h)).await.expect("write");
            let now_us = BASE_US + (h + 1) * HOUR_US;
            store.retain(&policy(now_us, raw, minute, hour)).await.expect("retain");
            if (h + 1) % 24 == 0 {
                sizes.push(store.size_bytes().await.expect("size"));
            }
        }
        // Steady state from day 5 on (the longest horizon is 4 days): no growth beyond noise.
        let (day6, day12) = (sizes[5], sizes[11]);
        assert!(day12 as f64 <= day6 as f64 * 1.10, "{kind:?}: grew from {day6} to {day12} bytes: {sizes:?}");
        assert!(sizes[0] < day12 || sizes[0] <= day6, "{kind:?}: sizes {sizes:?}");

        let counts = store.counts().await.expect("counts");
        assert_eq!(counts.readings, (24 * 60 * SERIES) as i64, "{kind:?}: one day of raw readings per series");

        let hourly = store
            .aggregates(&AggregateQuery {
                device: "g3".into(),
                name: "water_level".into(),
                hourly: true,
                since_us: 0,
                limit: 1000,
            })
            .await
            .expect("hourly");
        // Hours older than the raw horizon and younger than the hour horizon: 4 days − 1 day.
        assert_eq!(hourly.len(), 3 * 24, "{kind:?}");
        for bucket in &hourly {
            assert_eq!((bucket.n, bucket.sum, bucket.min, bucket.max), (60, 1770.0, 0.0, 59.0), "{kind:?}: {bucket:?}");
        }
        let minutes = store
            .aggregates(&AggregateQuery {
                device: "g3".into(),
                name: "water_level".into(),
                hourly: false,
                since_us: 0,
                limit: 100_000,
            })
            .await
            .expect("minutes");
        assert_eq!(minutes.len(), 24 * 60, "{kind:?}: one day of minutes between the raw and minute horizons");
        assert!(minutes.iter().all(|b| b.n == 1), "{kind:?}");
        store.close().await;
    }
}
