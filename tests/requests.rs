//! Request/response within one process: answers gathered from loops on other
//! threads, timeouts, errors, failures, and the slot-delivered form.

mod common;

use common::{uid, wait_until, DEADLINE};
use crossbeam_channel::{Receiver, Sender};
use signal_slot::prelude::*;
use signal_slot::{ReplyError, RequestError, Responses};
use std::time::{Duration, Instant};

#[derive(EventLoopObject, Default)]
struct Asker {
    #[signal]
    question: Signal<(u64,)>,
    #[signal]
    text: Signal<(String,)>,
    #[signal]
    ping: Signal<()>,
}

/// Answers questions; `held` blocks `slow` until the test releases it.
#[derive(EventLoopObject)]
struct Oracle {
    factor: u64,
    held: Option<Receiver<()>>,
    seen: Option<Sender<String>>,
}

impl Oracle {
    fn new(factor: u64) -> Self {
        Oracle {
            factor,
            held: None,
            seen: None,
        }
    }
}

#[slots]
impl Oracle {
    fn times(&mut self, n: u64) -> u64 {
        n * self.factor
    }
    fn slow(&mut self, n: u64) -> u64 {
        if let Some(rx) = &self.held {
            let _ = rx.recv_timeout(DEADLINE);
        }
        n
    }
    fn checked(&mut self, s: String) -> Result<usize, String> {
        if s.is_empty() {
            Err("empty".into())
        } else {
            Ok(s.len())
        }
    }
    fn nothing(&mut self, _n: u64) {}
    fn boom(&mut self, n: u64) -> u64 {
        panic!("boom {n}");
    }
    fn with_meta(&mut self, n: u64, meta: &Meta) -> String {
        format!("{n} request={} sender={}", meta.is_request(), meta.sender())
    }
    fn unsendable(&mut self, _n: u64) -> std::rc::Rc<u64> {
        std::rc::Rc::new(1)
    }
    fn on_ping(&mut self) {
        if let Some(tx) = &self.seen {
            let _ = tx.send("ping".into());
        }
    }
}

/// Gets the slot-delivered answers and forwards them to the test.
#[derive(EventLoopObject)]
struct Gatherer {
    tx: Sender<Responses<u64>>,
}

#[slots]
impl Gatherer {
    fn gathered(&mut self, r: Responses<u64>) {
        let _ = self.tx.send(r);
    }
}

fn started(name: &str) -> EventLoopThread {
    let t = EventLoopThread::new(uid(name));
    t.start().expect("start");
    t
}

#[test]
fn answers_of_two_receivers_on_two_loops_are_gathered() {
    let (l1, l2) = (started("req-a"), started("req-b"));
    let o1 = l1.event_loop().add(uid("o1"), Oracle::new(2)).unwrap();
    let o2 = l2.event_loop().add(uid("o2"), Oracle::new(3)).unwrap();
    let main = EventLoop::new(uid("req-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&o1.times()).unwrap();
    asker.question().connect(&o2.times()).unwrap();
    let r = asker.question().request::<u64>((7,), DEADLINE).unwrap();
    assert!(r.is_complete(), "{r:?}");
    assert_eq!(r.values().copied().collect::<Vec<_>>(), [14, 21]);
    assert_eq!(r.answers()[0].responder.receiver(), o1.id());
    assert_eq!(r.answers()[1].responder.slot(), "times");
    assert_eq!(r.answers()[1].responder.loop_name(), l2.event_loop().name());
}

/// A thread asking through the same signal again sees every connect and
/// disconnect made meanwhile (it reuses its last connection list only while
/// the signal is unchanged).
#[test]
fn repeated_requests_see_connections_made_and_removed_between_them() {
    let (l1, l2) = (started("req-again-a"), started("req-again-b"));
    let o1 = l1.event_loop().add(uid("o1"), Oracle::new(2)).unwrap();
    let o2 = l2.event_loop().add(uid("o2"), Oracle::new(3)).unwrap();
    let main = EventLoop::new(uid("req-again-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    let q = asker.question();
    let values = |r: Responses<u64>| r.values().copied().collect::<Vec<_>>();
    assert!(matches!(
        q.request::<u64>((1,), DEADLINE),
        Err(RequestError::NoResponders { .. })
    ));
    q.connect(&o1.times()).unwrap();
    for _ in 0..2 {
        assert_eq!(values(q.request::<u64>((5,), DEADLINE).unwrap()), [10]);
    }
    q.connect(&o2.times()).unwrap();
    assert_eq!(values(q.request::<u64>((5,), DEADLINE).unwrap()), [10, 15]);
    q.disconnect(&o1.times()).unwrap();
    assert_eq!(values(q.request::<u64>((5,), DEADLINE).unwrap()), [15]);
    q.disconnect_all();
    assert!(matches!(
        q.request::<u64>((1,), DEADLINE),
        Err(RequestError::NoResponders { .. })
    ));
}

#[test]
fn the_timeout_names_the_receiver_that_did_not_answer() {
    let (l1, l2) = (started("req-fast"), started("req-slow"));
    let fast = l1.event_loop().add(uid("fast"), Oracle::new(1)).unwrap();
    let (release, held) = crossbeam_channel::bounded(1);
    let mut o = Oracle::new(1);
    o.held = Some(held);
    let slow = l2.event_loop().add(uid("slow"), o).unwrap();
    let main = EventLoop::new(uid("req-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&fast.times()).unwrap();
    asker.question().connect(&slow.slow()).unwrap();
    let timeout = Duration::from_millis(300);
    let late_before = signal_slot::late_replies();
    let t0 = Instant::now();
    let r = asker.question().request::<u64>((5,), timeout).unwrap();
    let took = t0.elapsed();
    release.send(()).unwrap();
    assert!(took >= timeout && took < DEADLINE, "took {took:?}");
    assert_eq!(r.values().copied().collect::<Vec<_>>(), [5]);
    assert_eq!(r.missing().len(), 1, "{r:?}");
    assert_eq!(r.missing()[0].receiver(), slow.id());
    assert_eq!(r.missing()[0].slot(), "slow");
    assert!(r.failures().is_empty());
    // The slow answer, once released, arrives late: dropped, but counted.
    wait_until("the late answer counted", || {
        signal_slot::late_replies() > late_before
    });
}

#[test]
fn no_responders_is_answered_at_once() {
    let main = EventLoop::new(uid("req-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    let t0 = Instant::now();
    let e = asker.question().request::<u64>((1,), DEADLINE).unwrap_err();
    assert!(matches!(e, RequestError::NoResponders { .. }), "{e}");
    let (tx, _rx) = crossbeam_channel::unbounded();
    let g = main.add(uid("gatherer"), Gatherer { tx }).unwrap();
    let e = asker
        .question()
        .request_to::<u64>((1,), DEADLINE, &g.gathered())
        .unwrap_err();
    assert!(matches!(e, RequestError::NoResponders { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(1));
}

/// Asks from inside a slot, and reports what happened.
#[derive(EventLoopObject)]
struct InnerAsker {
    #[signal]
    question: Signal<(u64,)>,
    tx: Sender<String>,
}

#[slots]
impl InnerAsker {
    fn ask(&mut self) {
        let line = match self.question.request::<u64>((4,), DEADLINE) {
            Ok(r) => format!("ok {:?}", r.values().collect::<Vec<_>>()),
            Err(RequestError::OwnLoop { loop_name, .. }) => format!("own loop {loop_name}"),
            Err(e) => format!("error {e}"),
        };
        let _ = self.tx.send(line);
    }
}

#[test]
fn a_blocking_request_to_its_own_loop_is_an_error_and_to_another_loop_works() {
    let here = started("req-here");
    let there = started("req-there");
    let (tx, rx) = crossbeam_channel::unbounded();
    let asker = here
        .event_loop()
        .add(
            uid("inner"),
            InnerAsker {
                question: Signal::new(),
                tx,
            },
        )
        .unwrap();
    let near = here.event_loop().add(uid("near"), Oracle::new(2)).unwrap();
    let far = there.event_loop().add(uid("far"), Oracle::new(3)).unwrap();
    asker.question().connect(&far.times()).unwrap();
    asker.ask().invoke(()).unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "ok [12]");
    asker.question().connect(&near.times()).unwrap();
    let t0 = Instant::now();
    asker.ask().invoke(()).unwrap();
    let line = rx.recv_timeout(DEADLINE).unwrap();
    assert_eq!(line, format!("own loop {}", here.event_loop().name()));
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_blocking_request_from_the_thread_of_a_receivers_loop_is_refused() {
    // `main` runs `lp` here only inside exec; a slot of `lp` asks `lp`'s own object.
    let lp = EventLoop::new(uid("req-own"));
    let (tx, rx) = crossbeam_channel::unbounded();
    let asker = lp
        .add(
            uid("inner"),
            InnerAsker {
                question: Signal::new(),
                tx,
            },
        )
        .unwrap();
    let o = lp.add(uid("o"), Oracle::new(1)).unwrap();
    asker.question().connect(&o.times()).unwrap();
    asker.ask().invoke(()).unwrap();
    lp.stop_slot::<()>().invoke(()).unwrap();
    lp.exec().unwrap();
    assert!(rx.try_recv().unwrap().starts_with("own loop"));
}

#[test]
fn a_reply_of_another_type_is_a_failure_never_a_value() {
    let l = started("req-type");
    let o = l.event_loop().add(uid("o"), Oracle::new(2)).unwrap();
    let main = EventLoop::new(uid("req-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&o.times()).unwrap();
    let r = asker.question().request::<i64>((1,), DEADLINE).unwrap();
    assert!(r.answers().is_empty());
    assert_eq!(r.failures().len(), 1);
    match &r.failures()[0].error {
        ReplyError::WrongType { expected, got } => {
            assert_eq!(expected, "i64");
            assert_eq!(got, "u64");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn slots_returning_result_unit_or_unsendable_values() {
    let l = started("req-result");
    let o = l.event_loop().add(uid("o"), Oracle::new(2)).unwrap();
    let main = EventLoop::new(uid("req-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.text().connect(&o.checked()).unwrap();
    let ok = asker
        .text()
        .request::<Result<usize, String>>(("four".into(),), DEADLINE)
        .unwrap();
    assert_eq!(ok.values().cloned().collect::<Vec<_>>(), [Ok(4)]);
    let err = asker
        .text()
        .request::<Result<usize, String>>((String::new(),), DEADLINE)
        .unwrap();
    assert_eq!(
        err.values().cloned().collect::<Vec<_>>(),
        [Err("empty".into())]
    );

    asker.question().connect(&o.nothing()).unwrap();
    asker.question().connect(&o.unsendable()).unwrap();
    let r = asker.question().request::<()>((1,), DEADLINE).unwrap();
    assert_eq!(r.answers().len(), 1);
    assert_eq!(r.answers()[0].responder.slot(), "nothing");
    assert!(matches!(
        r.failures()[0].error,
        ReplyError::NotAnswerable(_)
    ));
}

#[test]
fn a_panicking_slot_is_a_failure_and_the_loop_goes_on() {
    let l = started("req-panic");
    let o = l.event_loop().add(uid("o"), Oracle::new(2)).unwrap();
    let main = EventLoop::new(uid("req-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&o.boom()).unwrap();
    let r = asker.question().request::<u64>((1,), DEADLINE).unwrap();
    assert_eq!(r.failures()[0].error, ReplyError::Panicked);
    asker.question().disconnect(&o.boom()).unwrap();
    asker.question().connect(&o.times()).unwrap();
    let r = asker.question().request::<u64>((1,), DEADLINE).unwrap();
    assert_eq!(r.values().copied().collect::<Vec<_>>(), [2]);
    assert_eq!(l.event_loop().stats().slot_panics, 1);
}

#[test]
fn the_slot_sees_request_metadata() {
    let l = started("req-meta");
    let o = l.event_loop().add(uid("o"), Oracle::new(2)).unwrap();
    let main = EventLoop::new(uid("req-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&o.with_meta()).unwrap();
    let r = asker.question().request::<String>((9,), DEADLINE).unwrap();
    assert_eq!(
        r.values().cloned().collect::<Vec<_>>(),
        [format!("9 request=true sender={}", asker.id())]
    );
}

#[test]
fn a_receiver_whose_loop_never_runs_is_missing() {
    let l = started("req-stopped");
    let o = l.event_loop().add(uid("o"), Oracle::new(2)).unwrap();
    let main = EventLoop::new(uid("req-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&o.times()).unwrap();
    // An idle loop that never runs: its answer is missing at the timeout.
    let idle = EventLoop::new(uid("req-idle"));
    let sleeper = idle.add(uid("sleeper"), Oracle::new(1)).unwrap();
    asker.question().connect(&sleeper.times()).unwrap();
    let r = asker
        .question()
        .request::<u64>((1,), Duration::from_millis(100))
        .unwrap();
    assert_eq!(r.values().copied().collect::<Vec<_>>(), [2]);
    assert_eq!(r.missing()[0].receiver(), sleeper.id());
    idle.stop().unwrap();
    idle.exec().unwrap();
    // Its loop finished: connections to it are gone with its objects.
    assert_eq!(asker.question().receiver_count(), 1);
}

#[test]
fn answers_can_be_delivered_to_a_slot() {
    let l = started("req-async");
    let o = l.event_loop().add(uid("o"), Oracle::new(2)).unwrap();
    let here = started("req-async-here");
    let (tx, rx) = crossbeam_channel::unbounded();
    let g = here.event_loop().add(uid("g"), Gatherer { tx }).unwrap();
    let (seen_tx, seen_rx) = crossbeam_channel::unbounded();
    let mut near = Oracle::new(5);
    near.seen = Some(seen_tx);
    // A receiver on the gatherer's own loop is fine for this form.
    let near = here.event_loop().add(uid("near"), near).unwrap();
    let asker = here
        .event_loop()
        .add(uid("asker"), Asker::default())
        .unwrap();
    asker.question().connect(&o.times()).unwrap();
    asker.question().connect(&near.times()).unwrap();
    asker.ping().connect(&near.on_ping()).unwrap();
    let t0 = Instant::now();
    asker
        .question()
        .request_to::<u64>((3,), DEADLINE, &g.gathered())
        .unwrap();
    let r = rx.recv_timeout(DEADLINE).unwrap();
    assert!(t0.elapsed() < DEADLINE / 2);
    assert_eq!(r.values().copied().collect::<Vec<_>>(), [6, 15]);
    assert!(r.is_complete());
    // A `()` slot answers `()`; ask it with the right type.
    let r = asker.ping().request::<()>((), DEADLINE).unwrap();
    assert_eq!(r.answers().len(), 1);
    assert_eq!(seen_rx.recv_timeout(DEADLINE).unwrap(), "ping");
}

#[test]
fn the_slot_delivered_form_reports_missing_receivers_at_the_timeout() {
    let l = started("req-async-slow");
    let (release, held) = crossbeam_channel::bounded(1);
    let mut o = Oracle::new(1);
    o.held = Some(held);
    let slow = l.event_loop().add(uid("slow"), o).unwrap();
    let here = started("req-async-here");
    let (tx, rx) = crossbeam_channel::unbounded();
    let g = here.event_loop().add(uid("g"), Gatherer { tx }).unwrap();
    let main = EventLoop::new(uid("req-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&slow.slow()).unwrap();
    let t0 = Instant::now();
    let timeout = Duration::from_millis(200);
    asker
        .question()
        .request_to::<u64>((1,), timeout, &g.gathered())
        .unwrap();
    let r = rx.recv_timeout(DEADLINE).unwrap();
    release.send(()).unwrap();
    assert!(t0.elapsed() >= timeout);
    assert!(r.answers().is_empty());
    assert_eq!(r.missing()[0].receiver(), slow.id());
    // Exactly one delivery.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn a_timeout_of_duration_max_waits_for_the_answer_without_panicking() {
    let l = started("req-forever");
    let o = l.event_loop().add(uid("o"), Oracle::new(2)).unwrap();
    let main = EventLoop::new(uid("req-forever-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&o.times()).unwrap();
    let r = asker
        .question()
        .request::<u64>((4,), Duration::MAX)
        .unwrap();
    assert_eq!(r.values().copied().collect::<Vec<_>>(), [8]);
}
