//! The node's storage API, one suite run against SQLite and (when configured) PostgreSQL.

use yingji_node::store::{
    Batch, DeviceQuery, NewMedia, NewReading, NewReport, NewStatus, ReadingQuery, ReportQuery, Seen, Store,
};
use yingji_tests::{TestDb, db_kinds};

fn report(device: &str, id: &str, region: &str) -> NewReport {
    NewReport {
        device: device.into(),
        id: id.into(),
        incident: "typhoon-2026-14".into(),
        stage: "initial".into(),
        hazard: "typhoon".into(),
        observed_at: "2026-09-14T08:00:00+08:00".into(),
        observed_at_ms: 1_789_344_000_000,
        lat: 28.0,
        lon: 120.6,
        region: region.into(),
        region_source: "given",
        figures: r#"{"affected":10}"#.into(),
        text: Some("<script>alert(1)</script>".into()),
        exercise: false,
        received_at_ms: 1_789_344_000_500,
    }
}

fn reading(device: &str, name: &str, time_us: i64, value: f64) -> NewReading {
    NewReading {
        device: device.into(),
        name: name.to_owned().into(),
        time_us,
        unit: Some("mm".into()),
        value_num: Some(value),
        value_str: None,
        value_bool: None,
        value_data: None,
        sum: None,
        registered: true,
        received_at_ms: 1,
    }
}

fn seen(device: &str, at_ms: i64) -> Seen {
    Seen { device: device.into(), registered: false, at_ms }
}

#[tokio::test]
async fn writing_a_batch_twice_changes_nothing() {
    for kind in db_kinds() {
        let db = TestDb::new(kind).await;
        let store = Store::connect(&db.url).await.expect("connect");
        let batch = Batch {
            reports: vec![report("d1", "r1", "330302"), report("d1", "r2", "330302"), report("d2", "r1", "330303")],
            readings: (0..1200).map(|i| reading("g1", "rain", 1_789_000_000_000_000 + i, 0.5)).collect(),
            media: vec![NewMedia {
                device: "d1".into(),
                report_id: "r1".into(),
                sha256: "ab".into(),
                content_type: "image/png".into(),
                bytes: vec![1, 2, 3],
                received_at_ms: 1,
            }],
            seen: vec![seen("d1", 10), seen("d2", 10), seen("g1", 10)],
            ..Default::default()
        };
        let first = store.write(&batch).await.expect("first write");
        assert_eq!((first.reports, first.readings, first.media), (3, 1200, 1), "{kind:?}");
        let again = store.write(&batch).await.expect("second write");
        assert_eq!((again.reports, again.readings, again.media), (0, 0, 0), "{kind:?}");
        let counts = store.counts().await.expect("counts");
        assert_eq!((counts.reports, counts.readings, counts.media, counts.devices), (3, 1200, 1, 3), "{kind:?}");

        // A duplicate inside one batch is stored once too.
        let dup = Batch {
            readings: vec![reading("g2", "rain", 5, 1.0), reading("g2", "rain", 5, 1.0)],
            seen: vec![seen("g2", 1)],
            ..Default::default()
        };
        assert_eq!(store.write(&dup).await.expect("dup write").readings, 1, "{kind:?}");

        let page = store
            .reports(&ReportQuery { incident: Some("typhoon-2026-14".into()), limit: 10, ..Default::default() })
            .await
            .expect("reports");
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.items[0].text.as_deref(), Some("<script>alert(1)</script>"), "text is stored verbatim");
        assert_eq!(page.items[0].media, vec!["ab".to_owned()]);
        assert_eq!(page.items[0].figures["affected"], 10);
        let media = store.media("d1", "r1", "ab").await.expect("media").expect("present");
        assert_eq!((media.content_type.as_str(), media.bytes.as_slice()), ("image/png", &[1u8, 2, 3][..]));
        store.close().await;
    }
}

#[tokio::test]
async fn lists_page_through_every_row_once() {
    for kind in db_kinds() {
        let db = TestDb::new(kind).await;
        let store = Store::connect(&db.url).await.expect("connect");
        let mut batch = Batch::default();
        for d in 0..7 {
            for t in 0..150 {
                batch.readings.push(reading(
                    &format!("g{d}"),
                    if t % 2 == 0 { "rain" } else { "water_level" },
                    1_000_000 + t,
                    t as f64,
                ));
            }
            batch.seen.push(seen(&format!("g{d}"), 1));
        }
        batch.reports = (0..25).map(|i| report("d1", &format!("r{i:03}"), "330302")).collect();
        store.write(&batch).await.expect("write");

        let mut after = None;
        let mut all = Vec::new();
        loop {
            let page = store
                .readings(&ReadingQuery { after: after.clone(), limit: 97, ..Default::default() })
                .await
                .expect("page");
            all.extend(page.items.iter().map(|r| (r.device.clone(), r.name.clone(), r.time_us)));
            match page.next {
                Some(cursor) => after = Some(yingji_node::store::decode_cursor(&cursor).expect("cursor")),
                None => break,
            }
        }
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!((all.len(), sorted.len()), (1050, 1050), "{kind:?}: every reading exactly once");
        assert_eq!(all, sorted, "{kind:?}: in key order");

        let filtered = store
            .readings(&ReadingQuery {
                device: Some("g3".into()),
                name: Some("rain".into()),
                since_us: Some(1_000_100),
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("filtered");
        assert_eq!(filtered.items.len(), 25, "{kind:?}: g3 rain at t >= 100 (even t in 100..150)");
        assert!(filtered.next.is_none());

        let mut after = None;
        let mut ids = Vec::new();
        loop {
            let page = store
                .reports(&ReportQuery { after_seq: after, limit: 10, ..Default::default() })
                .await
                .expect("reports");
            ids.extend(page.items.iter().map(|r| r.id.clone()));
            match page.next {
                Some(c) => after = Some(yingji_node::store::decode_cursor(&c).expect("cursor")),
                None => break,
            }
        }
        assert_eq!(ids.len(), 25, "{kind:?}");

        let devices = store.devices(&DeviceQuery { after: None, limit: 5 }).await.expect("devices");
        assert_eq!(devices.items.len(), 5);
        assert!(devices.next.is_some());
        store.close().await;
    }
}

#[tokio::test]
async fn an_older_status_never_overrides_a_newer_one() {
    for kind in db_kinds() {
        let db = TestDb::new(kind).await;
        let store = Store::connect(&db.url).await.expect("connect");
        let status = |online: bool, at_ms: i64| NewStatus { device: "s1".into(), online, battery: Some(50.0), at_ms };
        let mut batch =
            Batch { seen: vec![seen("s1", 100)], statuses: vec![status(false, 2000)], ..Default::default() };
        store.write(&batch).await.expect("newer");
        batch.statuses = vec![status(true, 1000)];
        batch.seen = vec![seen("s1", 50)];
        store.write(&batch).await.expect("older, later");
        let page = store.devices(&DeviceQuery { after: None, limit: 10 }).await.expect("devices");
        let d = &page.items[0];
        assert_eq!((d.online, d.status_at_ms, d.last_seen_ms), (Some(false), Some(2000), 100), "{kind:?}");
        store.close().await;
    }
}

#[tokio::test]
async fn a_bad_database_url_is_a_clear_error() {
    let err = Store::connect("mysql://x").await.expect_err("refused");
    assert!(err.to_string().contains("neither sqlite:// nor postgres://"), "{err}");
}

/// Every reading of the store, through the API, a page of `limit` at a time.
async fn all_readings(store: &Store, limit: i64, since_us: Option<i64>) -> Vec<(String, String, i64, Option<f64>)> {
    let mut after = None;
    let mut all = Vec::new();
    loop {
        let page = store
            .readings(&ReadingQuery { after: after.clone(), since_us, limit, ..Default::default() })
            .await
            .expect("page");
        assert!(page.items.len() <= limit as usize);
        all.extend(page.items.iter().map(|r| (r.device.clone(), r.name.clone(), r.time_us, r.value)));
        match page.next {
            Some(cursor) => after = Some(yingji_node::store::decode_cursor(&cursor).expect("cursor")),
            None => break,
        }
    }
    all
}

#[tokio::test]
async fn late_and_repeated_readings_across_batches_are_stored_once() {
    for kind in db_kinds() {
        let db = TestDb::new(kind).await;
        let store = Store::connect(&db.url).await.expect("connect");
        let write = |readings: Vec<NewReading>| {
            let store = store.clone();
            async move {
                let batch = Batch { readings, seen: vec![seen("g1", 1)], ..Default::default() };
                store.write(&batch).await.expect("write").readings
            }
        };
        // Even times first, then every time (the evens again with other values), then a late
        // run that reaches back before the first, then the same batches in another order.
        let evens: Vec<NewReading> = (0..100).step_by(2).map(|t| reading("g1", "rain", t, 1.0)).collect();
        let every: Vec<NewReading> = (0..100).rev().map(|t| reading("g1", "rain", t, 2.0)).collect();
        let late: Vec<NewReading> = (-10..5).map(|t| reading("g1", "rain", t, 3.0)).collect();
        assert_eq!(write(evens.clone()).await, 50, "{kind:?}");
        assert_eq!(write(every.clone()).await, 50, "{kind:?}: only the odd times are new");
        assert_eq!(write(late.clone()).await, 10, "{kind:?}: only the times before 0 are new");
        for batch in [late, every, evens] {
            assert_eq!(write(batch).await, 0, "{kind:?}: a resend adds nothing");
        }
        // Times in the middle of blocks that start long before them.
        let middle = vec![reading("g1", "rain", 50, 5.0), reading("g1", "rain", 51, 5.0)];
        assert_eq!(write(middle).await, 0, "{kind:?}: held by blocks starting at 0 and 1");
        // Another series of the same device, and the same time in another series, are their own.
        assert_eq!(write(vec![reading("g1", "water_level", 0, 4.0)]).await, 1, "{kind:?}");
        assert_eq!(store.counts().await.expect("counts").readings, 111, "{kind:?}");

        let want: Vec<(String, String, i64, Option<f64>)> = (-10..100)
            .map(|t| {
                let value = if t < 0 {
                    3.0
                } else if t % 2 == 0 {
                    1.0
                } else {
                    2.0
                };
                ("g1".to_owned(), "rain".to_owned(), t, Some(value))
            })
            .chain([("g1".to_owned(), "water_level".to_owned(), 0, Some(4.0))])
            .collect();
        for limit in [1, 7, 50, 1000] {
            let all = all_readings(&store, limit, None).await;
            assert_eq!(all, want, "{kind:?}: limit {limit}: each reading once, in key order, first value kept");
        }
        let since: Vec<_> = want.iter().filter(|r| r.2 >= 50).cloned().collect();
        assert_eq!(all_readings(&store, 9, Some(50)).await, since, "{kind:?}: since");
        store.close().await;
    }
}

#[tokio::test]
async fn readings_of_the_one_row_table_are_packed_at_the_next_start() {
    for kind in db_kinds() {
        let db = TestDb::new(kind).await;
        let store = Store::connect(&db.url).await.expect("connect");
        store
            .write(&Batch { readings: vec![reading("g1", "rain", 50, 9.0)], ..Default::default() })
            .await
            .expect("write");
        store.close().await;
        // The table of a node before reading blocks, with rows in it (one a reading the blocks
        // hold too, as after a crash half-way through an earlier upgrade).
        let (bool_type, blob_type) = match kind {
            yingji_tests::DbKind::Sqlite => ("INTEGER", "BLOB"),
            yingji_tests::DbKind::Postgres => ("BOOLEAN", "BYTEA"),
        };
        let create = format!(
            "CREATE TABLE legacy_readings (device TEXT NOT NULL, name TEXT NOT NULL, time_us BIGINT NOT NULL, unit TEXT, \
             value_num DOUBLE PRECISION, value_str TEXT, value_bool {bool_type}, value_data {blob_type}, \
             sum DOUBLE PRECISION, registered {bool_type} NOT NULL, received_at_ms BIGINT NOT NULL, \
             PRIMARY KEY (device, name, time_us))"
        );
        let rows = "INSERT INTO legacy_readings VALUES \
             ('g1', 'rain', 10, 'mm', 1.5, NULL, NULL, NULL, NULL, TRUE, 7), \
             ('g1', 'rain', 50, 'mm', 1.0, NULL, NULL, NULL, NULL, TRUE, 7), \
             ('g1', 'rain', 60, NULL, NULL, 'ok', NULL, NULL, 2.5, TRUE, 7), \
             ('g2', 'door', 5, NULL, NULL, NULL, FALSE, NULL, NULL, FALSE, 7)";
        match kind {
            yingji_tests::DbKind::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&db.url).await.expect("sqlite");
                sqlx::query(sqlx::AssertSqlSafe(create)).execute(&pool).await.expect("create");
                sqlx::query(rows).execute(&pool).await.expect("rows");
                pool.close().await;
            }
            yingji_tests::DbKind::Postgres => {
                let pool = sqlx::PgPool::connect(&db.url).await.expect("postgres");
                sqlx::query(sqlx::AssertSqlSafe(create)).execute(&pool).await.expect("create");
                sqlx::query(rows).execute(&pool).await.expect("rows");
                pool.close().await;
            }
        }
        let store = Store::connect(&db.url).await.expect("connect and upgrade");
        assert_eq!(store.counts().await.expect("counts").readings, 4, "{kind:?}");
        let page = store.readings(&ReadingQuery { limit: 100, ..Default::default() }).await.expect("readings");
        let got: Vec<_> = page
            .items
            .iter()
            .map(|r| {
                (r.device.as_str(), r.time_us, r.unit.as_deref(), r.value, r.value_str.as_deref(), r.value_bool, r.sum)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("g1", 10, Some("mm"), Some(1.5), None, None, None),
                ("g1", 50, Some("mm"), Some(9.0), None, None, None),
                ("g1", 60, None, None, Some("ok"), None, Some(2.5)),
                ("g2", 5, None, None, None, Some(false), None),
            ],
            "{kind:?}"
        );
        assert!(!page.items[3].registered && page.items[0].registered, "{kind:?}");
        // The old table is gone, and a later reading of a moved series is new, an earlier one not.
        let again = Batch {
            readings: vec![reading("g1", "rain", 10, 0.0), reading("g1", "rain", 61, 0.0)],
            ..Default::default()
        };
        assert_eq!(store.write(&again).await.expect("write").readings, 1, "{kind:?}");
        store.close().await;
        let store = Store::connect(&db.url).await.expect("a second start has nothing to move");
        assert_eq!(store.counts().await.expect("counts").readings, 5, "{kind:?}");
        store.close().await;
    }
}
