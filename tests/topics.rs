//! Topic patterns, retained values and the late-joiner cache, in one process.
//!
//! Tests run in parallel in one process and subscriptions are process-wide, so
//! each test publishes on a signal name no other test uses.

mod common;

use common::{take, thread_loop, uid, DEADLINE};
use crossbeam_channel::{Receiver, Sender};
use signal_slot::prelude::*;
use signal_slot::{Headers, Message, SubscribeOptions};

#[derive(EventLoopObject, Default)]
struct Thermo {
    #[signal]
    celsius: Signal<(f64,)>,
}

#[derive(EventLoopObject, Default)]
struct Plant {
    #[signal(topic = "plant/{id}/pressure")]
    pressure: Signal<(u32,)>,
}

#[derive(EventLoopObject, Default)]
struct WetF {
    #[signal]
    humidity: Signal<(f64,)>,
}

#[derive(EventLoopObject, Default)]
struct WetS {
    #[signal]
    humidity: Signal<(String,)>,
}

#[derive(EventLoopObject, Default)]
struct Counter {
    #[signal(retain)]
    count: Signal<(u64,)>,
}

#[slots]
impl Counter {
    /// Emits the next `n` values from the loop thread (inline to receivers on
    /// this loop).
    fn run(&mut self, from: u64, n: u64) {
        for v in from..from + n {
            self.count.emit((v,));
        }
    }
}

/// A retained counter with a topic of its own (for the churn test).
#[derive(EventLoopObject, Default)]
struct Churner {
    #[signal(topic = "churn/{id}/count", retain)]
    count: Signal<(u64,)>,
}

#[slots]
impl Churner {
    /// Emits the next `n` values from the loop thread (inline to receivers on
    /// this loop).
    fn run(&mut self, from: u64, n: u64) {
        for v in from..from + n {
            self.count.emit((v,));
        }
    }
}

#[derive(EventLoopObject, Default)]
struct Level {
    #[signal(retain, skip_no_change)]
    level: Signal<(i32,)>,
}

#[derive(EventLoopObject, Default)]
struct Mode {
    #[signal(retain)]
    mode: Signal<(String,)>,
}

#[derive(EventLoopObject, Default)]
struct Wind {
    #[signal]
    speed: Signal<(u32,)>,
}

/// Records what it receives as strings.
#[derive(EventLoopObject)]
struct Rec {
    tx: Sender<String>,
}

fn rec() -> (Rec, Receiver<String>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (Rec { tx }, rx)
}

#[slots]
impl Rec {
    fn on_f64(&mut self, v: f64, meta: &Meta) {
        let _ = self.tx.send(format!("{} {v}", meta.topic()));
    }

    fn on_u32(&mut self, v: u32, meta: &Meta) {
        let _ = self.tx.send(format!("{} {v}", meta.topic()));
    }

    fn on_u64(&mut self, v: u64, meta: &Meta) {
        let tag = if meta.is_replay() { "replay" } else { "live" };
        let _ = self.tx.send(format!("{tag} {v}"));
    }

    fn on_i32(&mut self, v: i32, meta: &Meta) {
        let prev = match meta.previous::<(i32,)>() {
            Some(Ok((p,))) => p.to_string(),
            Some(Err(e)) => format!("error {e}"),
            None => "none".into(),
        };
        let _ = self.tx.send(format!("{v} previous {prev}"));
    }

    fn on_text(&mut self, s: String) {
        let _ = self.tx.send(format!("text {s}"));
    }

    fn on_message(&mut self, m: Message) {
        let line = match m.decode::<(f64,)>() {
            Ok((v,)) => format!("f64 {} {v}", m.sender()),
            Err(e) => match m.decode::<(String,)>() {
                Ok((s,)) => format!("string {} {s} (as f64: {e})", m.sender()),
                Err(e2) => format!("undecodable {e2}"),
            },
        };
        let _ = self.tx.send(line);
    }

    fn on_headers(&mut self, v: u32, meta: &Meta) {
        let h: Vec<String> = meta
            .headers()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = self.tx.send(format!("{v} [{}]", h.join(",")));
    }

    fn mark(&mut self, s: String) {
        let _ = self.tx.send(format!("mark {s}"));
    }
}

/// Everything a loop delivers to `rec` before a marker posted now.
fn drain_until_mark(h: &Handle<Rec>, rx: &Receiver<String>) -> Vec<String> {
    h.mark().invoke(("end".to_string(),)).unwrap();
    let mut got = Vec::new();
    loop {
        let m = rx.recv_timeout(DEADLINE).expect("marker");
        if m == "mark end" {
            return got;
        }
        got.push(m);
    }
}

#[test]
fn a_wildcard_subscription_reaches_existing_and_later_objects_until_unsubscribed() {
    let lp = thread_loop("wild");
    let (r, rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    let a = lp
        .event_loop()
        .add(uid("thermo-a"), Thermo::default())
        .unwrap();
    let sub = r.on_f64().subscribe("+/celsius").unwrap();
    assert_eq!(sub.local_matches(), 1);
    let b = lp
        .event_loop()
        .add(uid("thermo-b"), Thermo::default())
        .unwrap();
    a.celsius().emit((1.5,));
    b.celsius().emit((2.5,));
    let mut got = take(&rx, 2);
    got.sort();
    assert_eq!(
        got,
        vec![
            format!("{}/celsius 1.5", a.id()),
            format!("{}/celsius 2.5", b.id())
        ]
    );
    assert!(sub.is_active());
    assert!(sub.unsubscribe());
    assert!(!sub.is_active());
    a.celsius().emit((3.5,));
    assert_eq!(drain_until_mark(&r, &rx), Vec::<String>::new());
    assert_eq!(a.celsius().receiver_count(), 0);
}

#[test]
fn multi_level_wildcards_regexes_and_custom_topics() {
    let lp = thread_loop("plant");
    let (r, rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    let p1 = lp.event_loop().add("p1", Plant::default()).unwrap();
    let px = lp.event_loop().add("px", Plant::default()).unwrap();
    let all = r.on_u32().subscribe("plant/#").unwrap();
    let _digits = r.on_u32().subscribe("re:plant/p[0-9]+/pressure").unwrap();
    p1.pressure().emit((10,));
    px.pressure().emit((20,));
    let mut got = drain_until_mark(&r, &rx);
    got.sort();
    // p1 matches both patterns (two subscriptions, two calls), px only `plant/#`.
    assert_eq!(
        got,
        vec![
            "plant/p1/pressure 10",
            "plant/p1/pressure 10",
            "plant/px/pressure 20"
        ]
    );
    all.unsubscribe();
}

#[test]
fn bad_patterns_are_errors_with_position_and_reason() {
    let lp = thread_loop("bad");
    let (r, _rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    let e = r.on_u32().subscribe("plant/#/x").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("at byte 6"), "{text}");
    assert!(r.on_u32().subscribe("a+b").is_err());
    assert!(r.on_u32().subscribe("re:(").is_err());
    assert!(r.on_u32().subscribe("").is_err());
}

#[test]
fn a_type_mismatch_is_counted_and_logged_never_delivered_and_message_slots_take_all() {
    let lp = thread_loop("wet");
    let (r, rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    let f = lp.event_loop().add(uid("wet-f"), WetF::default()).unwrap();
    let s = lp.event_loop().add(uid("wet-s"), WetS::default()).unwrap();
    let typed = r.on_f64().subscribe("+/humidity").unwrap();
    assert_eq!((typed.local_matches(), typed.local_mismatches()), (1, 1));
    assert_eq!(lp.event_loop().stats().type_mismatches, 1);
    f.humidity().emit((0.5,));
    s.humidity().emit(("damp".to_string(),));
    assert_eq!(
        drain_until_mark(&r, &rx),
        vec![format!("{}/humidity 0.5", f.id())]
    );
    typed.unsubscribe();

    let dynamic = r.on_message().subscribe("+/humidity").unwrap();
    assert_eq!(dynamic.local_matches(), 2);
    f.humidity().emit((0.7,));
    s.humidity().emit(("wet".to_string(),));
    let got = drain_until_mark(&r, &rx);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], format!("f64 {} 0.7", f.id()));
    assert!(got[1].starts_with(&format!("string {} wet (as f64: ", s.id())));
    assert!(
        got[1].contains("carries (alloc::string::String,)"),
        "{}",
        got[1]
    );
}

#[test]
fn sender_filtering_takes_a_signal_name_from_some_senders_only() {
    let lp = thread_loop("wind");
    let (r, rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    let a = lp.event_loop().add(uid("wind-a"), Wind::default()).unwrap();
    let b = lp.event_loop().add(uid("wind-b"), Wind::default()).unwrap();
    let sub = r
        .on_headers()
        .subscribe_with(
            "+/speed",
            SubscribeOptions::new().from_senders([b.id().as_str()]),
        )
        .unwrap();
    assert_eq!(sub.local_matches(), 1);
    a.speed().emit((1,));
    b.speed()
        .emit_with_headers((2,), Headers::new().with("unit", "m/s").with("src", "mast"));
    assert_eq!(drain_until_mark(&r, &rx), vec!["2 [unit=m/s,src=mast]"]);
}

#[test]
fn a_late_subscriber_that_asks_gets_the_retained_value_first_then_live_ones() {
    let lp = thread_loop("retain");
    let (r, rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    let c = lp
        .event_loop()
        .add(uid("counter"), Counter::default())
        .unwrap();
    for v in 1..=3 {
        c.count().emit((v,));
    }
    let pattern = format!("{}/count", c.id());
    let plain = r.on_u64().subscribe(&pattern).unwrap();
    assert_eq!(drain_until_mark(&r, &rx), Vec::<String>::new());
    plain.unsubscribe();
    let _init = r
        .on_u64()
        .subscribe_with(&pattern, SubscribeOptions::new().initialize())
        .unwrap();
    c.count().emit((4,));
    assert_eq!(drain_until_mark(&r, &rx), vec!["replay 3", "live 4"]);
}

/// The values of `on_u64` lines ("replay 3", "live 4"), checked to grow.
fn increasing_values(round: usize, got: &[String]) -> Vec<u64> {
    let values: Vec<u64> = got
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "round {round}: not increasing: {got:?}"
    );
    values
}

#[test]
fn a_replay_never_arrives_after_a_newer_live_value() {
    // A publisher emits as fast as it can on its own loop while subscribers
    // join with `initialize`: each must see strictly increasing values.
    let lp = thread_loop("race");
    let c = lp
        .event_loop()
        .add(uid("counter"), Counter::default())
        .unwrap();
    let pattern = format!("{}/count", c.id());
    let sig = c.count();
    sig.emit((0,));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let emitter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut v = 0;
            // Emitted from this thread, queued to the subscriber's loop like
            // the replays: both pass the same inbox, so the replay comes first.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                v += 1;
                sig.emit((v,));
            }
            v
        })
    };
    let sub_loop = thread_loop("race-sub");
    for round in 0..20 {
        let (r, rx) = rec();
        let r = sub_loop.event_loop().add(uid("rec"), r).unwrap();
        let sub = r
            .on_u64()
            .subscribe_with(&pattern, SubscribeOptions::new().initialize())
            .unwrap();
        let got = take(&rx, 50);
        sub.unsubscribe();
        assert!(got[0].starts_with("replay"), "round {round}: {got:?}");
        increasing_values(round, &got);
        r.remove().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    emitter.join().unwrap();
}

#[test]
fn a_replay_never_overtakes_a_live_value_delivered_inline() {
    // Publisher and subscriber share a loop: live values are inline calls, the
    // replay is queued; the connection's gate drops a replay that is older.
    let lp = thread_loop("inline");
    let c = lp
        .event_loop()
        .add(uid("counter"), Counter::default())
        .unwrap();
    let pattern = format!("{}/count", c.id());
    c.run().invoke((0, 1)).unwrap();
    let mut next = 1;
    for round in 0..20 {
        let (r, rx) = rec();
        let r = lp.event_loop().add(uid("rec"), r).unwrap();
        c.run().invoke((next, 500)).unwrap();
        let sub = r
            .on_u64()
            .subscribe_with(&pattern, SubscribeOptions::new().initialize())
            .unwrap();
        c.run().invoke((next + 500, 500)).unwrap();
        next += 1000;
        let got = drain_until_mark(&r, &rx);
        sub.unsubscribe();
        let values = increasing_values(round, &got);
        assert!(!values.is_empty(), "round {round}: nothing");
        assert_eq!(*values.last().unwrap(), next - 1, "round {round}");
        r.remove().unwrap();
    }
}

#[test]
fn a_live_publisher_keeps_its_order_while_other_publishers_come_and_go() {
    // Publishers added and removed (each forgets its gate state) while a live
    // one emits inline on the subscriber's loop, its replay queued: the live
    // one's values still only grow, and a late subscriber still gets its
    // retained value, and none of the removed ones'.
    const GONE: u64 = 1 << 40;
    let lp = thread_loop("churn");
    let live = lp
        .event_loop()
        .add(uid("churn-live"), Churner::default())
        .unwrap();
    live.run().invoke((0, 1)).unwrap();
    let (r, rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    live.run().invoke((1, 500)).unwrap();
    let init = SubscribeOptions::new().initialize();
    let sub = r
        .on_u64()
        .subscribe_with("churn/+/count", init.clone())
        .unwrap();
    let mut next = 501;
    for round in 0..100 {
        let gone = lp
            .event_loop()
            .add(uid("churn-gone"), Churner::default())
            .unwrap();
        gone.count().emit((GONE + round,));
        live.run().invoke((next, 20)).unwrap();
        next += 20;
        gone.remove().unwrap();
    }
    let got = drain_until_mark(&r, &rx);
    sub.unsubscribe();
    let (from_gone, from_live): (Vec<String>, Vec<String>) = got
        .into_iter()
        .partition(|l| l.split(' ').nth(1).unwrap().parse::<u64>().unwrap() >= GONE);
    let values = increasing_values(0, &from_live);
    assert_eq!(values.last(), Some(&(next - 1)));
    increasing_values(1, &from_gone);
    let late = r.on_u64().subscribe_with("churn/+/count", init).unwrap();
    assert_eq!(late.local_matches(), 1);
    assert_eq!(
        drain_until_mark(&r, &rx),
        vec![format!("replay {}", next - 1)]
    );
    late.unsubscribe();
}

#[test]
fn skip_no_change_drops_equal_values_and_meta_carries_the_previous_one() {
    let lp = thread_loop("level");
    let (r, rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    let l = lp.event_loop().add(uid("level"), Level::default()).unwrap();
    l.level().connect(&r.on_i32()).unwrap();
    for v in [1, 1, 2, 2, 2, 1] {
        l.level().emit((v,));
    }
    assert_eq!(
        drain_until_mark(&r, &rx),
        vec!["1 previous none", "2 previous 1", "1 previous 2"]
    );
}

#[test]
fn a_retained_value_disappears_with_its_publisher() {
    let lp = thread_loop("mode");
    let (r, rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    let m = lp.event_loop().add(uid("mode"), Mode::default()).unwrap();
    m.mode().emit(("auto".to_string(),));
    let pattern = format!("{}/mode", m.id());
    let first = r
        .on_text()
        .subscribe_with(&pattern, SubscribeOptions::new().initialize())
        .unwrap();
    assert_eq!(drain_until_mark(&r, &rx), vec!["text auto"]);
    first.unsubscribe();
    m.remove().unwrap();
    let again = lp
        .event_loop()
        .add(m.id().as_str(), Mode::default())
        .unwrap();
    let second = r
        .on_text()
        .subscribe_with(&pattern, SubscribeOptions::new().initialize())
        .unwrap();
    assert_eq!(second.local_matches(), 1);
    assert_eq!(drain_until_mark(&r, &rx), Vec::<String>::new());
    again.mode().emit(("manual".to_string(),));
    assert_eq!(drain_until_mark(&r, &rx), vec!["text manual"]);
}

#[test]
fn removing_the_subscriber_ends_its_subscriptions() {
    let lp = thread_loop("gone");
    let (r, _rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    let t = lp.event_loop().add(uid("wind"), Wind::default()).unwrap();
    let sub = r.on_u32().subscribe(&format!("{}/speed", t.id())).unwrap();
    assert_eq!(t.speed().receiver_count(), 1);
    r.remove().unwrap();
    assert!(!sub.is_active());
    assert_eq!(t.speed().receiver_count(), 0);
}

/// Review helper-50: an object added while a matching subscription ended
/// could keep a connection of it (the attach ran outside the directory's
/// lock, after the unsubscribe had looked at the object's signals).
#[test]
fn ending_a_subscription_while_objects_are_added_leaves_no_connection() {
    let lp = thread_loop("race");
    let (r, _rx) = rec();
    let r = lp.event_loop().add(uid("rec"), r).unwrap();
    let prefix = uid("racer");
    let mut leaked = 0;
    for run in 0..20 {
        let adder = {
            let lp = lp.event_loop().clone();
            let prefix = prefix.clone();
            std::thread::spawn(move || {
                (0..200)
                    .map(|i| {
                        lp.add(format!("{prefix}-{run}-{i}"), Wind::default())
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        };
        // Only this test's objects (tests share the directory).
        let pattern = format!("re:{prefix}-{run}-[0-9]+/speed");
        while !adder.is_finished() {
            r.on_u32().subscribe(&pattern).unwrap().unsubscribe();
        }
        let winds = adder.join().unwrap();
        leaked += winds
            .iter()
            .map(|w| w.speed().receiver_count())
            .sum::<usize>();
        for w in winds {
            w.remove().unwrap();
        }
    }
    assert_eq!(leaked, 0, "connections of ended subscriptions");
}
