//! Event loops in child processes.
//!
//! [`EventLoopProcess`] hosts a loop in a child process made by `fork`: add
//! objects to its loop and connect them (to objects anywhere) **before**
//! [`start`](EventLoopProcess::start); from then on they live in the child, and
//! signals reach them, and come back from them, through shared-memory mailboxes.
//! Connections made before the start work in both directions; the handles you
//! hold keep working (`connect`, `emit`, `stop_slot`, ...).
//!
//! # What fork means here
//!
//! The child is a copy of the parent at `start()`, with one thread: the one that
//! called `start`. It runs the process loop and exits when that loop stops,
//! without running the parent's destructors or `atexit` handlers. Threads of the
//! parent (including its other loops) do not exist in the child; the child
//! reaches the parent's loops through their mailboxes. Start processes before
//! your own threads take locks the child might need, as with any `fork`. The
//! framework holds its own locks, stdout and stderr across the fork.
//!
//! # Limits
//!
//! At most 32 processes alive at once and 64 loops reachable across processes
//! (mailboxes); one encoded message at most half the ring size
//! ([`ProcessConfig`]); Linux only.

mod child;
pub(crate) mod control;
mod forker;
pub(crate) mod replies;

use crate::error::{StopError, Undelivered};
use crate::event_loop::{self, EventLoop};
use crate::object::ObjectId;
use crate::signal::{SignalArgs, SignalRef, SignalShared, SlotRef};
use crate::sync::{AtomicBool, Ordering};
use crate::transport::shm::region::{RegionError, MAX_MAILBOXES, PROC_ALIVE};
use crate::transport::shm::system;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessExit {
    /// It exited with this code (0 after its loop stopped normally, 101 after a
    /// panic outside any slot).
    Code(i32),
    /// A signal killed it (9 for SIGKILL).
    Signal(i32),
}

impl ProcessExit {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ProcessExit::Code(0))
    }
}

impl fmt::Display for ProcessExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessExit::Code(c) => write!(f, "exit code {c}"),
            ProcessExit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Why a process operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The shared region could not be created.
    #[error(transparent)]
    Region(#[from] RegionError),
    /// 32 processes are alive already.
    #[error("too many processes alive (at most 32)")]
    TooManyProcesses,
    /// `start` was called before.
    #[error("process {0:?} was already started")]
    AlreadyStarted(String),
    /// The process was never started.
    #[error("process {0:?} was never started")]
    NotStarted(String),
    /// The OS refused to fork.
    #[error("could not fork process {name:?}: {source}")]
    Fork {
        /// The process's name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Processes are started from the process that started the first one
    /// (the root, which forks them all); a child cannot start one.
    #[error("process {0:?}: only the root process starts processes, not a child")]
    StartInChild(String),
    /// Signalling the process failed.
    #[error("could not signal process {name:?}: {source}")]
    Kill {
        /// The process's name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Settings of the shared region, fixed when the first process is created.
///
/// ```
/// use signal_slot::process::ProcessConfig;
/// // Rings of 4 MiB: messages up to 2 MiB may cross processes.
/// let _ = ProcessConfig::new().ring_bytes(4 << 20).apply();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProcessConfig {
    ring_bytes: u32,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            ring_bytes: 1 << 20,
        }
    }
}

impl ProcessConfig {
    /// Defaults: rings of 1 MiB (so messages of up to 512 KiB).
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of each ring (a power of two, 4 KiB to 1 GiB); the largest message
    /// that can cross processes is half of it (minus a few bytes of header).
    pub fn ring_bytes(mut self, bytes: u32) -> Self {
        self.ring_bytes = bytes;
        self
    }

    /// Applies the settings; false if the region exists already (a process was
    /// created before), in which case nothing changes.
    pub fn apply(self) -> bool {
        system::set_ring_bytes(self.ring_bytes)
    }
}

enum State {
    NotStarted,
    Running { pid: i32 },
    Exited { pid: i32, status: ProcessExit },
}

/// Clears `Inner::starting` when dropped, unless a child was forked (the
/// state left `NotStarted`).
struct StartAttempt<'a>(&'a Inner);

impl Drop for StartAttempt<'_> {
    fn drop(&mut self) {
        if matches!(*plain(&self.0.state), State::NotStarted) {
            self.0.starting.store(false, Ordering::Release);
        }
    }
}

struct Inner {
    name: String,
    state: Mutex<State>,
    /// A `start` is under way or done: two threads starting at once would
    /// otherwise both pass the state check and fork two children for one
    /// loop (review, 2026-11-30). Cleared again by a start that failed.
    starting: AtomicBool,
    changed: Condvar,
    exited: Arc<SignalShared<(ProcessExit,)>>,
}

/// An event loop in a child process.
///
/// ```
/// use signal_slot::prelude::*;
/// use std::time::Duration;
///
/// #[derive(EventLoopObject, Default)]
/// struct Worker {
///     #[signal]
///     done: Signal<(u64,)>,
/// }
///
/// #[slots]
/// impl Worker {
///     fn work(&mut self, n: u64) {
///         self.done.emit((n * 2,));
///     }
/// }
///
/// fn main() -> signal_slot::Result<()> {
///     let main_loop = EventLoop::new("main");
///     let worker_process = EventLoopProcess::new("worker")?;
///     let worker = worker_process.event_loop().add("worker", Worker::default())?;
///     worker.done().connect(&main_loop.stop_slot())?; // the answer stops main
///     worker_process.start()?; // `worker` now lives in the child
///     worker.work().invoke((21,))?;
///     main_loop.exec()?;
///     worker_process.stop()?;
///     assert!(worker_process.join()?.success());
///     Ok(())
/// }
/// ```
pub struct EventLoopProcess {
    lp: EventLoop,
    inner: Arc<Inner>,
}

impl EventLoopProcess {
    /// A loop for a child process not started yet. The first call creates the
    /// shared region the processes of this program talk through.
    pub fn new(name: impl Into<String>) -> Result<Self, ProcessError> {
        let name = name.into();
        let (region, created) = system::ensure()?;
        if created {
            event_loop::attach_all(region);
            if control::claim_mailbox(region, 0) {
                control::start_thread(region, 0);
            }
        }
        let lp = EventLoop::new(name.clone());
        lp.shared().mark_for_process();
        let id = ObjectId::internal(format!("#process:{name}"));
        let exited = Arc::new(SignalShared::new(id, "exited", lp.id()));
        Ok(Self {
            lp,
            inner: Arc::new(Inner {
                name,
                state: Mutex::new(State::NotStarted),
                starting: AtomicBool::new(false),
                changed: Condvar::new(),
                exited,
            }),
        })
    }

    /// The loop that will run in the child: add objects and timers to it before
    /// [`start`](Self::start).
    pub fn event_loop(&self) -> &EventLoop {
        &self.lp
    }

    /// Forks the child; the loop and its objects run there from now on.
    pub fn start(&self) -> Result<(), ProcessError> {
        if self.inner.starting.swap(true, Ordering::AcqRel)
            || !matches!(*plain(&self.inner.state), State::NotStarted)
        {
            return Err(ProcessError::AlreadyStarted(self.inner.name.clone()));
        }
        // Also when the start panics: a later start may try again if nothing
        // forked.
        let _retry = StartAttempt(&self.inner);
        self.start_claimed()
    }

    /// [`start`](Self::start) once this call alone may start the process.
    fn start_claimed(&self) -> Result<(), ProcessError> {
        if system::my_proc() != 0 {
            // The fork server runs in the root only: in a child, its channel
            // (inherited) has no reader but the child's own loop thread, and
            // the start waited for ever, with a process slot marked alive
            // that no one would release (review helper-49).
            return Err(ProcessError::StartInChild(self.inner.name.clone()));
        }
        let (region, _) = system::ensure()?;
        let slot = region.claim_proc().ok_or(ProcessError::TooManyProcesses)?;
        if !control::claim_mailbox(region, slot) {
            region.release_proc(slot);
            return Err(ProcessError::TooManyProcesses);
        }
        if let Some(p) = region.proc(slot) {
            p.state.store(PROC_ALIVE, Ordering::Release);
        }
        match forker::fork_child(slot, self.lp.clone()) {
            Ok(child) => {
                if let Some(p) = region.proc(slot) {
                    p.pid.store(child as u32, Ordering::Relaxed);
                }
                self.lp.hand_over_to_child();
                *plain(&self.inner.state) = State::Running { pid: child };
                let (inner, lp) = (self.inner.clone(), self.lp.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("reaper:{}", self.inner.name))
                    .spawn(move || reap(inner, lp, child, slot));
                if let Err(source) = spawned {
                    // No one would reap the child, release its slot or end a
                    // `join()` (review helper-49): it goes now, reaped here.
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(child),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    reap(self.inner.clone(), self.lp.clone(), child, slot);
                    return Err(ProcessError::Fork {
                        name: self.inner.name.clone(),
                        source,
                    });
                }
                Ok(())
            }
            Err(source) => {
                self.lp.shared().set_owner(system::my_proc());
                control::release_mailbox(region, slot);
                region.release_proc(slot);
                Err(ProcessError::Fork {
                    name: self.inner.name.clone(),
                    source,
                })
            }
        }
    }

    /// Asks the child's loop to stop (it then exits with code 0).
    pub fn stop(&self) -> Result<(), StopError> {
        self.lp.stop()
    }

    /// A slot that stops the child's loop; see [`EventLoop::stop_slot`].
    pub fn stop_slot<A: SignalArgs>(&self) -> SlotRef<A> {
        self.lp.stop_slot()
    }

    /// Kills the child with SIGKILL.
    pub fn kill(&self) -> Result<(), ProcessError> {
        match &*plain(&self.inner.state) {
            State::Running { pid, .. } => nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .map_err(|e| ProcessError::Kill {
                name: self.inner.name.clone(),
                source: e.into(),
            }),
            State::NotStarted => Err(ProcessError::NotStarted(self.inner.name.clone())),
            State::Exited { .. } => Ok(()),
        }
    }

    /// Waits until the child has ended; returns how.
    pub fn join(&self) -> Result<ProcessExit, ProcessError> {
        let mut state = plain(&self.inner.state);
        loop {
            match &*state {
                State::NotStarted => return Err(ProcessError::NotStarted(self.inner.name.clone())),
                State::Exited { status, .. } => return Ok(*status),
                State::Running { .. } => {
                    state = self
                        .inner
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Like [`join`](Self::join), giving up after `timeout` (`Ok(None)`).
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<ProcessExit>, ProcessError> {
        let end = crate::deadline::in_(timeout);
        let mut state = plain(&self.inner.state);
        loop {
            match &*state {
                State::NotStarted => return Err(ProcessError::NotStarted(self.inner.name.clone())),
                State::Exited { status, .. } => return Ok(Some(*status)),
                State::Running { .. } => {
                    let now = Instant::now();
                    if now >= end {
                        return Ok(None);
                    }
                    state = self
                        .inner
                        .changed
                        .wait_timeout(state, end - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    /// True between `start` and the child's end.
    pub fn is_alive(&self) -> bool {
        matches!(&*plain(&self.inner.state), State::Running { .. })
    }

    /// The child's process id, once started.
    pub fn pid(&self) -> Option<u32> {
        match &*plain(&self.inner.state) {
            State::NotStarted => None,
            State::Running { pid, .. } | State::Exited { pid, .. } => Some(*pid as u32),
        }
    }

    /// How the child ended, once it has.
    pub fn exit_status(&self) -> Option<ProcessExit> {
        match &*plain(&self.inner.state) {
            State::Exited { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Emitted once, with the exit status, when the child has ended however it
    /// ended (stopped, crashed, killed). Its objects are removed first.
    pub fn exited(&self) -> SignalRef<(ProcessExit,)> {
        // Emitted here, by the reaper, whatever process runs the loop.
        SignalRef::from_shared(self.inner.exited.clone())
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl Drop for EventLoopProcess {
    /// Stops a running child, waits up to 5 s, then kills it.
    fn drop(&mut self) {
        if !self.is_alive() {
            return;
        }
        let _ = self.stop();
        if let Ok(None) = self.join_timeout(Duration::from_secs(5)) {
            let _ = self.kill();
            let _ = self.join_timeout(Duration::from_secs(5));
        }
    }
}

impl fmt::Debug for EventLoopProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoopProcess")
            .field("name", &self.inner.name)
            .field("pid", &self.pid())
            .field("exit", &self.exit_status())
            .finish()
    }
}

/// The process state is guarded by a plain mutex, not a framework lock: a
/// thread parked in `join` must not hold a share of the fork guard (a fork would
/// wait for it forever). The child never touches another process's state.
fn plain<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits for the child to end, then cleans up after it in this process.
fn reap(inner: Arc<Inner>, lp: EventLoop, pid: i32, slot: u32) {
    use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
    let child = nix::unistd::Pid::from_raw(pid);
    // The status is read without reaping the child: until the state says
    // `Exited` (below, after the clean-up), the pid stays a zombie, so a
    // `kill()` meanwhile signals the zombie (which succeeds, and does
    // nothing), never a process that got the pid after it (review
    // helper-49: it failed with ESRCH in that window, or could have hit
    // another process).
    let status = loop {
        match waitid(Id::Pid(child), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(WaitStatus::Exited(_, code)) => break ProcessExit::Code(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => break ProcessExit::Signal(sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log::error!("waitpid for process {:?} failed: {e}", inner.name);
                break ProcessExit::Code(-1);
            }
        }
    };
    if !status.success() {
        log::warn!("process {:?} (pid {pid}) ended: {status}", inner.name);
    }
    let region = system::region();
    if let Some(p) = region.and_then(|r| r.proc(slot)) {
        // Emitters stop routing to it from here on.
        p.state.store(3, Ordering::Release);
    }
    if let Some(region) = region {
        // What it published before it died reaches loops that sleep.
        crate::transport::shm::mailbox::wake_for_dead_producer(region, slot);
    }
    // Its objects are gone: break their connections and tell their watchers
    // (this process notifies; the others only forget).
    control::forget_process(slot, true);
    control::announce_death(slot);
    lp.mark_finished();
    if let Some(region) = region {
        let lost = control::discard_mailboxes_of(region, slot);
        if lost > 0 {
            lp.shared().counters.lost(lost, &inner.name);
        }
        for m in 0..MAX_MAILBOXES as u32 {
            region.release_mailbox_of(m, slot);
        }
        region.release_proc(slot);
    }
    *plain(&inner.state) = State::Exited { pid, status };
    // Now the pid may go: `kill()` no longer signals it.
    loop {
        match waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => log::error!("reaping process {:?} failed: {e}", inner.name),
            Ok(_) => {}
        }
        break;
    }
    inner.changed.notify_all();
    let mut report: Vec<Undelivered> = Vec::new();
    inner.exited.emit_shared(
        (status,),
        crate::signal::shared::Emission::new(None),
        Some(&mut report),
    );
}
