//! Random tokens and their SHA-256 digests: one home for the secrets Gatehouse hands out and
//! keeps only as hashes (invitations, CSRF, SSO flows, one-time form ids, key secrets).

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// `length` characters of `[A-Za-z0-9]` from the thread's CSPRNG (about 5.95 bits each).
pub fn random_token(length: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

/// The SHA-256 of a token, as the database stores it.
pub fn sha256(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_asked_length_and_alphabet_and_differ() {
        let one = random_token(43);
        let two = random_token(43);
        assert_eq!(one.len(), 43);
        assert!(one.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(one, two);
    }

    #[test]
    fn sha256_matches_the_known_digest() {
        let digest = sha256("abc");
        assert_eq!(
            digest[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts ba7816bf"
        );
    }
}
