//! Password hashing with argon2id on blocking threads, bounded so a burst cannot exhaust memory.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

use crate::domain::error::{DomainError, DomainResult};

/// Hashes and verifies passwords. argon2id with the crate defaults: m=19456 KiB, t=2, p=1
/// (OWASP's recommendation), each hash on a blocking thread.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified against when no account (or no password) matches, so an unknown email costs
    /// the same time as a wrong password.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// `concurrency` bounds simultaneous hashes (each holds ~19 MiB).
    pub fn new(concurrency: usize) -> DomainResult<Self> {
        let mut random = [0u8; 24];
        rand::fill(&mut random);
        let dummy_hash = hash_blocking(&random)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> DomainResult<String> {
        let password = password.as_bytes().to_vec();
        self.run(move || hash_blocking(&password)).await
    }

    /// True when `password` matches `stored`; with no stored hash, still spends the time of a check.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> DomainResult<bool> {
        let password = password.as_bytes().to_vec();
        let (hash, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let matches = self
            .run(move || {
                Ok(Argon2::default()
                    .verify_password(&password, hash.as_str())
                    .is_ok())
            })
            .await?;
        Ok(real && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> DomainResult<T> + Send + 'static,
    ) -> DomainResult<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(DomainError::unexpected)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(DomainError::unexpected)?
    }
}

fn hash_blocking(password: &[u8]) -> DomainResult<String> {
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(DomainError::unexpected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let passwords = Passwords::new(2).unwrap();
        let hash = passwords.hash("correct horse battery").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("correct horse"));
        assert!(
            passwords
                .verify("correct horse battery", Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("correct horse battery!", Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("correct horse battery", None)
                .await
                .unwrap()
        );
    }
}
