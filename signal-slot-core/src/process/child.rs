//! What the child does after `fork`.

use crate::event_loop::EventLoop;
use crate::transport::fork;
use crate::transport::shm::system;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs the process loop, then ends the process. Never returns.
pub(super) fn run(slot: u32, parent: i32, lp: EventLoop) -> ! {
    system::set_my_proc(slot);
    fork::die_with_parent(parent);
    if let Some(region) = system::region() {
        super::control::start_thread(region, slot);
    }
    let code = match catch_unwind(AssertUnwindSafe(|| lp.exec_in_child())) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            log::error!("process loop {:?} could not run: {e}", lp.name());
            1
        }
        Err(_) => 101,
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    fork::exit_now(code)
}
