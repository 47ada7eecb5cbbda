//! Short random ids: 14 characters of URL-safe base64 (`A-Z a-z 0-9 - _`) from 84 random bits,
//! Sidekiq Pro's bid shape. Shared by [`Bid`](crate::Bid) and
//! [`WorkflowId`](crate::WorkflowId), which keep their own types and errors.

/// The characters of URL-safe base64, in order.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// How many characters a short id has.
pub(crate) const LENGTH: usize = 14;

/// A new random short id: 84 random bits as 14 URL-safe base64 characters.
pub(crate) fn generate() -> String {
    let mut bits: u128 = rand::random::<u128>() & ((1 << (6 * LENGTH)) - 1);
    let mut text = String::with_capacity(LENGTH);
    for _ in 0..LENGTH {
        // Six bits a character; the mask keeps the index below 64.
        let index = usize::try_from(bits & 0x3f).unwrap_or_default();
        text.push(char::from(ALPHABET[index]));
        bits >>= 6;
    }
    text
}

/// Whether `text` has a short id's shape: 14 characters of URL-safe base64.
pub(crate) fn is_valid(text: &str) -> bool {
    text.len() == LENGTH && text.bytes().all(|byte| ALPHABET.contains(&byte))
}
