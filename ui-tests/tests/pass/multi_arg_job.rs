//! A job with three arguments: positional pushes, a tuple, or the job value itself.

use chrono::NaiveDate;
use jobs::{Job, job};
use serde::{Deserialize, Serialize};

/// A user-defined argument type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    title: String,
}

#[job(queue = "reports")]
async fn build_report(date: NaiveDate, user_ids: Vec<u64>, report: Report) {
    let _ = (date, user_ids, report);
}

fn main() {
    let a = NaiveDate::MIN;
    let b = vec![1, 2];
    let c = Report {
        title: "daily".to_owned(),
    };
    let _ = BuildReport::perform_async(a, b.clone(), c.clone());
    let _ = BuildReport::set()
        .queue("x")
        .perform_async((a, b.clone(), c.clone()));
    let job = BuildReport {
        date: a,
        user_ids: b,
        report: c,
    };
    let args = job.encode_args().expect("the arguments are JSON");
    assert_eq!(args.len(), 3);
    let back = BuildReport::decode_args(args).expect("and come back");
    assert_eq!(back.report.title, "daily");
    let _ = BuildReport::set().perform_async(back);
}
