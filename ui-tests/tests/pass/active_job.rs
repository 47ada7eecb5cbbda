//! `active_job`: the job is pushed as Rails's ActiveJob pushes it. Each argument is encoded as
//! ActiveJob serializes its type, whatever the type is called here (an alias), and the
//! `#[keywords]` argument as Ruby keyword arguments; `#[state]` may follow it.

use chrono::{DateTime, NaiveDate, Utc};
use jobs::{GlobalId, Job, job};
use serde::{Deserialize, Serialize};

/// An alias the macro cannot see through.
type Day = NaiveDate;

#[derive(Serialize, Deserialize)]
struct Notify {
    notify: bool,
    #[serde(with = "jobs::active_job::typed")]
    on: NaiveDate,
}

#[derive(Clone)]
struct Db;

#[job(name = "Reports::ScoreGenerationJob", active_job, queue = "reports")]
async fn score_generation(
    day: Day,
    at: Option<DateTime<Utc>>,
    user: GlobalId,
    label: String,
    #[keywords] keywords: Notify,
    #[state] db: Db,
) {
    let _ = (day, at, user, label, keywords, db);
}

fn main() {
    assert_eq!(ScoreGeneration::NAME, "Reports::ScoreGenerationJob");
    assert!(ScoreGeneration::OPTIONS.active_job);
    let day = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
    let job = ScoreGeneration {
        day,
        at: None,
        user: GlobalId::new("shop", "User", "42"),
        label: "text".to_owned(),
        keywords: Notify {
            notify: true,
            on: day,
        },
    };
    let args: Vec<String> = job
        .encode_args()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    let date =
        r#"{"_aj_serialized":"ActiveJob::Serializers::DateSerializer","value":"2026-12-06"}"#;
    assert_eq!(
        args,
        [
            date.to_owned(),
            "null".to_owned(),
            r#"{"_aj_globalid":"gid://shop/User/42"}"#.to_owned(),
            r#""text""#.to_owned(),
            format!(r#"{{"_aj_ruby2_keywords":["notify","on"],"notify":true,"on":{date}}}"#),
        ]
    );
}
