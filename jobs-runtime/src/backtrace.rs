//! `error_backtrace` as Sidekiq stores it: base64 (strict, no newlines) of zlib-deflated JSON
//! array of strings. Sidekiq 6.4 to 8.x all read this form; never a raw array.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

/// Encodes backtrace lines.
pub(crate) fn encode(lines: &[String]) -> String {
    let json = serde_json::to_vec(lines).unwrap_or_else(|_| b"[]".to_vec());
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(&json);
    let compressed = encoder.finish().unwrap_or_default();
    STANDARD.encode(compressed)
}

/// Decodes what Sidekiq (or [`encode`]) stored; newline-wrapped base64 (Sidekiq 6) is accepted.
pub(crate) fn decode(stored: &str) -> Option<Vec<String>> {
    let cleaned: String = stored.chars().filter(|c| !c.is_whitespace()).collect();
    let compressed = STANDARD.decode(cleaned).ok()?;
    let mut json = Vec::new();
    ZlibDecoder::new(&compressed[..])
        .read_to_end(&mut json)
        .ok()?;
    serde_json::from_slice(&json).ok()
}

/// The lines to store for an error: its message, then each cause.
pub(crate) fn lines_of(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut lines = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(next) = cause {
        lines.push(format!("caused by: {next}"));
        cause = next.source();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};

    #[test]
    fn round_trips_and_has_no_newlines() {
        let lines = vec![
            "app/jobs.rs:12".to_owned(),
            "caused by: disk full".to_owned(),
        ];
        let stored = encode(&lines);
        assert!(!stored.contains('\n'));
        assert_eq!(decode(&stored), Some(lines));
    }

    #[test]
    fn reads_sidekiq_6_newline_wrapped_base64() {
        let lines: Vec<String> = (0..20).map(|n| format!("frame number {n}")).collect();
        let stored = encode(&lines);
        let wrapped: String = stored
            .as_bytes()
            .chunks(60)
            .map(|chunk| format!("{}\n", std::str::from_utf8(chunk).unwrap()))
            .collect();
        assert_eq!(decode(&wrapped), Some(lines));
    }
}
