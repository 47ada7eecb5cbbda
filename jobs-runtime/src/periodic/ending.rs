//! How a job pushed for a periodic entry ended, recorded in the entry's hash for its page: the
//! worker's settle paths call [`record_ending`] in the round trip they already make.

/// How a periodic job ended, as its entry's hash records it (`outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It ran to the end.
    Succeeded,
    /// It failed and waits in the retry set.
    Retrying,
    /// It failed for the last time and went to the dead set.
    Dead,
    /// It failed and was dropped (`retry: false`, `dead: false`, or discarded).
    Dropped,
    /// It had not started within its `expires_in`, and was dropped unrun.
    Expired,
}

impl Ending {
    /// The word the entry's hash holds (`outcome`).
    fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Dropped => "dropped",
            Self::Expired => "expired",
        }
    }
}

/// Adds to `pipeline` the record of how the job stored as `json` ended, if it was pushed for a
/// periodic entry: `finished_jid`, `finished_at` (epoch ms) and `outcome` in the entry's hash,
/// which the dashboard shows beside the entry's last run. Most jobs are not periodic and cost a
/// scan of their bytes only. Returns whether it added a command.
pub(crate) fn record_ending(
    pipeline: &mut redis::Pipeline,
    keys: &crate::redis::keys::Keys,
    json: &[u8],
    ending: Ending,
) -> bool {
    let marker = super::PERIODIC_FIELD.as_bytes();
    if !json.windows(marker.len()).any(|window| window == marker) {
        return false;
    }
    /// The two top-level fields read.
    #[derive(serde::Deserialize)]
    struct Periodic {
        #[serde(rename = "jobs_periodic")]
        /// The entry it was pushed for.
        name: Option<String>,
        /// Its jid.
        jid: Option<String>,
    }
    let Ok(Periodic {
        name: Some(name),
        jid,
    }) = serde_json::from_slice::<Periodic>(json)
    else {
        return false;
    };
    // A job pushed by hand with the field writes a hash no index lists: never shown.
    pipeline
        .cmd("HSET")
        .arg(keys.periodic(&name))
        .arg("finished_jid")
        .arg(jid.unwrap_or_default())
        .arg("finished_at")
        .arg(chrono::Utc::now().timestamp_millis())
        .arg("outcome")
        .arg(ending.as_str())
        .ignore();
    true
}
