use jobs::{JobContext, job};

#[job]
async fn cleanup(#[context] first: JobContext, #[context] second: JobContext) {
    let _ = (first, second);
}

fn main() {}
