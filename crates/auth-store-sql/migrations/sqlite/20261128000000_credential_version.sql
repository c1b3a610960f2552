-- The credential version belongs to the auth identity, so a credential change
-- through any provider ends every token and session of the identity. It was
-- kept per provider identity in provider_metadata.credential_version: the
-- identity takes the highest of its provider identities' versions, so tokens
-- issued before this upgrade (which carry that version) stay valid, and the
-- old key is removed.

ALTER TABLE auth_identity ADD COLUMN credential_version INTEGER NOT NULL DEFAULT 0;

UPDATE auth_identity SET credential_version = COALESCE((
    SELECT MAX(CAST(json_extract(p.provider_metadata, '$.credential_version') AS INTEGER))
    FROM provider_identity p
    WHERE p.auth_identity_id = auth_identity.id
      AND json_type(p.provider_metadata, '$.credential_version') = 'integer'
), 0);

UPDATE provider_identity
SET provider_metadata = json_remove(provider_metadata, '$.credential_version')
WHERE json_type(provider_metadata, '$.credential_version') IS NOT NULL;
