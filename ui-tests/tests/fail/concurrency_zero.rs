use jobs::job;

#[job(concurrency = 0)]
async fn import() {}

fn main() {}
