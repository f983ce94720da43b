-- Resources, proposals, orders and the audit log (issue 5). Same conventions as 0001.

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    node TEXT NOT NULL,
    province TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    capabilities TEXT NOT NULL,
    size BIGINT NOT NULL,
    -- available | assigned | unavailable; `assigned` only with the order that holds it.
    status TEXT NOT NULL,
    order_id TEXT,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE stockpiles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    province TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- Stock never goes below zero: the CHECK backs the conditional UPDATE that books it.
CREATE TABLE stock (
    stockpile TEXT NOT NULL,
    item TEXT NOT NULL,
    qty BIGINT NOT NULL CHECK (qty >= 0),
    PRIMARY KEY (stockpile, item)
);

CREATE TABLE hazards (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    geometry TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE targets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    people BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE proposals (
    id TEXT PRIMARY KEY,
    incident TEXT NOT NULL,
    exercise BIGINT NOT NULL,
    assessment TEXT,
    region TEXT NOT NULL,
    dest_lat DOUBLE PRECISION NOT NULL,
    dest_lon DOUBLE PRECISION NOT NULL,
    -- proposed | approved | rejected
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    ack_within_s BIGINT NOT NULL,
    automatic BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    decided_ms BIGINT,
    decided_by TEXT,
    reason TEXT,
    escalated_from TEXT
);
CREATE INDEX proposals_status ON proposals (status, created_ms);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    proposal TEXT NOT NULL,
    incident TEXT NOT NULL,
    exercise BIGINT NOT NULL,
    team TEXT NOT NULL,
    node TEXT NOT NULL,
    capability TEXT NOT NULL,
    -- issued | received | accepted | en_route | on_scene | completed | declined | overdue
    status TEXT NOT NULL,
    issued_ms BIGINT NOT NULL,
    due_ms BIGINT NOT NULL,
    ack_within_s BIGINT NOT NULL,
    status_ms BIGINT NOT NULL,
    resent BIGINT NOT NULL,
    escalated_to TEXT,
    signed TEXT NOT NULL
);
CREATE INDEX orders_status ON orders (status, due_ms);

CREATE TABLE order_events (
    order_id TEXT NOT NULL,
    ack_id TEXT NOT NULL,
    status TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    note TEXT,
    PRIMARY KEY (order_id, ack_id)
);

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE audit (
    id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    who TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    remote TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at_ms);

-- The hub's signing key, made on first start.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    public TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
