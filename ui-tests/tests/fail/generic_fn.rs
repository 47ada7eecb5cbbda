use jobs::job;

#[job]
async fn store<T>(value: T) {
    let _ = value;
}

fn main() {}
