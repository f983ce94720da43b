-- Readings packed per series and batch: one row holds the readings of one (device, name) that
-- one batch stored (the packing is node/src/store/blocks.rs). A reading's identity is still
-- (device, name, time): the store puts a time into a block only when no block of the series
-- holds it, so the same time never appears twice in a series and first_us is unique in it.
CREATE TABLE reading_blocks (
    device         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    first_us       BIGINT  NOT NULL,
    last_us        BIGINT  NOT NULL,
    n              INTEGER NOT NULL,
    registered     BOOLEAN NOT NULL,
    received_at_ms BIGINT  NOT NULL,
    data           BYTEA   NOT NULL,
    PRIMARY KEY (device, name, first_us)
);
-- What each series holds: its latest time (a batch whose readings are all later is new without
-- a look at the blocks) and its widest block, last_us - first_us (so that the blocks holding a
-- time t start within [t - span_us, t] and every query walks the key above, with no second
-- index to keep up per block).
ALTER TABLE series ADD COLUMN last_us BIGINT;
ALTER TABLE series ADD COLUMN span_us BIGINT NOT NULL DEFAULT 0;

-- The rows of the one-row-per-reading table are packed into blocks by the node at its first
-- start after this migration (Store::connect), which then drops this table.
ALTER TABLE readings RENAME TO legacy_readings;
