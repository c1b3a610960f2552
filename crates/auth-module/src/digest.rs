//! Digests of secrets: what the module keeps of a session id, a reset token
//! id, a verification code or a rate-limited identifier.

/// Lowercase hex SHA-256 of `s`: what the state store keeps of a secret id.
pub(crate) fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}
