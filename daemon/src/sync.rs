//! Locking a `std::sync::Mutex` that a panicking thread may have poisoned.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `lock_or_recover`: what both services do with a poisoned mutex. The data they guard
/// (counters, caches, a reader connection) stays usable after a panic elsewhere, and a service
/// that stopped serving over it would be worse than one that carries on.
pub trait LockExt<T: ?Sized> {
    /// Locks, taking the guard back from a poisoned lock instead of failing.
    fn lock_or_recover(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockExt<T> for Mutex<T> {
    fn lock_or_recover(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The same for a `std::sync::RwLock`.
pub trait RwLockExt<T: ?Sized> {
    fn read_or_recover(&self) -> RwLockReadGuard<'_, T>;
    fn write_or_recover(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> RwLockExt<T> for RwLock<T> {
    fn read_or_recover(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_or_recover(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_data() {
        let counter = Arc::new(Mutex::new(1));
        let poisoner = counter.clone();
        let panicked = std::thread::spawn(move || {
            let mut guard = poisoner.lock_or_recover();
            *guard += 1;
            panic!("poison the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(counter.is_poisoned());
        *counter.lock_or_recover() += 1;
        assert_eq!(*counter.lock_or_recover(), 3);
    }
}
