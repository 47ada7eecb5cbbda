use jobs::job;

#[job(retry = 5000000000)]
async fn cleanup() {}

fn main() {}
