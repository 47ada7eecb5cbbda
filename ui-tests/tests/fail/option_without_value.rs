use jobs::job;

#[job(retry)]
async fn cleanup() {}

fn main() {}
