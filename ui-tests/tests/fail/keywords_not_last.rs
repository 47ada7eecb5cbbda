//! `#[keywords]` goes on the last job argument, where Ruby takes keyword arguments.

use jobs::job;

#[derive(serde::Serialize, serde::Deserialize)]
struct Notify {
    notify: bool,
}

#[job(name = "NotifyUserJob", active_job)]
async fn notify_user(#[keywords] keywords: Notify, user_id: u64) {
    let _ = (keywords, user_id);
}

fn main() {
    // The job type still exists, so its uses add no errors.
    let _ = NotifyUser::perform_async(Notify { notify: true }, 1);
}
