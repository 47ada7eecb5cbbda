//! A job without arguments: pushed with `()` or with the empty job value.

use jobs::{Job, job};

#[job]
async fn cleanup() {}

fn main() {
    let _ = Cleanup::perform_async();
    let _ = Cleanup::perform_in(std::time::Duration::from_secs(5));
    let _ = Cleanup::set().perform_async(());
    let _ = Cleanup::set().perform_async(Cleanup {});
    let _ = Cleanup::perform_bulk([Cleanup {}, Cleanup {}]);

    assert!(Cleanup {}.encode_args().expect("no arguments").is_empty());
    assert!(Cleanup::decode_args(Vec::new()).is_ok());
    assert!(Cleanup::decode_args(vec![serde_json_value()]).is_err());
}

/// One JSON value, made without naming `serde_json` (not a dependency of the cases).
fn serde_json_value() -> jobs::__private::Value {
    jobs::__private::Value::Bool(true)
}
