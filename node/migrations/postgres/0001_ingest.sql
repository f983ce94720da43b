-- Field reports: one row per (device, id); a resend is a no-op.
CREATE TABLE reports (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device         TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    incident       TEXT    NOT NULL,
    stage          TEXT    NOT NULL,
    hazard         TEXT    NOT NULL,
    observed_at    TEXT    NOT NULL,
    observed_at_ms BIGINT  NOT NULL,
    lat            DOUBLE PRECISION NOT NULL,
    lon            DOUBLE PRECISION NOT NULL,
    region         TEXT    NOT NULL,
    region_source  TEXT    NOT NULL,
    figures        TEXT    NOT NULL,
    text           TEXT,
    exercise       BOOLEAN NOT NULL,
    received_at_ms BIGINT  NOT NULL,
    UNIQUE (device, id)
);
CREATE INDEX reports_incident_region ON reports (incident, region);

-- Sensor readings: a reading's identity is (device, name, time).
CREATE TABLE readings (
    device         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    time_us        BIGINT  NOT NULL,
    unit           TEXT,
    value_num      DOUBLE PRECISION,
    value_str      TEXT,
    value_bool     BOOLEAN,
    value_data     BYTEA,
    sum            DOUBLE PRECISION,
    registered     BOOLEAN NOT NULL,
    received_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (device, name, time_us)
);

-- Images attached to reports, kept with the type found from their bytes.
CREATE TABLE media (
    device         TEXT    NOT NULL,
    report_id      TEXT    NOT NULL,
    sha256         TEXT    NOT NULL,
    content_type   TEXT    NOT NULL,
    size           BIGINT  NOT NULL,
    bytes          BYTEA   NOT NULL,
    received_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (device, report_id, sha256)
);

-- Every device the node has heard from, registered or not.
CREATE TABLE devices (
    device        TEXT    PRIMARY KEY,
    registered    BOOLEAN NOT NULL,
    last_seen_ms  BIGINT  NOT NULL,
    online        BOOLEAN,
    battery       DOUBLE PRECISION,
    status_at_ms  BIGINT
);
