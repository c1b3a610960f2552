//! Secure randomness and its hex form, for ids, token ids and session ids.

/// Fills `buf` from the operating system's secure random source.
///
/// # Panics
/// Only if the OS has no random source at all, which no supported platform lacks.
pub(crate) fn fill(buf: &mut [u8]) {
    // Invariant: getrandom only fails on platforms without an entropy source.
    getrandom::getrandom(buf).expect("the operating system's random source failed");
}

/// `n` random bytes as `2n` lowercase hex characters.
pub(crate) fn token_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fill(&mut buf);
    hex::encode(buf)
}
