use jobs::job;

#[job]
async fn cleanup<'a>() {}

fn main() {}
