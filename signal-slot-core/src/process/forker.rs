//! One long-lived thread forks every child. The kernel's parent-death signal
//! follows the *thread* that forked, so it must outlive the children; and the
//! child starts on a thread that runs no loop (a `start()` called from a slot
//! would otherwise leave the child inside that slot's loop).

use crate::event_loop::EventLoop;
use crate::transport::fork::{self, Forked};
use crate::transport::shm::mailbox;
use crossbeam_channel::{bounded, unbounded, Sender};
use std::io::{self, Write};
use std::sync::OnceLock;

struct Request {
    slot: u32,
    lp: EventLoop,
    reply: Sender<io::Result<i32>>,
}

static FORKER: OnceLock<Sender<Request>> = OnceLock::new();

/// Forks a child that runs `lp` as process `slot`; returns its pid.
pub(super) fn fork_child(slot: u32, lp: EventLoop) -> io::Result<i32> {
    let tx = match FORKER.get() {
        Some(tx) => tx,
        None => {
            let (tx, rx) = unbounded::<Request>();
            std::thread::Builder::new()
                .name("signal-slot-forker".into())
                .spawn(move || {
                    for req in rx {
                        serve(req);
                    }
                })?;
            FORKER.get_or_init(|| tx)
        }
    };
    let (reply, answer) = bounded(1);
    tx.send(Request { slot, lp, reply })
        .map_err(|_| io::Error::other("the forker thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the forker thread is gone"))?
}

fn serve(req: Request) {
    let parent = std::process::id() as i32;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let forked = {
        // Everything the child may touch and another thread may hold is held
        // here across the fork, so the child inherits none of it mid-update.
        let out = std::io::stdout().lock();
        let err = std::io::stderr().lock();
        let pending = super::control::hold_for_fork();
        let quiet = crate::sync::quiesce_for_fork();
        let producers = mailbox::lock_all_producers();
        // Posts into this loop take a fork share and re-check its owner: from
        // here on they go to its mailbox.
        req.lp.shared().set_owner(req.slot);
        let forked = fork::fork();
        drop(producers);
        drop(quiet);
        drop(pending);
        drop(err);
        drop(out);
        forked
    };
    let result = match forked {
        Ok(Forked::Child) => super::child::run(req.slot, parent, req.lp),
        Ok(Forked::Parent { child }) => Ok(child),
        Err(e) => Err(e),
    };
    let _ = req.reply.send(result);
}
