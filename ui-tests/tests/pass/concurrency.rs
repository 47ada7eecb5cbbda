//! `concurrency`: a class cap, read back from `Job::OPTIONS`; none when not given.

use jobs::{Job, job};

#[job(concurrency = 1)]
async fn one_at_a_time() {}

#[job(queue = "imports", concurrency = 1000)]
async fn import() {}

#[job]
async fn free() {}

fn main() {
    assert_eq!(OneAtATime::OPTIONS.concurrency, Some(1));
    assert_eq!(Import::OPTIONS.concurrency, Some(1000));
    assert_eq!(Import::OPTIONS.queue, "imports");
    assert_eq!(<Free as Job>::OPTIONS.concurrency, None);
}
