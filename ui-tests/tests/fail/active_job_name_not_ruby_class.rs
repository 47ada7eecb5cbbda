//! The name of an `active_job` job is the Ruby class Rails runs: one that is no Ruby class name
//! is refused, on the name.

use jobs::job;

#[job(name = "score-generation", active_job)]
async fn score_generation(user_id: u64) {
    let _ = user_id;
}

fn main() {}
