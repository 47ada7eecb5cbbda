//! `#[keywords]` marks a job argument: a `#[state]` parameter is never sent to Ruby.

use jobs::job;

#[derive(Clone)]
struct Db;

#[job(name = "NotifyUserJob", active_job)]
async fn notify_user(user_id: u64, #[state] #[keywords] db: Db) {
    let _ = (user_id, db);
}

fn main() {}
