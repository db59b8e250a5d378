//! Shared memory between the processes of one system.
//!
//! One region ([`region::Region`]) is created by the root process before its first
//! fork, so every process of the system maps it at the same place and no file
//! descriptor ever has to be passed. It holds a slot per process and 64
//! mailboxes; a mailbox is one loop's cross-process inbox: an SPSC ring per
//! producer process ([`ring`]), a mask of rings with news, and the loop's doorbell.
//! The memory is an unnamed memfd: nothing appears in `/dev/shm`, and it is
//! freed when the last process unmaps it, crash or not.

pub(crate) mod dump;
pub(crate) mod mailbox;
pub(crate) mod region;
pub(crate) mod ring;
pub(crate) mod system;
