use jobs::job;

#[job]
const async fn cleanup() {}

fn main() {}
