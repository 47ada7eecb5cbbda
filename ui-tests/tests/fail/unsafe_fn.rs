use jobs::job;

#[job]
async unsafe fn cleanup() {}

fn main() {}
