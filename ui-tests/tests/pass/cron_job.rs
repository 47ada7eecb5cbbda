use jobs::job;

/// Runs every night at 03:00 UTC on every worker it is linked into.
#[job(cron = "0 3 * * *", queue = "low")]
async fn nightly_cleanup() {}

/// Six fields: every 30 seconds.
#[job(cron = "*/30 * * * * *")]
async fn heartbeat_check() {}

fn main() {
    use jobs::Job;
    assert_eq!(NightlyCleanup::OPTIONS.cron, Some("0 3 * * *"));
    assert_eq!(NightlyCleanup::OPTIONS.queue, "low");
    assert_eq!(HeartbeatCheck::OPTIONS.cron, Some("*/30 * * * * *"));
}
