-- Auth identities and the provider identities linked to them.
-- Same shape as the SQLite schema; JSON columns are JSONB, timestamps timestamptz.

CREATE TABLE auth_identity (
    id           TEXT PRIMARY KEY,
    app_metadata JSONB NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE provider_identity (
    id                TEXT PRIMARY KEY,
    entity_id         TEXT NOT NULL,
    provider          TEXT NOT NULL,
    auth_identity_id  TEXT NOT NULL REFERENCES auth_identity (id) ON DELETE CASCADE,
    user_metadata     JSONB NULL,
    provider_metadata JSONB NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    CONSTRAINT provider_identity_entity_id_provider_key UNIQUE (entity_id, provider)
);

CREATE INDEX provider_identity_auth_identity_id_idx ON provider_identity (auth_identity_id);
