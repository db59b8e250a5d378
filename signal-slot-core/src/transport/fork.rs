//! Starting and ending child processes: the OS calls the process layer needs.

use std::io;

/// What `fork` returned, seen from each side.
pub(crate) enum Forked {
    Parent { child: i32 },
    Child,
}

/// Forks the calling process. In the child only the calling thread exists.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: the caller (process::start) holds every lock of the framework across
    // this call, so the child inherits none mid-update, and the child runs only
    // the framework's own code path (the loop) before `_exit`; it never returns
    // into the caller's stack frames that hold parent-only resources.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Forked::Parent {
            child: child.as_raw(),
        }),
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Ends the process at once: no destructors, no atexit handlers (the parent's
/// copies of them must not run twice). Flush what must be flushed first.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// Makes the kernel kill this (child) process when its parent dies, and exits
/// at once if the parent is already gone.
pub(crate) fn die_with_parent(parent: i32) {
    // SAFETY: prctl with PR_SET_PDEATHSIG and a signal number has no memory effects.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if nix::unistd::getppid().as_raw() != parent {
        exit_now(1);
    }
}
