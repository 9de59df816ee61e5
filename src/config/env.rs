//! Reading variables: blank counts as unset, lists are comma-separated, flags are true/false, and
//! numbers are whole and within a range. Every error names its variable.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use super::{ConfigError, invalid};

/// The variables, through a lookup (the process environment, or a map in tests).
pub struct Env<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The value, unless unset or blank.
    pub fn get(&self, variable: &str) -> Option<String> {
        (self.0)(variable).filter(|value| !value.trim().is_empty())
    }

    /// A comma-separated list, trimmed, without empty items; unset is empty.
    pub fn list(&self, variable: &str) -> Vec<String> {
        self.get(variable)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`; unset is false.
    pub fn flag(&self, variable: &str) -> Result<bool, ConfigError> {
        self.switch(variable, false)
    }

    /// Like [`Env::flag`], with `default` when unset.
    pub fn switch(&self, variable: &str, default: bool) -> Result<bool, ConfigError> {
        match self
            .get(variable)
            .map(|value| value.trim().to_ascii_lowercase())
        {
            None => Ok(default),
            Some(value) if matches!(value.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
            Some(value) if matches!(value.as_str(), "false" | "0" | "no" | "off") => Ok(false),
            Some(value) => Err(invalid(
                variable,
                format!("{value:?} is neither true nor false"),
            )),
        }
    }

    /// A whole number within `range`, or `default` when unset. `unit` completes the message
    /// ("a whole number of seconds from 1 to 60"); empty for a plain count.
    pub fn number<T>(
        &self,
        variable: &str,
        range: RangeInclusive<T>,
        default: T,
        unit: &str,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display,
    {
        let Some(value) = self.get(variable) else {
            return Ok(default);
        };
        value
            .trim()
            .parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                let unit = if unit.is_empty() {
                    String::new()
                } else {
                    format!(" of {unit}")
                };
                invalid(
                    variable,
                    format!(
                        "must be a whole number{unit} from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(value: &'static str) -> Env<impl Fn(&str) -> Option<String>> {
        Env(move |_: &str| Some(value.to_owned()))
    }

    #[test]
    fn numbers_outside_their_range_name_the_range_and_unit() {
        assert_eq!(env("7").number("N", 1..=10, 3, "seconds").unwrap(), 7);
        let err = env("11").number("N", 1..=10, 3, "seconds").unwrap_err();
        assert_eq!(
            err.to_string(),
            "N: must be a whole number of seconds from 1 to 10"
        );
        let err = env("-1").number::<u32>("N", 1..=10, 3, "").unwrap_err();
        assert_eq!(err.to_string(), "N: must be a whole number from 1 to 10");
        assert_eq!(env("  ").number("N", 1..=10, 3, "").unwrap(), 3);
    }

    #[test]
    fn lists_and_flags_are_read_leniently_but_not_guessed() {
        assert_eq!(env(" a, ,b ").list("L"), vec!["a", "b"]);
        assert!(env("Yes").flag("F").unwrap());
        assert!(!env("off").flag("F").unwrap());
        assert!(env("maybe").flag("F").is_err());
    }
}
