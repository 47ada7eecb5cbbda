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

/// The most bytes a stored backtrace may inflate to: a thousand frames of a thousand
/// characters. zlib packs a run of one byte about 1,000 to 1, so a 1 MB job could otherwise
/// inflate to 1 GB on the dashboard.
pub(crate) const MAX_INFLATED: u64 = 1 << 20;

/// Decodes what Sidekiq (or [`encode`]) stored; newline-wrapped base64 (Sidekiq 6) is accepted.
/// `None` when it is not that form, or inflates past [`MAX_INFLATED`].
pub(crate) fn decode(stored: &str) -> Option<Vec<String>> {
    let cleaned: String = stored.chars().filter(|c| !c.is_whitespace()).collect();
    let compressed = STANDARD.decode(cleaned).ok()?;
    let json = inflate(&compressed, MAX_INFLATED)?;
    serde_json::from_slice(&json).ok()
}

/// `compressed` inflated, or `None` when it is not zlib or inflates past `limit` bytes (it stops
/// reading one byte past the limit).
fn inflate(compressed: &[u8], limit: u64) -> Option<Vec<u8>> {
    let mut inflated = Vec::new();
    ZlibDecoder::new(compressed)
        .take(limit + 1)
        .read_to_end(&mut inflated)
        .ok()?;
    (inflated.len() as u64 <= limit).then_some(inflated)
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
    use std::io::Write;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use flate2::Compression;
    use flate2::write::ZlibEncoder;

    use super::{MAX_INFLATED, decode, encode, inflate};

    /// A stored backtrace of one line of `len` bytes `a`: a few KiB that inflate to `len`.
    fn bomb(len: usize) -> String {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(b"[\"").unwrap();
        let chunk = vec![b'a'; 1 << 20];
        let mut left = len;
        while left > 0 {
            let take = left.min(chunk.len());
            encoder.write_all(&chunk[..take]).unwrap();
            left -= take;
        }
        encoder.write_all(b"\"]").unwrap();
        STANDARD.encode(encoder.finish().unwrap())
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let stored = bomb(16 << 20);
        assert!(stored.len() < 100_000, "{} bytes stored", stored.len());
        let decoded = decode(&stored).map(|lines| lines.concat().len());
        assert_eq!(decoded, None, "16 MiB inflated is over the cap");

        // Inflating stops one byte past the limit, whatever the stream holds.
        let compressed = STANDARD.decode(&stored).unwrap();
        assert_eq!(inflate(&compressed, 1_000), None);
        let whole: usize = (16 << 20) + 4;
        let inflated = inflate(&compressed, u64::try_from(whole).unwrap());
        assert_eq!(inflated.map(|json| json.len()), Some(whole));

        // Right at the cap still decodes: `["` and `"]` plus the line.
        let at_cap = usize::try_from(MAX_INFLATED).unwrap() - 4;
        let lines = decode(&bomb(at_cap)).expect("a backtrace at the cap decodes");
        assert_eq!(lines[0].len(), at_cap);
        assert_eq!(decode(&bomb(at_cap + 1)), None);
    }

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
