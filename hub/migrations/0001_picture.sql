-- The hub's picture. One schema for SQLite and PostgreSQL: integers are BIGINT, booleans are
-- BIGINT 0/1, times are Unix milliseconds, JSON is TEXT.

-- Every summarized event the hub has committed; the primary key makes intake idempotent.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    exercise BIGINT NOT NULL,
    region TEXT NOT NULL,
    incident TEXT,
    body TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX events_incident ON events (incident, exercise, at_ms);
CREATE INDEX events_received ON events (received_ms);

-- Per (incident, exercise, region) the report that counts: latest observed_at, then greatest
-- id, then greatest device (the node's statistics semantics, across nodes).
CREATE TABLE report_latest (
    incident TEXT NOT NULL,
    exercise BIGINT NOT NULL,
    region TEXT NOT NULL,
    node TEXT NOT NULL,
    device TEXT NOT NULL,
    report_id TEXT NOT NULL,
    observed_ms BIGINT NOT NULL,
    stage TEXT NOT NULL,
    hazard TEXT NOT NULL,
    figures TEXT NOT NULL,
    PRIMARY KEY (incident, exercise, region)
);

CREATE TABLE incidents (
    id TEXT NOT NULL,
    exercise BIGINT NOT NULL,
    hazard TEXT NOT NULL,
    first_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    reports BIGINT NOT NULL,
    PRIMARY KEY (id, exercise)
);

-- The current state of every warning a node raised (colour NULL once cleared).
CREATE TABLE warnings (
    wkey TEXT NOT NULL,
    exercise BIGINT NOT NULL,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    station TEXT,
    region TEXT NOT NULL,
    incident TEXT,
    colour TEXT,
    value DOUBLE PRECISION,
    threshold DOUBLE PRECISION,
    raised_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    cap_id TEXT,
    PRIMARY KEY (wkey, exercise)
);

-- The response level in force per subject: an incident, or a division with warnings and no
-- incident (`region:CODE`).
CREATE TABLE levels (
    subject TEXT NOT NULL,
    exercise BIGINT NOT NULL,
    level BIGINT,
    assessment TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (subject, exercise)
);

-- Every change of a level, with the rule and the inputs it saw: the answer to "why Ⅱ?".
CREATE TABLE assessments (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    exercise BIGINT NOT NULL,
    incident TEXT,
    division TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    level BIGINT,
    previous BIGINT,
    change TEXT NOT NULL,
    rule TEXT,
    reason TEXT NOT NULL,
    inputs TEXT NOT NULL,
    actions TEXT NOT NULL,
    matched TEXT NOT NULL,
    trigger_event TEXT,
    cap_id TEXT
);
CREATE INDEX assessments_subject ON assessments (subject, exercise, at_ms);
CREATE INDEX assessments_at ON assessments (at_ms);

CREATE TABLE cap_alerts (
    identifier TEXT PRIMARY KEY,
    sent_ms BIGINT NOT NULL,
    exercise BIGINT NOT NULL,
    source TEXT NOT NULL,
    source_key TEXT NOT NULL,
    msg_type TEXT NOT NULL,
    summary TEXT NOT NULL,
    xml TEXT NOT NULL
);
CREATE INDEX cap_alerts_source ON cap_alerts (source_key, sent_ms);
CREATE INDEX cap_alerts_sent ON cap_alerts (sent_ms);

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    online BIGINT NOT NULL,
    status_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    version TEXT,
    outbox BIGINT,
    outbox_oldest_s DOUBLE PRECISION,
    events BIGINT NOT NULL
);

CREATE TABLE stations (
    node TEXT NOT NULL,
    station TEXT NOT NULL,
    region TEXT NOT NULL,
    online BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (node, station)
);

-- API tokens: only a SHA-256 of each token is kept.
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
