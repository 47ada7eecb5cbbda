use jobs::job;

#[job(timeout = 0)]
async fn cleanup() {}

fn main() {}
