//! `#[context]` and `#[state]` parameters next to a normal argument; only the argument is
//! stored, and the state type is declared in `Job::STATE`.

use jobs::{Job, JobContext, job};

/// Shared with every job by the worker.
#[derive(Clone)]
struct Db;

#[job]
async fn sync_user(#[context] ctx: JobContext, user_id: u64, #[state] db: Db) {
    let _ = (ctx, user_id, db);
}

fn main() {
    assert_eq!(<SyncUser as Job>::STATE.len(), 1);
    assert!(<SyncUser as Job>::STATE[0].name().ends_with("Db"));
    let job = SyncUser { user_id: 7 };
    assert_eq!(job.encode_args().expect("JSON").len(), 1);
    let _ = SyncUser::perform_async(7);
    let _ = SyncUser::set().perform_async(8);
}
