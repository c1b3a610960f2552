-- Passkey (WebAuthn) credentials, kept beside the identities they sign in:
-- deleting an auth identity deletes them (ON DELETE CASCADE).
-- Timestamps are UTC RFC 3339 text with six fraction digits, as elsewhere;
-- JSON columns hold JSON as text; booleans are 0 or 1.

-- A credential id is unique per provider: the database decides it, whatever
-- runs concurrently. credential is the relying party's record of the
-- credential (public key, algorithm, flags); transports a JSON array of
-- strings; sign_count the last signature counter seen, which a login moves
-- with one conditional UPDATE (a compare-and-set). email is lower-cased, or
-- NULL when none was given.
CREATE TABLE auth_passkey (
    id               TEXT NOT NULL PRIMARY KEY,
    auth_identity_id TEXT NOT NULL REFERENCES auth_identity (id) ON DELETE CASCADE,
    provider         TEXT NOT NULL,
    credential_id    TEXT NOT NULL,
    user_handle      TEXT NOT NULL,
    email            TEXT NULL,
    name             TEXT NOT NULL,
    credential       TEXT NOT NULL,
    sign_count       INTEGER NOT NULL,
    backed_up        INTEGER NOT NULL CHECK (backed_up IN (0, 1)),
    transports       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    last_used_at     TEXT NULL,
    UNIQUE (provider, credential_id)
);

CREATE INDEX auth_passkey_auth_identity_id_idx ON auth_passkey (auth_identity_id, created_at);
CREATE INDEX auth_passkey_provider_email_idx ON auth_passkey (provider, email);
