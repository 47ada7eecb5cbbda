use jobs::job;

#[job]
struct Cleanup;

fn main() {}
