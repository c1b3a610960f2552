-- MFA factors, recovery codes and verifications, kept beside the identities
-- they belong to: deleting an auth identity deletes them (ON DELETE CASCADE).
-- Timestamps are UTC RFC 3339 text with six fraction digits, as elsewhere;
-- JSON columns hold a JSON object as text, or NULL.

-- "One active (pending or enabled) factor per identity and provider" is the
-- partial unique index: the database decides it, whatever runs concurrently.
-- last_used_step is the last TOTP time step accepted (a code works once).
CREATE TABLE auth_mfa_factor (
    id               TEXT NOT NULL PRIMARY KEY,
    auth_identity_id TEXT NOT NULL REFERENCES auth_identity (id) ON DELETE CASCADE,
    provider         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'enabled', 'disabled')),
    secret           TEXT NOT NULL,
    metadata         TEXT NULL,
    last_used_step   INTEGER NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE UNIQUE INDEX auth_mfa_factor_active_key ON auth_mfa_factor (auth_identity_id, provider)
    WHERE status IN ('pending', 'enabled');
CREATE INDEX auth_mfa_factor_auth_identity_id_idx ON auth_mfa_factor (auth_identity_id, created_at);

-- Unspent recovery codes, as keyed hashes; spending one deletes its row.
CREATE TABLE auth_recovery_code (
    auth_identity_id TEXT NOT NULL REFERENCES auth_identity (id) ON DELETE CASCADE,
    code_hash        TEXT NOT NULL,
    PRIMARY KEY (auth_identity_id, code_hash)
);

-- One row per (identity, entity_id, entity_type). code_hash is the pending
-- code's hash (NULL once used); confirming looks a row up by it alone.
CREATE TABLE auth_verification (
    id               TEXT NOT NULL PRIMARY KEY,
    auth_identity_id TEXT NOT NULL REFERENCES auth_identity (id) ON DELETE CASCADE,
    entity_id        TEXT NOT NULL,
    entity_type      TEXT NOT NULL,
    code_provider    TEXT NOT NULL,
    code_hash        TEXT NULL,
    expires_at       TEXT NOT NULL,
    requested_at     TEXT NOT NULL,
    verified_at      TEXT NULL,
    metadata         TEXT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (auth_identity_id, entity_id, entity_type)
);

CREATE UNIQUE INDEX auth_verification_code_hash_key ON auth_verification (code_hash);
