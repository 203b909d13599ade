//! The one type that carries the Prefect API key. It cannot be printed, serialized or logged:
//! `Debug` and `Display` say `(sensitive)`, and there is no `Serialize`.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }

    /// The plain value, for the one call that sends it to Secrets Manager.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_the_value() {
        let s = SecretValue::new("pnu_canary".into());
        assert_eq!(
            format!("{s:?} {s} {:?}", Some(&s)),
            "(sensitive) (sensitive) Some((sensitive))"
        );
    }
}
