-- Downsampled numeric readings, kept after the raw readings expire.
CREATE TABLE readings_minute (
    device        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    bucket_us     INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    sum           REAL    NOT NULL,
    min           REAL    NOT NULL,
    max           REAL    NOT NULL,
    last_time_us  INTEGER NOT NULL,
    PRIMARY KEY (device, name, bucket_us)
) WITHOUT ROWID;

CREATE TABLE readings_hour (
    device        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    bucket_us     INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    sum           REAL    NOT NULL,
    min           REAL    NOT NULL,
    max           REAL    NOT NULL,
    last_time_us  INTEGER NOT NULL,
    PRIMARY KEY (device, name, bucket_us)
) WITHOUT ROWID;

-- Every (device, name) series that has readings: retention walks it to reach old readings by
-- the readings' primary key, so that ingest pays for no index on time.
CREATE TABLE series (
    device TEXT NOT NULL,
    name   TEXT NOT NULL,
    PRIMARY KEY (device, name)
);
INSERT INTO series (device, name) SELECT DISTINCT device, name FROM readings;
