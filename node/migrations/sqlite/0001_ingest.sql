-- Field reports: one row per (device, id); a resend is a no-op.
CREATE TABLE reports (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    device         TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    incident       TEXT    NOT NULL,
    stage          TEXT    NOT NULL,
    hazard         TEXT    NOT NULL,
    observed_at    TEXT    NOT NULL,
    observed_at_ms INTEGER NOT NULL,
    lat            REAL    NOT NULL,
    lon            REAL    NOT NULL,
    region         TEXT    NOT NULL,
    region_source  TEXT    NOT NULL,
    figures        TEXT    NOT NULL,
    text           TEXT,
    exercise       INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    UNIQUE (device, id)
);
CREATE INDEX reports_incident_region ON reports (incident, region);

-- Sensor readings: a reading's identity is (device, name, time).
CREATE TABLE readings (
    device         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    time_us        INTEGER NOT NULL,
    unit           TEXT,
    value_num      REAL,
    value_str      TEXT,
    value_bool     INTEGER,
    value_data     BLOB,
    sum            REAL,
    registered     INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (device, name, time_us)
) WITHOUT ROWID;

-- Images attached to reports, kept with the type found from their bytes.
CREATE TABLE media (
    device         TEXT    NOT NULL,
    report_id      TEXT    NOT NULL,
    sha256         TEXT    NOT NULL,
    content_type   TEXT    NOT NULL,
    size           INTEGER NOT NULL,
    bytes          BLOB    NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (device, report_id, sha256)
);

-- Every device the node has heard from, registered or not.
CREATE TABLE devices (
    device        TEXT    PRIMARY KEY,
    registered    INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    online        INTEGER,
    battery       REAL,
    status_at_ms  INTEGER
);
