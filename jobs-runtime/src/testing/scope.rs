//! Which testing mode is on, and for whom: a thread-local slot set by a guard, and a tokio
//! task-local set by `scope`.
//!
//! A push asks [`active`]; the task-local wins over the thread's slot. The slot covers every
//! task a current-thread runtime (`#[tokio::test]`'s) runs, and the body of any
//! `#[tokio::test]`, which runs on the test's own thread in both flavours. The task-local follows
//! one future across the threads of a multi-thread runtime.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;

use super::Active;

thread_local! {
    /// The modes the live guards of this thread turned on, newest last, each with its guard's
    /// ticket: the newest is on, and a guard dropped out of order takes only its own.
    static THREAD: RefCell<Vec<(u64, Active)>> = const { RefCell::new(Vec::new()) };
    static NEXT_TICKET: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

tokio::task_local! {
    static TASK: Active;
}

/// The mode on for the code running now, if any.
pub(crate) fn active() -> Option<Active> {
    TASK.try_with(Clone::clone)
        .ok()
        .or_else(|| THREAD.with(|modes| modes.borrow().last().map(|(_, mode)| mode.clone())))
}

/// Runs `future` with `mode` on, wherever its polls happen.
pub(crate) fn scope<F: Future>(mode: Active, future: F) -> impl Future<Output = F::Output> {
    TASK.scope(mode, future)
}

/// Keeps a mode on for this thread until dropped. The newest live guard's mode is the one on;
/// dropping a guard, in any order, removes only its own mode.
///
/// Neither `Send` nor `Sync`: it must be dropped on the thread it was made on.
pub(crate) struct ThreadGuard {
    ticket: u64,
    _this_thread: PhantomData<*const ()>,
}

impl ThreadGuard {
    /// Turns `mode` on for this thread.
    pub(crate) fn install(mode: Active) -> Self {
        let ticket = NEXT_TICKET.with(|next| {
            let ticket = next.get();
            next.set(ticket + 1);
            ticket
        });
        THREAD.with(|modes| modes.borrow_mut().push((ticket, mode)));
        Self {
            ticket,
            _this_thread: PhantomData,
        }
    }
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        THREAD.with(|modes| {
            modes
                .borrow_mut()
                .retain(|(ticket, _)| *ticket != self.ticket)
        });
    }
}
