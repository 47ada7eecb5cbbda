use std::borrow::Cow;

use jobs::job;

#[job]
async fn greet(name: Cow<'static, str>) {
    let _ = name;
}

fn main() {}
