use jobs::job;

#[job(queue = critical)]
async fn cleanup() {}

fn main() {}
