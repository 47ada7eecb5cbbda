use jobs::job;

#[job(queue = "critical", queue = "low")]
async fn cleanup() {}

fn main() {}
