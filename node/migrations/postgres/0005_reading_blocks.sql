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
-- Finds the latest time a series holds (one seek for MAX), the blocks a late reading could be
-- in, the blocks since a time (restart), and the blocks past the raw horizon (retention).
CREATE INDEX reading_blocks_last ON reading_blocks (device, name, last_us);

-- The rows of the one-row-per-reading table are packed into blocks by the node at its first
-- start after this migration (Store::connect), which then drops this table.
ALTER TABLE readings RENAME TO legacy_readings;
