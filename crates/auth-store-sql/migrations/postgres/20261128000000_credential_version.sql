-- The credential version belongs to the auth identity, so a credential change
-- through any provider ends every token and session of the identity. It was
-- kept per provider identity in provider_metadata.credential_version: the
-- identity takes the highest of its provider identities' versions, so tokens
-- issued before this upgrade (which carry that version) stay valid, and the
-- old key is removed.

ALTER TABLE auth_identity ADD COLUMN credential_version BIGINT NOT NULL DEFAULT 0;

UPDATE auth_identity a SET credential_version = v.version
FROM (
    SELECT auth_identity_id, MAX((provider_metadata ->> 'credential_version')::bigint) AS version
    FROM provider_identity
    WHERE jsonb_typeof(provider_metadata -> 'credential_version') = 'number'
    GROUP BY auth_identity_id
) v
WHERE v.auth_identity_id = a.id;

UPDATE provider_identity
SET provider_metadata = provider_metadata - 'credential_version'
WHERE provider_metadata ? 'credential_version';
