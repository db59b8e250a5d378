//! A text dump of the shared region's mailboxes, for diagnosing a message
//! that did not arrive in a running system: which loop sleeps, which flags
//! are up, which rings hold records. Read without any lock, so a dump of a
//! busy system is a blur; of a stuck one, a picture (the soak section of the
//! processes bench prints one at a miss).

use super::region::{MAX_MAILBOXES, MAX_PROCS};
use super::system;
use crate::sync::Ordering;
use std::fmt::Write;

/// Every mailbox in use: owner, generation, doorbell word, barrier mode,
/// dirty mask; and each of its rings that was ever written: head, tail, the
/// word at the head, and whether the producer process is alive.
pub(crate) fn mailboxes() -> String {
    let Some(region) = system::region() else {
        return "no shared region in this process\n".into();
    };
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(s, "process {} (this one)", system::my_proc());
    for m in 0..MAX_MAILBOXES as u32 {
        if !region.mailbox_in_use(m) {
            continue;
        }
        let h = region.mailbox_header(m);
        let _ = writeln!(
            s,
            "mailbox {m}: owner {} generation {} bell {} fences {} dirty {:#x}",
            h.owner.load(Ordering::Acquire),
            h.generation.load(Ordering::Acquire),
            h.bell.load(Ordering::Acquire),
            h.fences.load(Ordering::Acquire),
            h.dirty.load(Ordering::Acquire),
        );
        for p in 0..MAX_PROCS as u32 {
            let (head, tail, word) = region.ring(m, p).snapshot();
            if head != 0 || tail != 0 || word != 0 {
                let _ = writeln!(
                    s,
                    "  ring from process {p}: head {head} tail {tail} word at head {word:#x} \
                     producer alive {}",
                    system::proc_alive(region, p)
                );
            }
        }
    }
    s
}
