use jobs::job;

#[job(retry = -1)]
async fn cleanup() {}

fn main() {}
