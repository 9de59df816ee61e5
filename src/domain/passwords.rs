//! Password hashing with argon2id on blocking threads, bounded so a burst cannot exhaust memory:
//! each hashing slot owns one argon2 memory block, reused by every hash it runs.

use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;

use crate::domain::error::{DomainError, DomainResult};

/// The working memory of one argon2id run with the default parameters (19456 blocks of 1 KiB).
type Memory = Vec<Block>;

/// Hashes and verifies passwords. argon2id with the crate defaults: m=19456 KiB, t=2, p=1
/// (OWASP's recommendation), each hash on a blocking thread.
///
/// Memory is bounded by the number of slots, not by how many sign-ins arrive: a slot's 19 MiB
/// block is allocated on its first use and kept, so the allocator never sees 19 MiB freed and
/// asked for again (glibc would keep such freed blocks per arena, and resident memory would grow
/// with every burst).
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// One memory block per slot; a permit entitles its holder to one.
    memory: Arc<Mutex<Vec<Memory>>>,
    /// Verified against when no account (or no password) matches, so an unknown email costs
    /// the same time as a wrong password.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// `concurrency` bounds simultaneous hashes (each holds ~19 MiB).
    pub fn new(concurrency: usize) -> DomainResult<Self> {
        let mut random = [0u8; 24];
        rand::fill(&mut random);
        // Its memory is given back at once: an idle instance holds no hashing memory.
        let dummy_hash = hash_with(&random, &mut Vec::new())?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            memory: Arc::new(Mutex::new(Vec::new())),
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> DomainResult<String> {
        let password = password.as_bytes().to_vec();
        self.run(move |memory| hash_with(&password, memory)).await
    }

    /// True when `password` matches `stored`; with no stored hash, still spends the time of a check.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> DomainResult<bool> {
        let password = password.as_bytes().to_vec();
        let (hash, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let matches = self
            .run(move |memory| Ok(verify_with(&password, &hash, memory)))
            .await?;
        Ok(real && matches)
    }

    /// Runs `work` on a blocking thread with a slot's memory block.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> DomainResult<T> + Send + 'static,
    ) -> DomainResult<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(DomainError::unexpected)?;
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        let (result, memory) = tokio::task::spawn_blocking(move || {
            let result = work(&mut memory);
            (result, memory)
        })
        .await
        .map_err(DomainError::unexpected)?;
        self.memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(memory);
        result
    }
}

/// `memory`, grown (once) to what `params` needs.
fn blocks_for<'m>(memory: &'m mut Memory, params: &Params) -> &'m mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    &mut memory[..needed]
}

fn hash_with(password: &[u8], memory: &mut Memory) -> DomainResult<String> {
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(password, &salt, &mut output, blocks_for(memory, &params))
        .map_err(DomainError::unexpected)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(DomainError::unexpected)?,
        salt: Some(Salt::new(&salt).map_err(DomainError::unexpected)?),
        hash: Some(Output::new(&output).map_err(DomainError::unexpected)?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`, computed in `memory`. A hash with other
/// parameters than ours (none today) is checked by the crate with memory of its own.
fn verify_with(password: &[u8], stored: &str, memory: &mut Memory) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm.as_str()),
        Params::try_from(&parsed),
        parsed.salt.as_ref(),
        parsed.hash.as_ref(),
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|version| Version::try_from(version).ok())
        .unwrap_or_default();
    if params.block_count() > Params::default().block_count() {
        return Argon2::default().verify_password(password, &parsed).is_ok();
    }
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut output = vec![0u8; expected.len()];
    if argon2
        .hash_password_into_with_memory(password, salt, &mut output, blocks_for(memory, &params))
        .is_err()
    {
        return false;
    }
    Output::new(&output).is_ok_and(|computed| computed == *expected)
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

    #[tokio::test]
    async fn hashes_agree_with_the_argon2_crate_both_ways() {
        use argon2::PasswordHasher as _;
        let passwords = Passwords::new(1).unwrap();
        let ours = passwords.hash("a fine long passphrase").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"a fine long passphrase", &parsed)
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"another fine passphrase")
            .unwrap()
            .to_string();
        assert!(
            passwords
                .verify("another fine passphrase", Some(&theirs))
                .await
                .unwrap()
        );
        assert!(!passwords.verify("x", Some("not a hash")).await.unwrap());
    }

    #[tokio::test]
    async fn each_slot_keeps_one_memory_block() {
        let passwords = Passwords::new(3).unwrap();
        let hash = passwords.hash("correct horse battery").await.unwrap();
        let checks: Vec<_> = (0..12)
            .map(|_| {
                let passwords = passwords.clone();
                let hash = hash.clone();
                tokio::spawn(
                    async move { passwords.verify("correct horse battery", Some(&hash)).await },
                )
            })
            .collect();
        for check in checks {
            assert!(check.await.unwrap().unwrap());
        }
        let blocks = passwords.memory.lock().unwrap();
        assert!(blocks.len() <= 3, "{} blocks for 3 slots", blocks.len());
        assert!(
            blocks
                .iter()
                .all(|memory| memory.len() == Params::default().block_count())
        );
    }
}
