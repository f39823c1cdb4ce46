//! The deadline of the call a backend is working for.
//!
//! The epoch deadline stops guest code, but a backend import runs host code: a search, an
//! embedding request, a wait for a lock. While an import runs for a call, the call's deadline
//! is set on the thread that runs it, and backends read it here: SQLite interrupts a statement
//! past it, PostgreSQL gets it as `statement_timeout`, the HTTP embedder as its timeout, long
//! loops check it between steps. The import then traps the call as over its deadline.
//!
//! A thread-local rather than an argument on every backend trait: backends run synchronously
//! on the calling thread, and hosts that implement the traits keep their signatures.

use std::cell::Cell;
use std::sync::{
    Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError, TryLockResult,
};
use std::time::{Duration, Instant};

use crate::api::BackendError;

thread_local! {
    static CURRENT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The message of the [`BackendError`] a backend returns when it stopped at the deadline.
pub const DEADLINE_MESSAGE: &str = "the call's deadline passed";

/// The trap a call gets when host work done for it ran past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("host work for the call ran past its deadline")]
pub struct HostDeadlineExceeded;

/// Run `work` with `deadline` as the current call's deadline on this thread (restoring the
/// previous one afterwards, so nested calls keep theirs).
pub fn within<R>(deadline: Instant, work: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|current| current.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|current| current.replace(Some(deadline))));
    work()
}

/// The current call's deadline, if this thread is working for one.
pub fn current() -> Option<Instant> {
    CURRENT.with(Cell::get)
}

/// Time left before the current call's deadline: `None` when there is no deadline.
pub fn remaining() -> Option<Duration> {
    current().map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// Whether the current call's deadline has passed.
pub fn expired() -> bool {
    current().is_some_and(|deadline| Instant::now() >= deadline)
}

/// `Err` once the deadline has passed: for loops that do host work step by step.
pub fn check() -> Result<(), BackendError> {
    if expired() {
        Err(BackendError::Unavailable(DEADLINE_MESSAGE.into()))
    } else {
        Ok(())
    }
}

/// `mutex` locked, waiting no longer than the current call's deadline (forever without one):
/// a tenant's other requests are not held hostage by one slow call.
pub fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, BackendError> {
    if current().is_none() {
        return Ok(mutex.lock().unwrap_or_else(|p| p.into_inner()));
    }
    acquire(|| mutex.try_lock())
}

/// `lock` read-locked, waiting no longer than the current call's deadline.
pub fn read<T>(lock: &RwLock<T>) -> Result<RwLockReadGuard<'_, T>, BackendError> {
    if current().is_none() {
        return Ok(lock.read().unwrap_or_else(|p| p.into_inner()));
    }
    acquire(|| lock.try_read())
}

/// `lock` write-locked, waiting no longer than the current call's deadline.
pub fn write<T>(lock: &RwLock<T>) -> Result<RwLockWriteGuard<'_, T>, BackendError> {
    if current().is_none() {
        return Ok(lock.write().unwrap_or_else(|p| p.into_inner()));
    }
    acquire(|| lock.try_write())
}

/// Poll `try_lock` until it succeeds (a poisoned lock is taken as is) or the deadline passes.
fn acquire<G>(mut try_lock: impl FnMut() -> TryLockResult<G>) -> Result<G, BackendError> {
    loop {
        match try_lock() {
            Ok(guard) => return Ok(guard),
            Err(TryLockError::Poisoned(poisoned)) => return Ok(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => {
                check()?;
                std::thread::sleep(cap(Duration::from_micros(500)));
            }
        }
    }
}

/// `wanted`, shortened to the time left before the deadline (if any).
pub fn cap(wanted: Duration) -> Duration {
    remaining().map_or(wanted, |left| wanted.min(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_holds_inside_its_scope_only() {
        assert!(current().is_none() && !expired() && check().is_ok());
        let past = Instant::now() - Duration::from_millis(1);
        within(past, || {
            assert!(expired());
            assert!(check().is_err());
            assert_eq!(cap(Duration::from_secs(5)), Duration::ZERO);
            let later = Instant::now() + Duration::from_secs(60);
            within(later, || assert!(!expired()));
            assert!(expired(), "the outer deadline is restored");
        });
        assert!(current().is_none());
        assert_eq!(cap(Duration::from_secs(5)), Duration::from_secs(5));
    }
}
