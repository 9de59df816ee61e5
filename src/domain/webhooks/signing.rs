//! An endpoint's secrets: the signing secret (`whsec_…`) and the signatures made with it (Standard
//! Webhooks' `v1,` signature, the seeds' `X-Webhook-Signature`), and how the signing secret and the
//! receiver's credentials are sealed at rest.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;

use crate::domain::error::{DomainError, DomainResult};
use crate::domain::sealing::SecretKey;

use super::endpoints::ReceiverAuth;

/// How long a rolled secret keeps signing beside the new one.
pub const SECRET_OVERLAP: time::Duration = time::Duration::hours(24);
/// Random bytes in a signing secret (Standard Webhooks allows 24 to 64).
const SECRET_BYTES: usize = 32;
const SECRET_PREFIX: &str = "whsec_";

/// A signing secret: `whsec_` and the base64 of random bytes.
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// What the endpoint's owner copies once: `whsec_…`.
    pub fn reveal(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256 of "{id}.{timestamp}.{body}".
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The seeds' `X-Webhook-Signature`: `sha256=` and the hex HMAC-SHA256 of the body.
    pub fn sign_seed(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256={hex}")
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

/// What a signing secret is sealed to: its endpoint, so a sealed secret cannot be moved to another.
pub(crate) fn secret_context(endpoint_id: Uuid) -> String {
    format!("webhook_endpoint.secret:{endpoint_id}")
}

/// What a receiver's credentials are sealed to.
pub(crate) fn auth_context(endpoint_id: Uuid) -> String {
    format!("webhook_endpoint.auth:{endpoint_id}")
}

/// The receiver's credentials, sealed; `None` when there are none.
pub(super) fn seal_auth(
    key: &SecretKey,
    endpoint_id: Uuid,
    auth: &ReceiverAuth,
) -> DomainResult<Option<Vec<u8>>> {
    if *auth == ReceiverAuth::None {
        return Ok(None);
    }
    let plain = serde_json::to_vec(auth).map_err(DomainError::unexpected)?;
    Ok(Some(key.seal(&plain, &auth_context(endpoint_id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_matches_the_standard_webhooks_example() {
        // The example in the Standard Webhooks specification's test vectors.
        let secret =
            SigningSecret::from_bytes(STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap());
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_whsec_and_32_random_bytes() {
        let secret = SigningSecret::generate();
        let shown = secret.reveal();
        assert!(shown.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&shown[6..]).unwrap().len(), 32);
        assert_ne!(shown, SigningSecret::generate().reveal());
    }
}
