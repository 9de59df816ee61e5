//! `GATEHOUSE_LOG_FORMAT`, read before the rest of the configuration so logging starts first.

use super::env::Env;
use super::{ConfigError, invalid};

/// How log lines are written: text for people (colours only on a terminal), or one JSON object
/// per line for log pipelines. Read before the rest of the configuration, so logging starts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let variable = "GATEHOUSE_LOG_FORMAT";
        match Env(lookup).get(variable).as_deref().map(str::trim) {
            None | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(invalid(
                variable,
                format!("{other:?} is neither text nor json"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_is_text_json_or_refused_by_name() {
        let format = |value: &str| {
            let value = value.to_owned();
            LogFormat::from_lookup(move |_| Some(value.clone()))
        };
        assert_eq!(LogFormat::from_lookup(|_| None).unwrap(), LogFormat::Text);
        assert_eq!(format("json").unwrap(), LogFormat::Json);
        assert_eq!(format("text").unwrap(), LogFormat::Text);
        assert!(
            format("yaml")
                .unwrap_err()
                .to_string()
                .starts_with("GATEHOUSE_LOG_FORMAT")
        );
    }
}
