use jobs::job;

#[job(cron = "0 3 * *")]
async fn nightly_cleanup() {}

#[job(cron = "0 25 * * *")]
async fn hourly_report() {}

fn main() {}
