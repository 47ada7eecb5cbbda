//! `#[keywords]` is for ActiveJob jobs only: refused on the marker when `active_job` is not set.

use jobs::job;

#[derive(serde::Serialize, serde::Deserialize)]
struct Notify {
    notify: bool,
}

#[job(name = "NotifyUserJob")]
async fn notify_user(user_id: u64, #[keywords] keywords: Notify) {
    let _ = (user_id, keywords);
}

fn main() {}
