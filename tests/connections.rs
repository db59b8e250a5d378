//! Connecting, emitting and disconnecting: what arrives, in what order, where.

mod common;
use common::*;
use signal_slot::prelude::*;
use signal_slot::{ConnectError, DisconnectError};

#[test]
fn queued_delivery_across_loops_keeps_emission_order() {
    let (src_loop, dst_loop) = (thread_loop("src"), thread_loop("dst"));
    let src = src_loop
        .event_loop()
        .add(uid("source"), Source::default())
        .unwrap();
    let (sink, rx) = Sink::new();
    let sink = dst_loop.event_loop().add(uid("sink"), sink).unwrap();
    src.value().connect(&sink.on_value()).unwrap();
    src.emit_values().invoke((1000,)).unwrap();
    let got = take(&rx, 1000);
    let want: Vec<String> = (0..1000).map(|i| format!("value {i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn emitting_from_a_plain_thread_and_before_exec_is_delivered() {
    let lp = EventLoopThread::new(uid("late-start"));
    let src = lp
        .event_loop()
        .add(uid("source"), Source::default())
        .unwrap();
    let (sink, rx) = Sink::new();
    let sink = lp.event_loop().add(uid("sink"), sink).unwrap();
    src.pair().connect(&sink.on_pair()).unwrap();
    // Before the loop runs: queued until it starts.
    src.pair().emit(("before".into(), 1));
    lp.start().unwrap();
    let s2 = src.clone();
    std::thread::spawn(move || s2.pair().emit(("from thread".into(), 2)))
        .join()
        .unwrap();
    assert_eq!(take(&rx, 2), ["pair before 1", "pair from thread 2"]);
}

/// Emits, then records that emit returned: the order tells inline from queued.
#[derive(EventLoopObject)]
struct Prober {
    #[signal]
    fired: Signal<()>,
    tx: crossbeam_channel::Sender<String>,
}

#[slots]
impl Prober {
    fn probe(&mut self) {
        self.fired.emit(());
        let _ = self.tx.send("emit returned".into());
    }
}

fn order_for(opts: ConnectOptions) -> Vec<String> {
    let lp = thread_loop("order");
    let (sink, rx) = Sink::new();
    let tx = sink.tx.clone();
    let prober = lp
        .event_loop()
        .add(
            uid("prober"),
            Prober {
                fired: Signal::new(),
                tx,
            },
        )
        .unwrap();
    let sink = lp.event_loop().add(uid("sink"), sink).unwrap();
    prober.fired().connect_with(&sink.on_tick(), opts).unwrap();
    prober.probe().invoke(()).unwrap();
    take(&rx, 2)
}

#[test]
fn auto_and_direct_on_the_same_loop_call_inline() {
    assert_eq!(order_for(ConnectOptions::new()), ["tick", "emit returned"]);
    assert_eq!(
        order_for(ConnectOptions::new().kind(ConnectionKind::Direct)),
        ["tick", "emit returned"]
    );
}

#[test]
fn queued_on_the_same_loop_runs_after_the_current_slot() {
    assert_eq!(
        order_for(ConnectOptions::new().kind(ConnectionKind::Queued)),
        ["emit returned", "tick"]
    );
}

#[test]
fn direct_connection_across_loops_is_refused() {
    let (l1, l2) = (EventLoop::new(uid("l1")), EventLoop::new(uid("l2")));
    let src = l1.add(uid("source"), Source::default()).unwrap();
    let (sink, _rx) = Sink::new();
    let sink = l2.add(uid("sink"), sink).unwrap();
    let err = src
        .tick()
        .connect_with(
            &sink.on_tick(),
            ConnectOptions::new().kind(ConnectionKind::Direct),
        )
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::DirectAcrossLoops { .. }),
        "{err}"
    );
}

#[test]
fn an_object_emitting_to_its_own_slot_is_queued_not_reentered() {
    #[derive(EventLoopObject)]
    struct Echo {
        #[signal]
        again: Signal<(u32,)>,
        tx: crossbeam_channel::Sender<String>,
    }
    #[slots]
    impl Echo {
        fn on_again(&mut self, n: u32) {
            let _ = self.tx.send(format!("enter {n}"));
            if n < 3 {
                self.again.emit((n + 1,));
            }
            let _ = self.tx.send(format!("leave {n}"));
        }
    }
    let lp = thread_loop("echo");
    let (tx, rx) = crossbeam_channel::unbounded();
    let e = lp
        .event_loop()
        .add(
            uid("echo"),
            Echo {
                again: Signal::new(),
                tx,
            },
        )
        .unwrap();
    e.again().connect(&e.on_again()).unwrap();
    e.on_again().invoke((1,)).unwrap();
    assert_eq!(
        take(&rx, 6),
        ["enter 1", "leave 1", "enter 2", "leave 2", "enter 3", "leave 3"]
    );
}

#[test]
fn duplicate_connect_is_refused_and_one_delivery_happens() {
    let Rig {
        lp: _lp,
        src,
        sink,
        rx,
    } = rig("dup");
    src.text().connect(&sink.on_text()).unwrap();
    let err = src
        .text()
        .connect_with(
            &sink.on_text(),
            ConnectOptions::new().kind(ConnectionKind::Queued),
        )
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::AlreadyConnected { .. }),
        "{err}"
    );
    src.text().emit(("once".into(),));
    src.text().emit(("end".into(),));
    assert_eq!(take(&rx, 2), ["text once", "text end"]);
}

#[test]
fn single_shot_delivers_exactly_one_emission() {
    let Rig {
        lp: _lp,
        src,
        sink,
        rx,
    } = rig("single");
    let c = src
        .value()
        .connect_with(&sink.on_value(), ConnectOptions::new().single_shot())
        .unwrap();
    src.text().connect(&sink.on_text()).unwrap();
    // Many threads race to emit; exactly one value gets through.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = src.clone();
            std::thread::spawn(move || (0..100).for_each(|i| s.value().emit((t * 1000 + i,))))
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    src.text().emit(("marker".into(),));
    let got = take(&rx, 2);
    assert!(got[0].starts_with("value "), "{got:?}");
    assert_eq!(got[1], "text marker");
    assert!(rx.try_recv().is_err());
    assert!(!c.is_connected());
    assert_eq!(src.value().receiver_count(), 0);
}

#[test]
fn disconnect_by_handle_by_pair_by_receiver_and_all() {
    let Rig { lp, src, sink, rx } = rig("disc");
    let (other, _orx) = Sink::new();
    let other = lp.event_loop().add(uid("other"), other).unwrap();

    let c = src.text().connect(&sink.on_text()).unwrap();
    assert!(c.is_connected());
    c.disconnect().unwrap();
    assert_eq!(c.disconnect(), Err(DisconnectError::NotConnected));

    src.text().connect(&sink.on_text()).unwrap();
    src.text().disconnect(&sink.on_text()).unwrap();
    assert_eq!(
        src.text().disconnect(&sink.on_text()),
        Err(DisconnectError::NotConnected)
    );

    src.text().connect(&sink.on_text()).unwrap();
    src.text().connect(&sink.on_text_meta()).unwrap();
    src.text().connect(&other.on_text()).unwrap();
    assert_eq!(src.text().disconnect_receiver(&sink), 2);
    assert_eq!(src.text().receiver_count(), 1);
    assert_eq!(src.text().disconnect_all(), 1);

    // Nothing is connected now: a marker through another signal arrives alone.
    src.text().emit(("lost".into(),));
    src.tick().connect(&sink.on_tick()).unwrap();
    src.tick().emit(());
    assert_eq!(take(&rx, 1), ["tick"]);
}

#[test]
fn signal_to_signal_forwarding_and_cycles_refused() {
    let lp = thread_loop("fwd");
    let a = lp.event_loop().add(uid("a"), Source::default()).unwrap();
    let b = lp.event_loop().add(uid("b"), Source::default()).unwrap();
    let (sink, rx) = Sink::new();
    let sink = lp.event_loop().add(uid("sink"), sink).unwrap();
    a.text().connect(&b.text()).unwrap();
    b.text().connect(&sink.on_text_meta()).unwrap();
    a.emit_text().invoke(("hop".into(),)).unwrap();
    let got = take(&rx, 1);
    assert_eq!(
        got[0],
        format!(
            "meta hop sender={} signal=text topic={}/text",
            b.id(),
            b.id()
        )
    );
    assert!(matches!(
        b.text().connect(&a.text()),
        Err(ConnectError::ForwardCycle(_))
    ));
    assert!(matches!(
        a.text().connect(&a.text()),
        Err(ConnectError::ForwardCycle(_))
    ));
}

#[test]
fn metadata_names_sender_signal_and_topic() {
    let Rig {
        lp: _lp,
        src,
        sink,
        rx,
    } = rig("meta");
    src.text().connect(&sink.on_text_meta()).unwrap();
    src.text().emit(("m".into(),));
    assert_eq!(
        take(&rx, 1),
        [format!(
            "meta m sender={} signal=text topic={}/text",
            src.id(),
            src.id()
        )]
    );
}

#[test]
fn object_id_is_known_inside_slots_even_without_signals() {
    let lp = thread_loop("who");
    let (sink, rx) = Sink::new();
    let id = uid("sink");
    let sink = lp.event_loop().add(&id, sink).unwrap();
    sink.whoami().invoke(()).unwrap();
    assert_eq!(take(&rx, 1), [format!("I am {id}")]);
}

#[test]
fn emit_with_no_connection_is_fine_and_try_emit_reports_unbound() {
    let src = Source::default();
    src.value.emit((1,));
    assert_eq!(
        src.value.try_emit((1,)),
        Err(signal_slot::EmitError::Unbound)
    );
    let lp = EventLoop::new(uid("noconn"));
    let h = lp.add(uid("source"), Source::default()).unwrap();
    h.value().emit((1,));
    assert_eq!(h.value().try_emit((2,)), Ok(()));
}

#[test]
fn a_loop_emitting_from_its_slots_sees_every_connection_change_at_once() {
    // Emissions from a slot of the receivers' own loop call them directly;
    // connecting, disconnecting and queued connections between two such
    // emissions take effect for the very next one.
    let Rig { lp, src, sink, rx } = rig("changes");
    let (other, orx) = Sink::new();
    let other = lp.event_loop().add(uid("other"), other).unwrap();

    let c = src.value().connect(&sink.on_value()).unwrap();
    src.emit_values().invoke((2,)).unwrap();
    assert_eq!(take(&rx, 2), ["value 0", "value 1"]);

    let o = src.value().connect(&other.on_value()).unwrap();
    src.emit_values().invoke((2,)).unwrap();
    assert_eq!(take(&rx, 2), ["value 0", "value 1"]);
    assert_eq!(take(&orx, 2), ["value 0", "value 1"]);

    c.disconnect().unwrap();
    src.emit_values().invoke((1,)).unwrap();
    assert_eq!(take(&orx, 1), ["value 0"]);

    o.disconnect().unwrap();
    src.value()
        .connect_with(
            &sink.on_value(),
            ConnectOptions::new().kind(ConnectionKind::Queued),
        )
        .unwrap();
    src.emit_values().invoke((3,)).unwrap();
    assert_eq!(take(&rx, 3), ["value 0", "value 1", "value 2"]);

    // A marker through another signal: nothing else arrived.
    src.tick().connect(&sink.on_tick()).unwrap();
    src.tick().connect(&other.on_tick()).unwrap();
    src.tick().emit(());
    assert_eq!(take(&rx, 1), ["tick"]);
    assert_eq!(take(&orx, 1), ["tick"]);
    assert_eq!(lp.event_loop().stats().dropped_total(), 0);
}

/// A slot that disconnects the connection it was handed, then records its call.
#[derive(EventLoopObject)]
struct Cutter {
    cut: std::sync::Arc<std::sync::Mutex<Option<signal_slot::Connection>>>,
    tx: crossbeam_channel::Sender<String>,
}

#[slots]
impl Cutter {
    fn on_value(&mut self, v: u64) {
        if let Some(c) = self.cut.lock().expect("cut").take() {
            c.disconnect().expect("disconnect during the emission");
        }
        let _ = self.tx.send(format!("cutter {v}"));
    }
}

/// Review helper-50: a connection disconnected by a slot called earlier in the
/// same emission was still called (the emission walked its snapshot).
#[test]
fn a_slot_disconnected_earlier_in_the_same_emission_is_not_called() {
    let lp = thread_loop("cut");
    let src = lp
        .event_loop()
        .add(uid("source"), Source::default())
        .unwrap();
    let cut = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (tx, rx) = crossbeam_channel::unbounded();
    let cutter = lp
        .event_loop()
        .add(
            uid("cutter"),
            Cutter {
                cut: cut.clone(),
                tx,
            },
        )
        .unwrap();
    let (sink, sink_rx) = Sink::new();
    let sink = lp.event_loop().add(uid("sink"), sink).unwrap();
    src.value().connect(&cutter.on_value()).unwrap();
    let later = src.value().connect(&sink.on_value()).unwrap();
    *cut.lock().unwrap() = Some(later.clone());
    // One emission (from the source's loop: direct calls, in connection order).
    src.emit_values().invoke((1,)).unwrap();
    assert_eq!(take(&rx, 1), ["cutter 0"]);
    // The second emission reaches the cutter only; the marker proves the
    // sink's loop (the same one) has run everything before it.
    src.emit_values().invoke((1,)).unwrap();
    assert_eq!(take(&rx, 1), ["cutter 0"]);
    assert!(!later.is_connected());
    assert!(
        sink_rx.try_recv().is_err(),
        "the sink was called after its connection was disconnected"
    );
}

/// Review helper-51: after a change to the list during an emission (here the
/// single-shot connection's own removal), a group further down the list lost
/// the emission (it was looked up by its members' ids, not its own).
#[test]
fn a_group_after_a_single_shot_connection_gets_the_emission() {
    let lp = thread_loop("single-then-group");
    let src = lp
        .event_loop()
        .add(uid("source"), Source::default())
        .unwrap();
    let (once, once_rx) = Sink::new();
    let (member, member_rx) = Sink::new();
    let once = lp.event_loop().add(uid("once"), once).unwrap();
    let member = lp.event_loop().add(uid("member"), member).unwrap();
    src.value()
        .connect_with(&once.on_value(), ConnectOptions::new().single_shot())
        .unwrap();
    src.value()
        .connect_with(&member.on_value(), ConnectOptions::new().group("g"))
        .unwrap();
    src.emit_values().invoke((2,)).unwrap();
    assert_eq!(take(&member_rx, 2), ["value 0", "value 1"]);
    assert_eq!(take(&once_rx, 1), ["value 0"]);
}
