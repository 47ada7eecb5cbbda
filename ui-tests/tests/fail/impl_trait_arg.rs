use jobs::job;

#[job]
async fn greet(name: impl ToString) {
    let _ = name.to_string();
}

fn main() {}
