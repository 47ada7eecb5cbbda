use jobs::job;

#[job]
async fn sum(numbers: &[u64]) {
    let _ = numbers;
}

fn main() {}
