//! The late-answer counter, in a test process of its own: the counter is
//! process-wide, and other tests' late answers would change it meanwhile.

mod common;

use common::{uid, wait_until, DEADLINE};
use crossbeam_channel::Receiver;
use signal_slot::prelude::*;
use std::time::Duration;

#[derive(EventLoopObject, Default)]
struct Asker {
    #[signal]
    question: Signal<(u64,)>,
}

/// `slow` answers once the test releases it.
#[derive(EventLoopObject)]
struct Slow {
    held: Receiver<()>,
}

#[slots]
impl Slow {
    fn slow(&mut self, n: u64) -> u64 {
        let _ = self.held.recv_timeout(DEADLINE);
        n
    }
    fn quick(&mut self, n: u64) -> u64 {
        n
    }
}

/// Review helper-53: an answer from a loop of this process that came after
/// the request ended was counted twice (once when handed over, once more
/// when its call was dropped).
#[test]
fn a_late_answer_is_counted_once() {
    let lp = EventLoopThread::new(uid("slow-loop"));
    lp.start().unwrap();
    let (release, held) = crossbeam_channel::bounded(1);
    let slow = lp.event_loop().add(uid("slow"), Slow { held }).unwrap();
    let main = EventLoop::new(uid("asking"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&slow.slow()).unwrap();
    let before = signal_slot::late_replies();
    let r = asker
        .question()
        .request::<u64>((5,), Duration::from_millis(50))
        .unwrap();
    assert_eq!(r.missing().len(), 1, "{r:?}");
    release.send(()).unwrap();
    wait_until("the late answer counted", || {
        signal_slot::late_replies() > before
    });
    // A request behind it on the same loop: answered once the late call,
    // and what it carried, are gone.
    asker.question().disconnect_all();
    asker.question().connect(&slow.quick()).unwrap();
    let r = asker.question().request::<u64>((7,), DEADLINE).unwrap();
    assert_eq!(r.values().copied().collect::<Vec<_>>(), [7]);
    assert_eq!(signal_slot::late_replies() - before, 1);
}
