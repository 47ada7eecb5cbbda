//! `retry_in` and `retries_exhausted`: the job's own answers to a failure, reachable through
//! `Job` and its registration.

use std::time::Duration;

use jobs::worker::Exhausted;
use jobs::{Job, JobError, Payload, RetryOverride, job};

fn backoff(count: u32, error: &JobError) -> Option<RetryOverride> {
    if error.to_string().contains("fatal") {
        return Some(RetryOverride::Kill);
    }
    Some(RetryOverride::In(Duration::from_secs(u64::from(count) * 10)))
}

mod hooks {
    use jobs::worker::Exhausted;
    use jobs::{JobError, Payload};

    pub fn forget(job: &Payload, error: &JobError) -> Exhausted {
        let _ = (job, error);
        Exhausted::Discard
    }
}

#[job(retry_in = backoff, retries_exhausted = hooks::forget, retry_for = 600)]
async fn flaky(id: u64) -> Result<(), JobError> {
    let _ = id;
    Ok(())
}

#[job]
async fn plain() {}

fn main() {
    let error = JobError::msg("fatal");
    assert_eq!(<Flaky as Job>::retry_in(2, &error), Some(RetryOverride::Kill));
    assert_eq!(
        <Flaky as Job>::retry_in(2, &JobError::msg("x")),
        Some(RetryOverride::In(Duration::from_secs(20)))
    );
    let payload = Payload::new("Flaky", vec![]);
    assert_eq!(<Flaky as Job>::retries_exhausted(&payload, &error), Exhausted::Discard);
    assert_eq!(<Plain as Job>::retry_in(0, &error), None);
    assert_eq!(<Plain as Job>::retries_exhausted(&payload, &error), Exhausted::Bury);
}
