use jobs::job;

#[job(name = "")]
async fn cleanup() {}

fn main() {}
