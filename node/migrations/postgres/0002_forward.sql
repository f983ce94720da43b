-- Summarized events waiting for the hub's receipt. Written in the same transaction as the data
-- they come from; deleted when the hub's receipt names them.
CREATE TABLE outbox (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT    NOT NULL UNIQUE,
    kind           TEXT    NOT NULL,
    -- Statistics snapshots of one (incident, exercise, division): a newer one replaces an older
    -- one that has not been receipted yet.
    coalesce_key   TEXT,
    payload        TEXT    NOT NULL,
    created_ms     BIGINT  NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_sent_ms   BIGINT
);
CREATE INDEX outbox_coalesce ON outbox (coalesce_key);

-- The latest report of each (incident, exercise, region): the input of region statistics.
CREATE TABLE report_latest (
    incident       TEXT    NOT NULL,
    exercise       BOOLEAN NOT NULL,
    region         TEXT    NOT NULL,
    observed_at_ms BIGINT  NOT NULL,
    id             TEXT    NOT NULL,
    device         TEXT    NOT NULL,
    figures        TEXT    NOT NULL,
    PRIMARY KEY (incident, exercise, region)
);
