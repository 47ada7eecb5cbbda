use jobs::job;

#[job]
async fn cleanup()
where
    String: Clone,
{
}

fn main() {}
