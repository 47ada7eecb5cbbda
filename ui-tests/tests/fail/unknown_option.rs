use jobs::job;

#[job(queues = "critical")]
async fn cleanup() {}

fn main() {}
