use jobs::job;

#[job(queue = "")]
async fn cleanup() {}

fn main() {}
