use jobs::job;

#[job(retry = "lots")]
async fn cleanup() {}

fn main() {}
