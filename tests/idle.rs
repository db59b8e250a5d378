//! An idle loop sleeps in the kernel: it does not wake up unless there is work.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn an_idle_loop_does_not_wake_up_and_wakes_for_work() {
    let lp = thread_loop("idle");
    let (sink, rx) = Sink::new();
    let sink = lp.event_loop().add(uid("sink"), sink).unwrap();
    sink.on_tick().invoke(()).unwrap();
    take(&rx, 1);
    // Let it settle into its sleep, then watch it stay asleep. This sleep observes
    // an absence; nothing is waited for.
    std::thread::sleep(Duration::from_millis(50));
    let before = lp.event_loop().stats().wakeups;
    std::thread::sleep(Duration::from_millis(300));
    let after = lp.event_loop().stats().wakeups;
    assert!(
        after - before <= 1,
        "idle loop woke {} times",
        after - before
    );
    // And it does wake for work.
    sink.on_tick().invoke(()).unwrap();
    take(&rx, 1);
}
