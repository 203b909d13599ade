//! The one type that carries the Prefect API key. It cannot be printed, serialized or logged:
//! `Debug` and `Display` say `(sensitive)`, and there is no `Serialize`.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }

    /// The plain value, for the calls that send it to Secrets Manager and to the Prefect API.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// HMAC-SHA256 of `label` keyed with the value itself, so a saved plan can notice that the
    /// value changed without holding it. Like any digest it lets whoever has the file test a
    /// guess offline: fine for a random API key, not a protection for a guessable one. Callers
    /// put a random per-file salt in `label` so one digest says nothing about another file's.
    pub fn keyed_digest(&self, label: &str) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.0.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(label.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl SecretValue {
    /// `text` with every occurrence of the value replaced by `(sensitive)`: for text from
    /// elsewhere that prefect-ecs prints (a worker's log lines may hold its own key).
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_owned();
        }
        text.replace(&self.0, "(sensitive)")
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

    #[test]
    fn redact_masks_every_occurrence() {
        let s = SecretValue::new("pnu_canary".into());
        assert_eq!(
            s.redact("key=pnu_canary, again pnu_canary."),
            "key=(sensitive), again (sensitive)."
        );
        assert_eq!(SecretValue::new(String::new()).redact("as is"), "as is");
    }

    #[test]
    fn keyed_digest_depends_on_value_and_label_and_never_contains_the_value() {
        let a = SecretValue::new("pnu_canary".into());
        let b = SecretValue::new("pnu_canarz".into());
        assert_eq!(a.keyed_digest("x"), a.keyed_digest("x"));
        assert_ne!(a.keyed_digest("x"), b.keyed_digest("x"));
        assert_ne!(a.keyed_digest("x"), a.keyed_digest("y"));
        assert!(!a.keyed_digest("x").contains("canary"));
    }
}
