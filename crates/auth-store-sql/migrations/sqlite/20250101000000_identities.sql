-- Auth identities and the provider identities linked to them.
-- Timestamps are UTC RFC 3339 text with exactly six fraction digits
-- (`2025-01-01T12:00:00.000000Z`), so text order is time order.
-- JSON columns hold a JSON object as text, or NULL.

CREATE TABLE auth_identity (
    id           TEXT NOT NULL PRIMARY KEY,
    app_metadata TEXT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE provider_identity (
    id                TEXT NOT NULL PRIMARY KEY,
    entity_id         TEXT NOT NULL,
    provider          TEXT NOT NULL,
    auth_identity_id  TEXT NOT NULL REFERENCES auth_identity (id) ON DELETE CASCADE,
    user_metadata     TEXT NULL,
    provider_metadata TEXT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (entity_id, provider)
);

CREATE INDEX provider_identity_auth_identity_id_idx ON provider_identity (auth_identity_id);
