//! A one-task wake-up flag for the same core: `notify` sets it and wakes the waiter, `wait` completes once it
//! is set and clears it. Used to tell a core's mesh pump that its outbox has something, and its I/O loop that
//! a connection has news or epoll has events. Not `Send`: it never crosses cores.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
pub struct Notify {
    set: Cell<bool>,
    waiter: RefCell<Option<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(waker) = self.waiter.borrow_mut().take() {
            waker.wake();
        }
    }

    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        Wait { notify: self }
    }
}

struct Wait<'a> {
    notify: &'a Notify,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.set.replace(false) {
            return Poll::Ready(());
        }
        *self.notify.waiter.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
