//! Group commit: writers that finish at about the same time share one flush (one fsync).

use std::sync::{Condvar, Mutex, PoisonError};

use crate::error::Result;

/// Coordinates flushes so that each writer waits for a flush that started after its write, and only
/// one flush runs at a time; everyone who wrote before it started is covered by it.
#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<State>,
    flushed: Condvar,
}

#[derive(Default)]
struct State {
    /// Tickets handed out: one per completed write.
    written: u64,
    /// Every write with a ticket up to this one is durable.
    durable: u64,
    /// Whether some writer is flushing on everyone's behalf.
    flushing: bool,
}

impl GroupCommit {
    /// Returns once everything written before the call is on disk.
    pub fn flush(&self, db: &sled::Db) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.written += 1;
        let ticket = state.written;
        while state.durable < ticket {
            if state.flushing {
                state = self.flushed.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead a flush covering every ticket handed out so far.
            state.flushing = true;
            let covers = state.written;
            drop(state);
            let result = db.flush();
            state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.flushing = false;
            if result.is_ok() {
                state.durable = state.durable.max(covers);
            }
            self.flushed.notify_all();
            result?;
        }
        Ok(())
    }
}
