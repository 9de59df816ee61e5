//! The key format: `<prefix>_<live|test>_` + 32 base62 characters from the CSPRNG + 6 base62
//! characters of CRC32 over everything before them (GitHub's token format). Generating, parsing
//! without the database, the stored SHA-256, the last four characters and the masked form.

use std::fmt;

use rand::Rng;

use crate::domain::tokens::sha256;
use crate::vocabulary::Environment;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters: 32 base62 characters carry about 190 bits.
pub const RANDOM_CHARS: usize = 32;
/// Checksum characters: CRC32 written in base62, fixed width.
pub const CHECKSUM_CHARS: usize = 6;
/// A `static`, not a `const`: a `const` is a fresh copy (its 1 KiB table included) at every use.
/// Slice-by-16 tables: a key's checksum is computed on every verification.
static CRC32: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

/// Why a string is not a key. Found without touching the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    Prefix,
    Environment,
    Length,
    Alphabet,
    Checksum,
}

/// A freshly generated key. The secret exists only in this value: show it once, store its hash.
pub struct NewKey {
    secret: String,
    pub environment: Environment,
}

impl NewKey {
    pub fn generate(prefix: &str, environment: Environment) -> Self {
        Self {
            secret: checksummed(&format!("{prefix}_{}_", environment.as_str())),
            environment,
        }
    }

    pub fn expose(&self) -> &str {
        &self.secret
    }

    pub fn hash(&self) -> [u8; 32] {
        hash(&self.secret)
    }

    pub fn last_four(&self) -> String {
        last_four(&self.secret)
    }
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewKey({}, ••••{})", self.environment, self.last_four())
    }
}

/// A key presented by a client that has the right shape and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey {
    pub environment: Environment,
    pub hash: [u8; 32],
}

/// Checks prefix, environment, length, alphabet and checksum, in that order.
pub fn parse(prefix: &str, key: &str) -> Result<ParsedKey, Malformed> {
    let rest = key
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .ok_or(Malformed::Prefix)?;
    let (environment, body) = rest.split_once('_').ok_or(Malformed::Environment)?;
    let environment = Environment::parse(environment).ok_or(Malformed::Environment)?;
    if body.len() != RANDOM_CHARS + CHECKSUM_CHARS {
        return Err(Malformed::Length);
    }
    if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Malformed::Alphabet);
    }
    let (signed, sum) = key.split_at(key.len() - CHECKSUM_CHARS);
    if checksum(signed) != sum {
        return Err(Malformed::Checksum);
    }
    Ok(ParsedKey {
        environment,
        hash: hash(key),
    })
}

/// The SHA-256 to look a presented key up by: a key in Gatehouse's format with a good checksum,
/// or one matching the legacy pattern (`GATEHOUSE_LEGACY_KEY_PATTERN`); none otherwise, and then
/// the key is no key at all and never reaches the database.
pub fn lookup_hash(prefix: &str, legacy: Option<&regex::Regex>, key: &str) -> Option<[u8; 32]> {
    match parse(prefix, key) {
        Ok(parsed) => Some(parsed.hash),
        Err(_) => legacy
            .is_some_and(|pattern| pattern.is_match(key))
            .then(|| hash(key)),
    }
}

/// Whether some text holds a secret of this deployment: `presented` (the key a call came with)
/// anywhere in it, or a word (between spaces and commas, `Bearer` and the like being words too)
/// shaped like a key: `<prefix>_` then base62 and underscores (a key, a mistyped one, a management
/// token), or a match of the legacy pattern. Allocates nothing.
pub fn holds_key(prefix: &str, legacy: Option<&regex::Regex>, presented: &str, text: &str) -> bool {
    (!presented.is_empty() && text.contains(presented))
        || text
            .split([' ', '\t', ','])
            .filter(|word| !word.is_empty())
            .any(|word| {
                word.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .is_some_and(|rest| {
                        !rest.is_empty()
                            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                    || legacy.is_some_and(|pattern| pattern.is_match(word))
            })
}

/// `head` + 32 random base62 characters + their checksum: the shape of keys and of management
/// tokens (`<prefix>_mgmt_…`).
pub fn checksummed(head: &str) -> String {
    let mut rng = rand::rng();
    let mut secret = head.to_owned();
    for _ in 0..RANDOM_CHARS {
        secret.push(char::from(BASE62[rng.random_range(0..BASE62.len())]));
    }
    let checksum = checksum(&secret);
    secret.push_str(&checksum);
    secret
}

/// Whether `text` is `head` + 32 base62 characters + their checksum.
pub fn is_checksummed(head: &str, text: &str) -> bool {
    text.strip_prefix(head).is_some_and(|body| {
        body.len() == RANDOM_CHARS + CHECKSUM_CHARS
            && body.bytes().all(|b| b.is_ascii_alphanumeric())
            && {
                let (signed, sum) = text.split_at(text.len() - CHECKSUM_CHARS);
                checksum_digits(signed) == sum.as_bytes()
            }
    })
}

fn checksum(signed: &str) -> String {
    checksum_digits(signed)
        .iter()
        .map(|b| char::from(*b))
        .collect()
}

/// CRC32 of `signed` in base62, fixed width.
fn checksum_digits(signed: &str) -> [u8; CHECKSUM_CHARS] {
    let mut value = u64::from(CRC32.checksum(signed.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_CHARS];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[usize::try_from(value % 62).unwrap_or(0)];
        value /= 62;
    }
    digits
}

/// What is stored of a key: its SHA-256.
pub fn hash(key: &str) -> [u8; 32] {
    sha256(key)
}

pub fn last_four(key: &str) -> String {
    key.chars()
        .skip(key.chars().count().saturating_sub(4))
        .collect()
}

/// Whether `presented` is the key whose hash is `stored_hash`; malformed when it is no key at all.
pub fn is_key(prefix: &str, presented: &str, stored_hash: &[u8]) -> Result<bool, Malformed> {
    let parsed = parse(prefix, presented)?;
    Ok(parsed.hash.as_slice() == stored_hash)
}

/// How a key is shown: [`masked`], or `••••4f2a` for a legacy key (its format is the platform's).
pub fn shown(prefix: &str, environment: Environment, last_four: &str, legacy: bool) -> String {
    if legacy {
        format!("••••{last_four}")
    } else {
        masked(prefix, environment, last_four)
    }
}

/// How a key is listed: `ak_live_••••4f2a`.
pub fn masked(prefix: &str, environment: Environment, last_four: &str) -> String {
    format!("{prefix}_{environment}_••••{last_four}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_parse_back() {
        for environment in Environment::ALL {
            let key = NewKey::generate("ak", environment);
            let text = key.expose();
            let head = format!("ak_{environment}_");
            assert!(text.starts_with(&head));
            assert_eq!(text.len(), head.len() + RANDOM_CHARS + CHECKSUM_CHARS);
            let parsed = parse("ak", text).unwrap();
            assert_eq!(parsed.environment, environment);
            assert_eq!(parsed.hash, key.hash());
            assert_eq!(key.last_four(), &text[text.len() - 4..]);
            assert!(!format!("{key:?}").contains(&text[8..20]));
        }
    }

    #[test]
    fn a_presented_key_is_told_apart_from_another_key_and_from_no_key() {
        let key = NewKey::generate("ak", Environment::Test);
        let other = NewKey::generate("ak", Environment::Test);
        assert_eq!(is_key("ak", key.expose(), &key.hash()), Ok(true));
        assert_eq!(is_key("ak", other.expose(), &key.hash()), Ok(false));
        assert_eq!(is_key("ak", "hello", &key.hash()), Err(Malformed::Prefix));
    }

    #[test]
    fn keys_are_unique() {
        let a = NewKey::generate("ak", Environment::Live);
        let b = NewKey::generate("ak", Environment::Live);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn any_one_character_change_is_caught() {
        // Property: for many keys, every single-character substitution in the random part or
        // the checksum is refused (as a checksum or alphabet error), never accepted.
        for _ in 0..50 {
            let key = NewKey::generate("ak", Environment::Test);
            let text = key.expose();
            let start = "ak_test_".len();
            for position in start..text.len() {
                for replacement in [b'0', b'Z', b'z', b'q'] {
                    let mut bytes = text.as_bytes().to_vec();
                    if bytes[position] == replacement {
                        continue;
                    }
                    bytes[position] = replacement;
                    let changed = String::from_utf8(bytes).unwrap();
                    assert_eq!(parse("ak", &changed), Err(Malformed::Checksum), "{changed}");
                }
            }
        }
    }

    #[test]
    fn wrong_prefix_environment_length_and_alphabet_are_refused() {
        let key = NewKey::generate("ak", Environment::Live);
        let text = key.expose().to_owned();
        assert_eq!(parse("gh", &text), Err(Malformed::Prefix));
        assert_eq!(
            parse("ak", &text.replace("_live_", "_prod_")),
            Err(Malformed::Environment)
        );
        assert_eq!(parse("ak", &text[..text.len() - 1]), Err(Malformed::Length));
        assert_eq!(parse("ak", &format!("{text}x")), Err(Malformed::Length));
        let mut odd = text.clone();
        odd.replace_range(10..11, "-");
        assert_eq!(parse("ak", &odd), Err(Malformed::Alphabet));
        assert_eq!(parse("ak", ""), Err(Malformed::Prefix));
        // Switching the environment invalidates the checksum too: a test key cannot be relabelled.
        let relabelled = text.replace("_live_", "_test_");
        assert_eq!(parse("ak", &relabelled), Err(Malformed::Checksum));
    }

    #[test]
    fn a_custom_prefix_is_honoured() {
        let key = NewKey::generate("acme", Environment::Live);
        assert!(key.expose().starts_with("acme_live_"));
        assert!(parse("acme", key.expose()).is_ok());
        assert_eq!(parse("ak", key.expose()), Err(Malformed::Prefix));
    }

    #[test]
    fn a_key_or_anything_shaped_like_one_is_found_in_a_header_value() {
        let legacy = regex::Regex::new("^(?:sk_[0-9a-f]{8})$").unwrap();
        let key = NewKey::generate("ak", Environment::Live);
        let key = key.expose();
        for holding in [
            key.to_owned(),
            format!("Bearer {key}"),
            format!("token={key}"),
            "Bearer ak_test_mistyped".to_owned(),
            "ak_mgmt_0123456789".to_owned(),
            "Basic x, Bearer sk_0123abcd".to_owned(),
        ] {
            assert!(holds_key("ak", Some(&legacy), key, &holding), "{holding}");
        }
        for other in [
            "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl",
            "ak_",
            "akx_live_abc",
            "Bearer sk_0123abcdX",
            "",
        ] {
            assert!(!holds_key("ak", Some(&legacy), key, other), "{other}");
        }
    }
}
