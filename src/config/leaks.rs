//! Secret scanners that report leaked keys: GitHub (`GATEHOUSE_LEAK_GITHUB_KEYS_URL`) and the
//! operator's others (`GATEHOUSE_LEAK_SENDERS`), all in GitHub's partner format.

use super::env::Env;
use super::{ConfigError, GITHUB_LEAK_KEYS_URL, LeakSender, invalid};

const GITHUB_ID_HEADER: &str = "Github-Public-Key-Identifier";
const GITHUB_SIGNATURE_HEADER: &str = "Github-Public-Key-Signature";

/// GitHub, then each of `GATEHOUSE_LEAK_SENDERS`: comma-separated `name=keys-url`, optionally
/// followed by the key id header and the signature header (spaces between; GitHub's by default).
pub fn senders<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Vec<LeakSender>, ConfigError> {
    let github_url = env
        .get("GATEHOUSE_LEAK_GITHUB_KEYS_URL")
        .unwrap_or_else(|| GITHUB_LEAK_KEYS_URL.to_owned());
    check_url("GATEHOUSE_LEAK_GITHUB_KEYS_URL", &github_url)?;
    let mut senders = vec![LeakSender {
        name: "github".into(),
        keys_url: github_url.trim().to_owned(),
        key_id_header: GITHUB_ID_HEADER.into(),
        signature_header: GITHUB_SIGNATURE_HEADER.into(),
    }];
    const VARIABLE: &str = "GATEHOUSE_LEAK_SENDERS";
    for item in env.list(VARIABLE) {
        let (name, rest) = item
            .split_once('=')
            .ok_or_else(|| invalid(VARIABLE, format!("{item:?} is not name=keys-url")))?;
        let name = name.trim();
        let valid_name = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            return Err(invalid(
                VARIABLE,
                format!("{name:?}: a name is 1-32 lowercase letters, digits and dashes"),
            ));
        }
        if senders.iter().any(|sender| sender.name == name) {
            return Err(invalid(VARIABLE, format!("{name:?} is named twice")));
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        let (url, id_header, signature_header) = match parts.as_slice() {
            [url] => (*url, GITHUB_ID_HEADER, GITHUB_SIGNATURE_HEADER),
            [url, id, signature] => (*url, *id, *signature),
            _ => {
                return Err(invalid(
                    VARIABLE,
                    format!(
                        "{item:?}: name=keys-url, optionally then the key id and signature headers"
                    ),
                ));
            }
        };
        check_url(VARIABLE, url)?;
        for header in [id_header, signature_header] {
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(invalid(VARIABLE, format!("{header:?} is no header name")));
            }
        }
        senders.push(LeakSender {
            name: name.to_owned(),
            keys_url: url.to_owned(),
            key_id_header: id_header.to_owned(),
            signature_header: signature_header.to_owned(),
        });
    }
    Ok(senders)
}

fn check_url(variable: &str, url: &str) -> Result<(), ConfigError> {
    let url = url.trim();
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(invalid(
            variable,
            format!("{url:?} must start with https:// or http://"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Vec<LeakSender>, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        senders(&Env(|name: &str| vars.get(name).cloned()))
    }

    #[test]
    fn github_comes_first_and_others_follow_with_their_headers() {
        let senders = read(&[(
            "GATEHOUSE_LEAK_SENDERS",
            "ghes=https://ghes.example/api/v3/meta/public_keys/secret_scanning, depsdev=https://deps.example/keys X-Key-Id X-Signature",
        )])
        .unwrap();
        assert_eq!(senders[0].keys_url, GITHUB_LEAK_KEYS_URL);
        assert_eq!(senders[1].name, "ghes");
        assert_eq!(senders[1].key_id_header, GITHUB_ID_HEADER);
        assert_eq!(senders[2].signature_header, "X-Signature");
        for bad in [
            "github=https://x",
            "Bad=https://x",
            "x=ftp://x",
            "x",
            "x=https://x a",
        ] {
            let err = read(&[("GATEHOUSE_LEAK_SENDERS", bad)]).unwrap_err();
            assert!(
                err.to_string().starts_with("GATEHOUSE_LEAK_SENDERS"),
                "{bad}"
            );
        }
    }
}
