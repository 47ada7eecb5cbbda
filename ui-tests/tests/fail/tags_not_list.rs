use jobs::job;

#[job(tags = "billing")]
async fn cleanup() {}

fn main() {}
