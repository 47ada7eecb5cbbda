use jobs::job;

#[derive(Clone)]
struct Db;

#[job]
async fn cleanup(#[state] db: &Db) {
    let _ = db;
}

fn main() {}
