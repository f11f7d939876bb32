//! A limit on work in progress that refuses at once past its size and never queues (a queue
//! would only turn overload into timeouts): requests on the MCP endpoint being decided or
//! awaiting the upstream's answer head, refused bodies being drained. An atomic count, not a
//! semaphore: entering and leaving are one atomic add each, with no lock on either (tokio's
//! `Semaphore` takes a mutex on every release).

use std::sync::atomic::{AtomicUsize, Ordering};

/// At most `max` holders at once.
pub struct Limit {
    held: AtomicUsize,
    max: usize,
}

/// A place inside a [`Limit`], given back when dropped.
pub struct Entered<'a>(&'a Limit);

impl Limit {
    pub fn new(max: usize) -> Limit {
        Limit {
            held: AtomicUsize::new(0),
            max,
        }
    }

    /// A place, or `None` when all `max` are taken.
    pub fn try_enter(&self) -> Option<Entered<'_>> {
        // The count only bounds work: no other memory is published through it, so `Relaxed`.
        if self.held.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.held.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Entered(self))
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Limit;

    #[test]
    fn past_its_size_a_limit_refuses_until_a_place_is_given_back() {
        let limit = Limit::new(2);
        let first = limit.try_enter().expect("a first place");
        let _second = limit.try_enter().expect("a second place");
        assert!(limit.try_enter().is_none());
        assert!(limit.try_enter().is_none(), "a refusal takes no place");
        drop(first);
        assert!(limit.try_enter().is_some());
        assert!(Limit::new(0).try_enter().is_none());
    }
}
