-- Short-lived keyed values (sessions, reset marks, provider state) with a time
-- to live; expires_at is milliseconds since the Unix epoch.

CREATE TABLE auth_state (
    key        TEXT NOT NULL PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX auth_state_expires_at_idx ON auth_state (expires_at);
