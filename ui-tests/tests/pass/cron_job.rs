use jobs::job;

/// Runs every night at 03:00 UTC on every worker it is linked into.
#[job(cron = "0 3 * * *", queue = "low")]
async fn nightly_cleanup() {}

/// Six fields: every 30 seconds.
#[job(cron = "*/30 * * * * *")]
async fn heartbeat_check() {}

/// An ActiveJob job Rails runs, pushed every night by whichever worker claims the tick.
#[job(name = "NightlyScoresJob", active_job, cron = "0 3 * * *")]
async fn nightly_scores() {}

fn main() {
    use jobs::Job;
    assert_eq!(NightlyCleanup::OPTIONS.cron, Some("0 3 * * *"));
    assert_eq!(NightlyCleanup::OPTIONS.queue, "low");
    assert_eq!(HeartbeatCheck::OPTIONS.cron, Some("*/30 * * * * *"));
    assert_eq!(NightlyScores::OPTIONS.cron, Some("0 3 * * *"));
    assert!(NightlyScores::OPTIONS.active_job);
}
