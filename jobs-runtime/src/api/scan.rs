//! Key names found with `SCAN`, a bounded number of steps at a time.

use crate::client::Client;
use crate::error::Error;

/// How many keys one `SCAN` step asks Redis to look at.
const SCAN_COUNT: usize = 1_000;

/// The names `name` takes from the keys matching `pattern` (a key it returns `None` for is left
/// out), in the order `SCAN` returns them (a key may come twice), and whether the `SCAN`
/// stopped before the end of the keyspace. It stops after the step that found at least
/// `enough` names, or after `steps` steps (at least one).
pub(crate) async fn scan_names(
    client: &Client,
    pattern: &str,
    enough: usize,
    steps: usize,
    name: impl Fn(&str) -> Option<String>,
) -> Result<(Vec<String>, bool), Error> {
    let mut names = Vec::new();
    let mut cursor: u64 = 0;
    for _ in 0..steps.max(1) {
        let (next, found): (u64, Vec<String>) = client
            .redis()
            .command(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT),
            )
            .await?;
        names.extend(found.iter().filter_map(|key| name(key)));
        cursor = next;
        if cursor == 0 || names.len() >= enough {
            break;
        }
    }
    Ok((names, cursor != 0))
}
