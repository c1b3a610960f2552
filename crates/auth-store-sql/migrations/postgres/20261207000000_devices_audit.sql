-- Devices and the audit log.
-- Same shape as the SQLite schema; JSON columns are JSONB, timestamps
-- timestamptz.

-- A device: a session or a refresh-able token family of an auth identity.
-- Deleting the auth identity deletes its devices (ON DELETE CASCADE).
-- last_seen_at only moves forward (a conditional UPDATE); idle devices are
-- swept through its index.
CREATE TABLE auth_device (
    id               TEXT PRIMARY KEY,
    auth_identity_id TEXT NOT NULL REFERENCES auth_identity (id) ON DELETE CASCADE,
    actor_type       TEXT NOT NULL,
    auth_provider    TEXT NOT NULL,
    user_agent       TEXT NULL,
    network          TEXT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    last_seen_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX auth_device_auth_identity_id_idx ON auth_device (auth_identity_id, created_at);
CREATE INDEX auth_device_last_seen_at_idx ON auth_device (last_seen_at);

-- The audit log: append-only and hash-chained. seq is the entry's position
-- in the chain (1, 2, 3, ... with no gaps), assigned by the store under the
-- chain row's lock (SELECT ... FOR UPDATE), so appends from every process
-- sharing the database serialise; hash = SHA-256(prev_hash || canonical
-- entry). `at` is whole milliseconds (it is hashed). auth_identity_id is no
-- foreign key: entries outlive the identities they name. detail is a JSON
-- object.
CREATE TABLE auth_audit (
    seq              BIGINT PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    at               TIMESTAMPTZ NOT NULL,
    action           TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    auth_identity_id TEXT NULL,
    actor_type       TEXT NULL,
    provider         TEXT NULL,
    network          TEXT NULL,
    user_agent       TEXT NULL,
    detail           JSONB NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL
);

CREATE INDEX auth_audit_auth_identity_id_idx ON auth_audit (auth_identity_id, seq);
CREATE INDEX auth_audit_action_idx ON auth_audit (action, seq);
CREATE INDEX auth_audit_at_idx ON auth_audit (at);

-- The chain's one row: its head (the seq and hash of the newest entry ever
-- appended; 0 and 64 zeros before the first) and, once a retention sweep
-- removed entries, where it starts (the first kept entry's seq and the hash
-- it follows). Appends and sweeps lock this row first.
CREATE TABLE auth_audit_chain (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    head_seq        BIGINT NOT NULL,
    head_hash       TEXT NOT NULL,
    start_seq       BIGINT NULL,
    start_prev_hash TEXT NULL
);

INSERT INTO auth_audit_chain (id, head_seq, head_hash, start_seq, start_prev_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', NULL, NULL);
