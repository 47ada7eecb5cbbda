//! The worker's side of batches: a batch job's outcome, added to the pipeline that settles it
//! (`scripts/batch_update.lua`), so it costs no round trip of its own (see `docs/batches.md`,
//! exactly once).

use crate::raw_job::RawJob;
use crate::redis::keys::Keys;
use crate::redis::scripts;

/// What a member's run counts as, for its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberOutcome {
    /// It succeeded (or expired unrun): no longer pending.
    Success,
    /// It failed and will be retried.
    Failure,
    /// It will never succeed: its retries ran out, it was discarded or not retried, or
    /// recovery buried it.
    Death,
}

impl MemberOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Death => "death",
        }
    }
}

/// The update of one batch job's batch, to go in the pipeline that settles the job.
#[derive(Debug, Clone)]
pub(crate) struct MemberUpdate {
    /// The batch's id, as the job carries it.
    bid: String,
    /// The job's jid: its member name.
    jid: String,
    /// What its run counts as.
    outcome: MemberOutcome,
    /// For a failure or death: the failure's JSON; else empty.
    info: String,
}

impl MemberUpdate {
    /// The update for the job stored as `json` ending with `outcome`, or `None` when it is not a
    /// batch job (a byte check first, so other jobs pay no parse). `failed` is the job as it
    /// goes to the retry or dead set (with its `error_class` and `error_message`), or, when it
    /// goes nowhere, `error` gives the error's class and message.
    pub(crate) fn of_job(
        json: &[u8],
        outcome: MemberOutcome,
        failed: Option<&str>,
        error: Option<(&str, &str)>,
    ) -> Option<Self> {
        const MARKER: &[u8] = b"\"bid\"";
        if !json.windows(MARKER.len()).any(|window| window == MARKER) {
            return None;
        }
        let job = RawJob::parse(json).ok()?;
        let bid = job.get_as::<String>("bid")?;
        let jid = job.get_as::<String>("jid")?;
        let info = if outcome == MemberOutcome::Success {
            String::new()
        } else {
            let stored = failed.and_then(|text| RawJob::parse(text).ok());
            let field = |name: &str| {
                stored
                    .as_ref()
                    .and_then(|stored| stored.get_as::<String>(name))
                    .or_else(|| job.get_as::<String>(name))
                    .unwrap_or_default()
            };
            let (error_class, error_message) = match error {
                Some((class, message)) => (class.to_owned(), message.to_owned()),
                None => (field("error_class"), field("error_message")),
            };
            serde_json::json!({
                "class": job.get_as::<String>("class").unwrap_or_default(),
                "error_class": error_class,
                "error_message": error_message,
                "failed_at": crate::timestamp::Timestamp::now(),
                "dead": outcome == MemberOutcome::Death,
            })
            .to_string()
        };
        Some(Self {
            bid,
            jid,
            outcome,
            info,
        })
    }

    /// Adds the update to `pipeline` with `EVALSHA`: the pipeline must hold [`add_script_to`]
    /// before it. Its reply is kept (the pipeline's reader passes it to [`log_errors`]). The
    /// script never fails, so it cannot hold back the settle that follows it. It applies only while `taken` (the job's entry, as taken) is
    /// in `working`: the settle must come after it in the pipeline.
    pub(crate) fn add_to(
        &self,
        pipeline: &mut redis::Pipeline,
        keys: &Keys,
        working: &str,
        taken: &[u8],
    ) {
        self.add_guarded_to(pipeline, keys, working, taken, &[]);
    }

    /// [`add_to`](Self::add_to), applied only while none of `alive_guard` exists: recovery's
    /// burial of a presumed-dead process's job (from that process's `working` list), whose
    /// settle has the same guard.
    pub(crate) fn add_guarded_to(
        &self,
        pipeline: &mut redis::Pipeline,
        keys: &Keys,
        working: &str,
        taken: &[u8],
        alive_guard: &[String],
    ) {
        let command = pipeline
            .cmd("EVALSHA")
            .arg(scripts::BATCH_UPDATE.get_hash())
            .arg(5 + alive_guard.len());
        for key in keys.batch_keys(&self.bid) {
            command.arg(key);
        }
        command.arg(working);
        for guard in alive_guard {
            command.arg(guard);
        }
        command
            .arg(&self.jid)
            .arg(self.outcome.as_str())
            .arg(&self.info)
            .arg(super::now_ms())
            .arg(keys.prefix())
            .arg(taken);
    }
}

/// Logs each reply in `replies` that is a `batch_update.lua` refusal (`{'error', <message>}`,
/// a key of another type, say): the script swallows it, so that the settles it travels with
/// land, and this is where it shows. Other replies are passed over.
pub(crate) fn log_errors(replies: &[redis::Value]) {
    for reply in replies {
        let redis::Value::Array(items) = reply else {
            continue;
        };
        let text = |item: &redis::Value| match item {
            redis::Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            redis::Value::SimpleString(text) => Some(text.clone()),
            _ => None,
        };
        if items.len() == 2 && text(&items[0]).as_deref() == Some("error") {
            tracing::warn!(
                error = text(&items[1]).unwrap_or_default(),
                "a batch update was refused by Redis; the batch's counts miss this outcome"
            );
        }
    }
}

/// Adds the loading of `batch_update.lua` to `pipeline` (its reply ignored), so that the
/// `EVALSHA`s after it in the same round trip never meet `NOSCRIPT`.
pub(crate) fn add_script_to(pipeline: &mut redis::Pipeline) {
    pipeline
        .cmd("SCRIPT")
        .arg("LOAD")
        .arg(scripts::BATCH_UPDATE_SOURCE.as_str())
        .ignore();
}

#[cfg(test)]
mod tests {
    use super::{MemberOutcome, MemberUpdate};

    #[test]
    fn only_a_job_carrying_a_bid_is_a_member() {
        let plain = br#"{"class":"A","args":[{"bid":"x"}],"jid":"j1","queue":"default"}"#;
        assert!(MemberUpdate::of_job(plain, MemberOutcome::Success, None, None).is_none());
        let callback = br#"{"class":"C","args":[],"jid":"j2","batch_callback":{"bid":"b-Zx_09azAZ1-2","event":"success"}}"#;
        assert!(MemberUpdate::of_job(callback, MemberOutcome::Success, None, None).is_none());
        let member = br#"{"class":"A","args":[],"jid":"j3","bid":"b-Zx_09azAZ1-2"}"#;
        let update = MemberUpdate::of_job(member, MemberOutcome::Success, None, None).unwrap();
        assert_eq!(
            (update.bid.as_str(), update.jid.as_str()),
            ("b-Zx_09azAZ1-2", "j3")
        );
        assert!(update.info.is_empty());
    }

    #[test]
    fn a_failure_records_the_error_of_the_job_as_stored() {
        let member = br#"{"class":"A","args":[],"jid":"j3","bid":"b-Zx_09azAZ1-2"}"#;
        let stored = r#"{"class":"A","args":[],"jid":"j3","bid":"b-Zx_09azAZ1-2","error_class":"IOError","error_message":"disk full"}"#;
        let update =
            MemberUpdate::of_job(member, MemberOutcome::Failure, Some(stored), None).unwrap();
        let info: serde_json::Value = serde_json::from_str(&update.info).unwrap();
        assert_eq!(info["class"], "A");
        assert_eq!(info["error_class"], "IOError");
        assert_eq!(info["error_message"], "disk full");
        assert_eq!(info["dead"], false);
        assert!(info["failed_at"].is_f64());
        let dropped =
            MemberUpdate::of_job(member, MemberOutcome::Death, None, Some(("Err", "no"))).unwrap();
        let info: serde_json::Value = serde_json::from_str(&dropped.info).unwrap();
        assert_eq!(
            (info["error_class"].as_str(), info["dead"].as_bool()),
            (Some("Err"), Some(true))
        );
    }
}
