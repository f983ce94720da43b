-- The duty officer console (issue 6): users, sessions, the login slowdown and drill results.
-- Same conventions as 0001.

-- Console users: only an argon2id hash (PHC string) of each password is kept.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    -- viewer | officer | commander | admin
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Console sessions: only a SHA-256 of the session cookie is kept. The role comes from `users`
-- at every request, so removing a user or changing a role takes effect at once.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (username);
CREATE INDEX sessions_expires ON sessions (expires_ms);

-- Failed logins per subject (`user:NAME` or `addr:IP`): the next attempt waits longer.
CREATE TABLE login_failures (
    subject TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_ms BIGINT NOT NULL
);

-- After-action evaluations of drills (the simulator's), kept as sent; idempotent on id.
CREATE TABLE drills (
    id TEXT PRIMARY KEY,
    scenario TEXT NOT NULL,
    -- u64 as decimal text: BIGINT is signed.
    seed TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT NOT NULL,
    passed BIGINT NOT NULL,
    summary TEXT NOT NULL,
    html TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX drills_started ON drills (started_ms);
