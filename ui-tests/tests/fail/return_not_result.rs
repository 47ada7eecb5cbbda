use jobs::job;

#[job]
async fn count() -> i32 {
    1
}

fn main() {}
