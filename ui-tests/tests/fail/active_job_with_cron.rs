//! `cron` does not go with `active_job`: refused on the cron expression.

use jobs::job;

#[job(active_job, cron = "0 3 * * *")]
async fn nightly_scores() {}

fn main() {}
