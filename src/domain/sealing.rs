//! Secrets Gatehouse must read back (webhook signing secrets, receivers' credentials), sealed at
//! rest with AES-256-GCM under `GATEHOUSE_SECRET_KEY`: a random 96-bit nonce, then the ciphertext
//! with its tag. Each value is bound to where it is stored (the associated data), so a sealed value
//! copied into another row or column does not open.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

const NONCE_BYTES: usize = 12;

/// The deployment's secret key. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey(Aes256Gcm);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

/// A sealed value would not open: the wrong key, or a value moved or damaged.
#[derive(Debug, thiserror::Error)]
#[error(
    "a sealed secret does not open with GATEHOUSE_SECRET_KEY (another key, or a damaged value)"
)]
pub struct Unopenable;

impl SecretKey {
    /// Reads 32 bytes in standard base64 (what `openssl rand -base64 32` prints).
    pub fn parse(encoded: &str) -> Result<Self, String> {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|_| {
            "must be 32 random bytes in base64 (openssl rand -base64 32)".to_owned()
        })?;
        if bytes.len() != 32 {
            return Err(format!(
                "must be 32 random bytes in base64 (openssl rand -base64 32), not {} bytes",
                bytes.len()
            ));
        }
        Ok(Self(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes))))
    }

    /// Seals `plain` for the place named by `context` (e.g. "webhook_endpoint.secret:<id>").
    pub fn seal(&self, plain: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            // AES-GCM fails only for messages of more than 64 GiB.
            .unwrap_or_default();
        [nonce.as_slice(), &sealed].concat()
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, Unopenable> {
        if sealed.len() < NONCE_BYTES {
            return Err(Unopenable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Unopenable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::parse(&STANDARD.encode([byte; 32])).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let sealed = key(1).seal(b"whsec_abc", "endpoint:1");
        assert!(!sealed.windows(9).any(|w| w == b"whsec_abc"));
        assert_eq!(key(1).open(&sealed, "endpoint:1").unwrap(), b"whsec_abc");
        assert!(key(2).open(&sealed, "endpoint:1").is_err());
        assert!(key(1).open(&sealed, "endpoint:2").is_err());
        assert_ne!(
            sealed,
            key(1).seal(b"whsec_abc", "endpoint:1"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn the_key_must_be_32_bytes_of_base64() {
        assert!(SecretKey::parse("not base64!").is_err());
        let short = SecretKey::parse(&STANDARD.encode([0u8; 16])).unwrap_err();
        assert!(short.contains("not 16 bytes"), "{short}");
        assert!(SecretKey::parse(&STANDARD.encode([7u8; 32])).is_ok());
    }
}
