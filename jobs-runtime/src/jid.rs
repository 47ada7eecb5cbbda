//! Job ids.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A job id: 24 lowercase hex characters for jobs `jobs` creates, as Sidekiq's
/// `SecureRandom.hex(12)`; any string for jobs read from Redis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Jid(String);

impl Jid {
    /// The empty jid of a context the job does not read (`JobContext::unread`).
    pub(crate) const fn unread() -> Self {
        Self(String::new())
    }

    /// A new random job id: 12 random bytes as 24 lowercase hex characters.
    pub fn generate() -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes: [u8; 12] = rand::random();
        let mut text = String::with_capacity(24);
        for byte in bytes {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        Self(text)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Jid {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for Jid {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl AsRef<str> for Jid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Jid {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Jid {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Jid;

    #[test]
    fn generated_ids_are_24_lowercase_hex_and_distinct() {
        let a = Jid::generate();
        let b = Jid::generate();
        assert_eq!(a.as_str().len(), 24);
        assert!(
            a.as_str()
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_ne!(a, b);
    }
}
