use jobs::job;

#[job]
fn cleanup() {}

fn main() {}
