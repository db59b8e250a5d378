//! Panics in slots, full inboxes, and what the counters say about them.

mod common;
use common::*;
use signal_slot::prelude::*;
use signal_slot::{ConnectOptions, DropReason, EmitError, EventLoopThread, Overflow};
use std::time::Duration;

#[test]
fn a_panicking_slot_is_caught_counted_and_the_loop_goes_on() {
    let Rig { lp, src, sink, rx } = rig("panics");
    src.value().connect(&sink.panic_on()).unwrap();
    src.emit_values().invoke((20,)).unwrap(); // direct calls, 13 panics
    for i in 20..25 {
        src.value().emit((i,)); // queued calls
    }
    let got = take(&rx, 24);
    assert!(!got.contains(&"value 13".to_string()));
    assert_eq!(got.last().map(String::as_str), Some("value 24"));
    assert_eq!(lp.event_loop().stats().slot_panics, 1);
    assert!(sink.is_alive());
}

/// A receiver loop that is not running: its inbox fills and stays full.
fn full_inbox(capacity: usize) -> (EventLoop, Handle<Source>, Handle<Sink>) {
    let lp = EventLoop::builder(uid("full")).capacity(capacity).create();
    let src = lp.add(uid("source"), Source::default()).unwrap();
    let (sink, _rx) = Sink::new();
    let sink = lp.add(uid("sink"), sink).unwrap();
    (lp, src, sink)
}

#[test]
fn drop_newest_drops_silently_but_counts() {
    let (lp, src, sink) = full_inbox(4);
    src.value()
        .connect_with(
            &sink.on_value(),
            ConnectOptions::new().overflow(Overflow::DropNewest),
        )
        .unwrap();
    for i in 0..10 {
        assert_eq!(src.value().try_emit((i,)), Ok(()));
    }
    let s = lp.stats();
    assert_eq!((s.queue_depth, s.dropped_queue_full), (4, 6));
}

#[test]
fn fail_policy_reports_each_undelivered_message() {
    let (lp, src, sink) = full_inbox(2);
    src.value()
        .connect_with(
            &sink.on_value(),
            ConnectOptions::new().overflow(Overflow::Fail),
        )
        .unwrap();
    src.value().try_emit((0,)).unwrap();
    src.value().try_emit((1,)).unwrap();
    match src.value().try_emit((2,)) {
        Err(EmitError::Undelivered(u)) => {
            assert_eq!(u.len(), 1);
            assert_eq!(u[0].reason, DropReason::QueueFull);
            assert_eq!(&u[0].receiver, sink.id());
            assert_eq!(u[0].slot, "on_value");
        }
        other => panic!("expected Undelivered, got {other:?}"),
    }
    src.value().emit((3,)); // fire-and-forget: counted, not returned
    assert_eq!(lp.stats().dropped_queue_full, 2);
}

#[test]
fn block_policy_waits_for_room_then_gives_up_and_counts() {
    let (lp, src, sink) = full_inbox(1);
    src.value()
        .connect_with(
            &sink.on_value(),
            ConnectOptions::new().overflow(Overflow::Block(Duration::from_millis(20))),
        )
        .unwrap();
    src.value().try_emit((0,)).unwrap();
    assert_eq!(lp.stats().waited_for_room, 0, "room for the first");
    let err = src.value().try_emit((1,)).unwrap_err();
    assert!(matches!(err, EmitError::Undelivered(ref u) if u[0].reason == DropReason::QueueFull));
    let s = lp.stats();
    assert_eq!((s.dropped_queue_full, s.waited_for_room), (1, 1), "{s:?}");
}

#[test]
fn block_policy_delivers_everything_once_the_receiver_drains() {
    let lp = EventLoopThread::with_loop(EventLoop::builder(uid("slow")).capacity(8).create());
    let (sink, rx) = Sink::new();
    let sink = lp.event_loop().add(uid("sink"), sink).unwrap();
    let src_loop = EventLoop::new(uid("src"));
    let src = src_loop.add(uid("source"), Source::default()).unwrap();
    src.value()
        .connect_with(
            &sink.on_value(),
            ConnectOptions::new().overflow(Overflow::Block(DEADLINE)),
        )
        .unwrap();
    let producer = std::thread::spawn(move || {
        for i in 0..2000 {
            src.value().try_emit((i,)).unwrap();
        }
    });
    lp.start().unwrap();
    let got = take(&rx, 2000);
    producer.join().unwrap();
    assert_eq!(got.last().map(String::as_str), Some("value 1999"));
    assert_eq!(lp.event_loop().stats().dropped_total(), 0);
}

/// Plain emits from a slot (a signal field's fast path) to a small inbox on
/// another thread, policy `Block`: the emitter waits for room, and every
/// value arrives, in order, none dropped (review helper-37: losing them
/// failed no test).
#[test]
fn emits_from_a_slot_to_a_full_inbox_wait_and_lose_nothing() {
    let src_loop = thread_loop("block-src");
    let slow =
        EventLoopThread::with_loop(EventLoop::builder(uid("block-slow")).capacity(4).create());
    let (sink, rx) = Sink::new();
    let sink = slow.event_loop().add(uid("sink"), sink).unwrap();
    let src = src_loop
        .event_loop()
        .add(uid("src"), Source::default())
        .unwrap();
    src.value()
        .connect_with(
            &sink.on_value(),
            ConnectOptions::new().overflow(Overflow::Block(DEADLINE)),
        )
        .unwrap();
    src.emit_values().invoke((2000,)).unwrap();
    // The receiver starts once its inbox is full: the emitter waits by then.
    wait_until("a full inbox", || {
        slow.event_loop().stats().queue_depth == 4
    });
    slow.start().unwrap();
    let want: Vec<String> = (0..2000).map(|i| format!("value {i}")).collect();
    assert_eq!(take(&rx, 2000), want);
    let s = slow.event_loop().stats();
    assert_eq!(s.dropped_total(), 0, "{s:?}");
    assert!(
        s.waited_for_room >= 1,
        "the emitter found the inbox full: {s:?}"
    );
}

/// Policy `Fail` from a slot to a loop that never runs: exactly its capacity
/// is queued, every other emit counted once.
#[test]
fn emits_from_a_slot_to_a_full_inbox_fail_and_count_each_once() {
    let src_loop = thread_loop("fail-src");
    let idle = EventLoop::builder(uid("fail-idle")).capacity(4).create();
    let (sink, _rx) = Sink::new();
    let sink = idle.add(uid("sink"), sink).unwrap();
    let (done_sink, done_rx) = Sink::new();
    let src = src_loop
        .event_loop()
        .add(uid("src"), Source::default())
        .unwrap();
    let done = src_loop.event_loop().add(uid("done"), done_sink).unwrap();
    src.value()
        .connect_with(
            &sink.on_value(),
            ConnectOptions::new().overflow(Overflow::Fail),
        )
        .unwrap();
    src.emit_values().invoke((10,)).unwrap();
    // Runs on the source's loop after the emitting slot returned.
    done.on_value().invoke((0,)).unwrap();
    assert_eq!(take(&done_rx, 1), ["value 0"]);
    let s = idle.stats();
    assert_eq!((s.queue_depth, s.dropped_queue_full), (4, 6), "{s:?}");
    assert_eq!(s.waited_for_room, 0, "`Fail` never waits: {s:?}");
}
