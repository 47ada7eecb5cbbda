//! `#[job]` leaves the function as written: it can still be called and awaited directly.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use jobs::job;

#[job]
async fn add(a: u64, b: u64) -> Result<(), String> {
    if a + b == 3 {
        Ok(())
    } else {
        Err(format!("{a} + {b} is not 3"))
    }
}

/// Polls a future that never waits.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the job waited"),
    }
}

fn main() {
    assert_eq!(run(add(1, 2)), Ok(()));
    assert_eq!(run(add(2, 2)), Err("2 + 2 is not 3".to_owned()));
    let _ = Add::perform_async(1, 2);
}
