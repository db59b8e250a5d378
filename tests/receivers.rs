//! Plain-thread receivers: code that runs no loop reads signals and patterns.

mod common;

use common::{thread_loop, uid, wait_until, DEADLINE};
use signal_slot::prelude::*;
use signal_slot::{Receiver, RecvError, RecvTimeoutError, TryRecvError};
use std::time::Duration;

#[derive(EventLoopObject, Default)]
struct Meter {
    #[signal]
    watts: Signal<(u32,)>,
}

#[derive(EventLoopObject, Default)]
struct Tank {
    #[signal]
    litres: Signal<(u64,)>,
}

#[test]
fn a_receiver_gets_every_emission_in_order_then_the_end() {
    let lp = thread_loop("rx");
    let m = lp.event_loop().add(uid("meter"), Meter::default()).unwrap();
    let rx = m.watts().receiver().unwrap();
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(1)),
        Err(RecvTimeoutError::Timeout)
    );
    for v in 0..100 {
        m.watts().emit((v,));
    }
    let first: Vec<u32> = (0..50).map(|_| rx.recv().unwrap().0).collect();
    assert_eq!(first, (0..50).collect::<Vec<_>>());
    m.remove().unwrap();
    // What was sent before the removal, then the end.
    let rest: Vec<u32> = rx.iter().map(|(v,)| v).collect();
    assert_eq!(rest, (50..100).collect::<Vec<_>>());
    assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    assert_eq!(rx.dropped(), 0);
}

#[test]
fn a_pattern_receiver_hears_every_matching_signal_also_later_ones() {
    let lp = thread_loop("rx-pattern");
    let a = lp.event_loop().add(uid("tank-a"), Tank::default()).unwrap();
    let rx = Receiver::<(u64,)>::subscribe("+/litres").unwrap();
    let b = lp.event_loop().add(uid("tank-b"), Tank::default()).unwrap();
    a.litres().emit((1,));
    b.litres().emit((2,));
    let mut got = vec![
        rx.recv_timeout(DEADLINE).unwrap().0,
        rx.recv_timeout(DEADLINE).unwrap().0,
    ];
    got.sort();
    assert_eq!(got, [1, 2]);
    drop(rx);
    assert_eq!(
        a.litres().receiver_count(),
        0,
        "dropping ends the subscription"
    );
}

#[test]
fn a_full_receiver_drops_new_emissions_and_counts_them() {
    let lp = thread_loop("rx-full");
    let m = lp.event_loop().add(uid("meter"), Meter::default()).unwrap();
    let rx = m.watts().receiver_with_capacity(2).unwrap();
    for v in 0..5 {
        m.watts().emit((v,));
    }
    wait_until("three drops", || rx.dropped() == 3);
    assert_eq!(rx.try_iter().map(|(v,)| v).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn dropping_a_receiver_disconnects_it() {
    let lp = thread_loop("rx-drop");
    let m = lp.event_loop().add(uid("meter"), Meter::default()).unwrap();
    let rx = m.watts().receiver().unwrap();
    assert_eq!(m.watts().receiver_count(), 1);
    drop(rx);
    assert_eq!(m.watts().receiver_count(), 0);
}

/// With the `async` feature a receiver is a `Stream`: polled by a minimal
/// executor here (a thread that parks until woken).
#[cfg(feature = "async")]
#[test]
fn a_receiver_is_a_stream_that_wakes_its_task() {
    use futures_core::Stream;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let lp = thread_loop("rx-stream");
    let m = lp.event_loop().add(uid("meter"), Meter::default()).unwrap();
    let mut rx = m.watts().receiver().unwrap();
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    // Nothing yet: pending, with the waker registered.
    assert!(Pin::new(&mut rx).poll_next(&mut cx).is_pending());
    let sig = m.watts();
    let emitter = std::thread::spawn(move || {
        for v in 0..10 {
            sig.emit((v,));
        }
    });
    let mut got = Vec::new();
    let end = std::time::Instant::now() + DEADLINE;
    while got.len() < 10 {
        match Pin::new(&mut rx).poll_next(&mut cx) {
            Poll::Ready(Some((v,))) => got.push(v),
            Poll::Ready(None) => panic!("ended early"),
            Poll::Pending => {
                assert!(std::time::Instant::now() < end, "not woken: {got:?}");
                std::thread::park_timeout(DEADLINE);
            }
        }
    }
    emitter.join().unwrap();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    m.remove().unwrap();
    // The end of the signal ends the stream.
    loop {
        match Pin::new(&mut rx).poll_next(&mut cx) {
            Poll::Ready(None) => break,
            Poll::Ready(Some(v)) => panic!("unexpected {v:?}"),
            Poll::Pending => std::thread::park_timeout(DEADLINE),
        }
    }
}
