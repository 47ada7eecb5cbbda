use jobs::job;

#[job(concurrency = "2")]
async fn import() {}

#[job(concurrency = -1)]
async fn export() {}

fn main() {}
