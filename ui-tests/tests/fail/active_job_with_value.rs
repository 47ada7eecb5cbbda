//! `active_job` is a flag: a value is refused, on the value, and nothing else is reported.

use jobs::job;

#[job(active_job = true)]
async fn score_generation(user_id: u64) {
    let _ = user_id;
}

fn main() {}
