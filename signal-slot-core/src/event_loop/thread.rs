use super::EventLoop;
use crate::error::{ExecError, JoinError, StartError, StopError};
use crate::signal::{SignalArgs, SlotRef};
use crate::sync::lock;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// An event loop on a thread of its own.
///
/// Add objects through [`event_loop`](Self::event_loop), connect them, then
/// [`start`](Self::start). Dropping it stops the loop and joins the thread.
///
/// ```
/// use signal_slot::prelude::*;
///
/// let worker = EventLoopThread::new("worker-doc");
/// worker.start().unwrap();
/// worker.stop().unwrap();
/// worker.join().unwrap();
/// ```
pub struct EventLoopThread {
    lp: EventLoop,
    thread: Mutex<ThreadState>,
}

enum ThreadState {
    NotStarted,
    Running(JoinHandle<Result<(), ExecError>>),
    Joined,
}

impl EventLoopThread {
    /// A loop (default settings) for a thread not started yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self::with_loop(EventLoop::new(name))
    }

    /// Hosts an existing, not yet running loop (e.g. from [`EventLoop::builder`]).
    pub fn with_loop(lp: EventLoop) -> Self {
        Self {
            lp,
            thread: Mutex::new(ThreadState::NotStarted),
        }
    }

    /// The hosted loop.
    pub fn event_loop(&self) -> &EventLoop {
        &self.lp
    }

    /// Spawns the thread (named after the loop) and runs the loop on it.
    /// A loop that cannot run here (an
    /// [`EventLoopProcess`](crate::EventLoopProcess)'s, one running or
    /// finished) is refused at once ([`StartError::Exec`]).
    ///
    /// ```
    /// use signal_slot::{EventLoopProcess, EventLoopThread, StartError, ExecError};
    ///
    /// let p = EventLoopProcess::new("start-doc").unwrap();
    /// let t = EventLoopThread::with_loop(p.event_loop().clone());
    /// assert!(matches!(t.start(), Err(StartError::Exec(ExecError::ForProcess(_)))));
    /// ```
    pub fn start(&self) -> Result<(), StartError> {
        let mut state = lock(&self.thread);
        if !matches!(*state, ThreadState::NotStarted) {
            return Err(StartError::AlreadyStarted(self.lp.name().to_string()));
        }
        self.lp.runnable()?;
        let lp = self.lp.clone();
        let handle = std::thread::Builder::new()
            .name(self.lp.name().to_string())
            .spawn(move || lp.exec())
            .map_err(|source| StartError::Spawn {
                name: self.lp.name().to_string(),
                source,
            })?;
        *state = ThreadState::Running(handle);
        Ok(())
    }

    /// Asks the loop to stop; see [`EventLoop::stop`].
    pub fn stop(&self) -> Result<(), StopError> {
        self.lp.stop()
    }

    /// A slot that stops this loop; see [`EventLoop::stop_slot`].
    pub fn stop_slot<A: SignalArgs>(&self) -> SlotRef<A> {
        self.lp.stop_slot()
    }

    /// Waits for the thread to end (after a stop).
    pub fn join(&self) -> Result<(), JoinError> {
        let handle = {
            let mut state = lock(&self.thread);
            if matches!(&*state, ThreadState::Running(h) if h.thread().id() == std::thread::current().id())
            {
                // From a slot of this loop: it would wait for itself (std
                // panics there, and the handle was lost with it: a later
                // `join()` did not wait; review helper-52).
                return Err(JoinError::FromItsOwnThread(self.lp.name().to_string()));
            }
            match std::mem::replace(&mut *state, ThreadState::Joined) {
                ThreadState::Running(h) => h,
                ThreadState::NotStarted => {
                    *state = ThreadState::NotStarted;
                    return Err(JoinError::NotStarted(self.lp.name().to_string()));
                }
                ThreadState::Joined => {
                    return Err(JoinError::AlreadyJoined(self.lp.name().to_string()))
                }
            }
        };
        match handle.join() {
            Ok(result) => Ok(result?),
            Err(_) => Err(JoinError::Panicked(self.lp.name().to_string())),
        }
    }

    /// True while the thread runs.
    pub fn is_running(&self) -> bool {
        matches!(&*lock(&self.thread), ThreadState::Running(h) if !h.is_finished())
    }
}

impl Drop for EventLoopThread {
    fn drop(&mut self) {
        if matches!(&*lock(&self.thread), ThreadState::Running(_)) {
            let _ = self.lp.stop();
            let _ = self.join();
        }
    }
}
