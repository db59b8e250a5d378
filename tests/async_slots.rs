//! `async fn` slots (feature `async`): a task owns its object while it runs,
//! messages for that object wait, the rest of the loop goes on.
#![cfg(feature = "async")]

mod common;
use common::*;
use crossbeam_channel::{Receiver, Sender};
use signal_slot::prelude::*;
use signal_slot::ReplyError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Permits opened by another thread; `pass()` waits for one.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<(u32, Option<Waker>)>>);

impl Gate {
    fn open(&self) {
        let waker = {
            let mut s = self.0.lock().unwrap();
            s.0 += 1;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn pass(&self) -> Pass {
        Pass(self.clone())
    }
}

struct Pass(Gate);

impl Future for Pass {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = (self.0).0.lock().unwrap();
        if s.0 > 0 {
            s.0 -= 1;
            Poll::Ready(())
        } else {
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[derive(EventLoopObject)]
struct Worker {
    gate: Gate,
    tx: Sender<String>,
    done: u64,
}

impl Worker {
    fn new() -> (Self, Gate, Receiver<String>) {
        let gate = Gate::default();
        let (tx, rx) = crossbeam_channel::unbounded();
        let w = Worker {
            gate: gate.clone(),
            tx,
            done: 0,
        };
        (w, gate, rx)
    }
}

#[slots]
impl Worker {
    async fn work(&mut self, n: u64) {
        self.tx.send(format!("start {n}")).unwrap();
        self.gate.pass().await;
        self.done += 1;
        self.tx
            .send(format!("done {n} ({} done)", self.done))
            .unwrap();
    }

    async fn work_meta(&self, n: u64, meta: &Meta) {
        self.gate.pass().await;
        self.tx
            .send(format!("meta {n} from {}", meta.sender()))
            .unwrap();
    }

    async fn explode(&mut self) {
        self.gate.pass().await;
        panic!("boom");
    }

    fn note(&mut self, v: u64) {
        self.tx.send(format!("note {v}")).unwrap();
    }
}

/// Answers requests on the same loop as the worker.
#[derive(EventLoopObject, Default)]
struct Doubler {}

#[slots]
impl Doubler {
    fn double(&mut self, n: u64) -> u64 {
        n * 2
    }
}

#[derive(EventLoopObject, Default)]
struct Asker {
    #[signal]
    question: Signal<(u64,)>,
}

fn quiet(rx: &Receiver<String>) {
    assert_eq!(rx.recv_timeout(Duration::from_millis(50)).ok(), None);
}

#[test]
fn a_waiting_async_slot_blocks_only_its_object_and_its_messages_follow_in_order() {
    let lp = thread_loop("async");
    let (worker, gate, rx) = Worker::new();
    let worker = lp.event_loop().add(uid("worker"), worker).unwrap();
    let (sink, sink_rx) = Sink::new();
    let sink = lp.event_loop().add(uid("sink"), sink).unwrap();
    let doubler = lp
        .event_loop()
        .add(uid("doubler"), Doubler::default())
        .unwrap();
    let main = EventLoop::new(uid("async-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&doubler.double()).unwrap();

    worker.work().invoke((1,)).unwrap();
    assert_eq!(take(&rx, 1), ["start 1"]);
    // The worker waits on its gate; these wait behind it, in order.
    worker.note().invoke((7,)).unwrap();
    worker.work().invoke((2,)).unwrap();
    worker.note().invoke((8,)).unwrap();
    // Other objects of the loop keep receiving and answering.
    for i in 0..3 {
        sink.on_value().invoke((i,)).unwrap();
    }
    assert_eq!(take(&sink_rx, 3), ["value 0", "value 1", "value 2"]);
    let r = asker.question().request::<u64>((21,), DEADLINE).unwrap();
    assert_eq!(r.values().copied().collect::<Vec<_>>(), [42]);
    quiet(&rx);

    // Opened by another thread: the waker brings the task back to its loop.
    let opener = gate.clone();
    std::thread::spawn(move || opener.open()).join().unwrap();
    assert_eq!(take(&rx, 3), ["done 1 (1 done)", "note 7", "start 2"]);
    quiet(&rx);
    gate.open();
    assert_eq!(take(&rx, 2), ["done 2 (2 done)", "note 8"]);
    assert_eq!(lp.event_loop().stats().slot_panics, 0);
}

#[test]
fn direct_calls_to_a_busy_object_are_queued_behind_its_task() {
    let lp = thread_loop("async-direct");
    let (worker, gate, rx) = Worker::new();
    let worker = lp.event_loop().add(uid("worker"), worker).unwrap();
    let src = lp.event_loop().add(uid("src"), Source::default()).unwrap();
    src.value().connect(&worker.work()).unwrap();
    src.value().connect(&worker.note()).unwrap();
    src.emit_values().invoke((2,)).unwrap(); // direct calls on the loop
    assert_eq!(take(&rx, 1), ["start 0"]);
    quiet(&rx);
    gate.open();
    assert_eq!(take(&rx, 3), ["done 0 (1 done)", "note 0", "start 1"]);
    gate.open();
    assert_eq!(take(&rx, 2), ["done 1 (2 done)", "note 1"]);
}

#[test]
fn an_async_slot_gets_the_metadata_and_cannot_answer_a_request() {
    let lp = thread_loop("async-meta");
    let (worker, gate, rx) = Worker::new();
    let worker = lp.event_loop().add(uid("worker"), worker).unwrap();
    let main = EventLoop::new(uid("async-main"));
    let asker = main.add(uid("asker"), Asker::default()).unwrap();
    asker.question().connect(&worker.work_meta()).unwrap();
    gate.open();
    let r = asker.question().request::<()>((3,), DEADLINE).unwrap();
    assert!(r.values().next().is_none(), "{r:?}");
    assert!(
        matches!(r.failures()[0].error, ReplyError::NotAnswerable(_)),
        "{r:?}"
    );
    // The slot still ran, with the request's metadata.
    assert_eq!(take(&rx, 1), [format!("meta 3 from {}", asker.id())]);
}

#[test]
fn a_panicking_async_slot_is_counted_its_object_removed_and_the_loop_goes_on() {
    let lp = thread_loop("async-panic");
    let (worker, gate, rx) = Worker::new();
    let worker = lp.event_loop().add(uid("worker"), worker).unwrap();
    let (sink, sink_rx) = Sink::new();
    let sink = lp.event_loop().add(uid("sink"), sink).unwrap();
    worker.explode().invoke(()).unwrap();
    worker.note().invoke((1,)).unwrap(); // waits, then is dropped with the object
    gate.open();
    wait_until("the panic", || lp.event_loop().stats().slot_panics == 1);
    wait_until("the removal", || !worker.is_alive());
    sink.on_value().invoke((5,)).unwrap();
    assert_eq!(take(&sink_rx, 1), ["value 5"]);
    quiet(&rx);
}

#[test]
fn removing_a_busy_object_lets_its_task_finish_and_drops_what_waited() {
    let lp = thread_loop("async-remove");
    let (worker, gate, rx) = Worker::new();
    let worker = lp.event_loop().add(uid("worker"), worker).unwrap();
    worker.work().invoke((1,)).unwrap();
    assert_eq!(take(&rx, 1), ["start 1"]);
    worker.note().invoke((2,)).unwrap(); // waits, or finds the object gone
    worker.remove().unwrap();
    assert!(!worker.is_alive());
    gate.open();
    // The task runs to its end; then the object is dropped, the note with it.
    assert_eq!(take(&rx, 1), ["done 1 (1 done)"]);
    wait_until("the note dropped", || {
        lp.event_loop().stats().dropped_total() == 1
    });
    quiet(&rx);
}

#[test]
fn messages_waiting_for_a_busy_object_are_bounded_by_the_loop_capacity() {
    let lp = signal_slot::EventLoopThread::with_loop(
        EventLoop::builder(uid("async-bounded"))
            .capacity(4)
            .create(),
    );
    lp.start().unwrap();
    let (worker, gate, rx) = Worker::new();
    let worker = lp.event_loop().add(uid("worker"), worker).unwrap();
    worker.work().invoke((1,)).unwrap();
    assert_eq!(take(&rx, 1), ["start 1"]);
    for v in 0..20 {
        worker.note().invoke((v,)).unwrap();
    }
    // Four wait behind the task; the other sixteen are dropped and counted.
    wait_until("the overflow counted", || {
        lp.event_loop().stats().dropped_queue_full == 16
    });
    gate.open();
    assert_eq!(
        take(&rx, 5),
        ["done 1 (1 done)", "note 0", "note 1", "note 2", "note 3"]
    );
    quiet(&rx);
    assert_eq!(lp.event_loop().stats().dropped_queue_full, 16);
}

/// Waits on its gate in an async slot; `halt` stops its own loop.
#[derive(EventLoopObject)]
struct Halter {
    gate: Gate,
    lp: EventLoop,
    tx: Sender<u64>,
}

#[slots]
impl Halter {
    async fn wait(&mut self) {
        self.gate.pass().await;
    }
    fn halt(&mut self, v: u64) {
        let _ = self.tx.send(v);
        let _ = self.lp.stop();
    }
}

/// Calls that waited behind an object's task run when it finishes; when one
/// of them stops the loop, the rest are not run but dropped and counted
/// (review helper-42: they were thrown away uncounted).
#[test]
fn calls_left_waiting_behind_a_finished_task_at_a_stop_are_counted() {
    let lp = EventLoopThread::new(uid("halting"));
    let gate = Gate::default();
    let (tx, rx) = crossbeam_channel::unbounded();
    let h = lp
        .event_loop()
        .add(
            uid("halter"),
            Halter {
                gate: gate.clone(),
                lp: lp.event_loop().clone(),
                tx,
            },
        )
        .unwrap();
    lp.start().unwrap();
    h.wait().invoke(()).unwrap();
    for v in 1..=3 {
        h.halt().invoke((v,)).unwrap();
    }
    // All four are in (the last three wait behind the task) before it ends.
    wait_until("the calls wait behind the task", || {
        lp.event_loop().stats().queue_depth == 0 && lp.event_loop().stats().delivered >= 1
    });
    gate.open();
    lp.join().unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1]);
    let stats = lp.event_loop().stats();
    assert_eq!(stats.dropped_loop_stopped, 2, "{stats:?}");
}

/// Notes values; its async slot ends at its first poll.
#[derive(EventLoopObject)]
struct QuickWorker {
    tx: Sender<u64>,
}

#[slots]
impl QuickWorker {
    async fn work(&mut self) {}

    fn note(&mut self, v: u64) {
        let _ = self.tx.send(v);
    }
}

/// Starts `QuickWorker`'s task, then calls it while the task owns it.
#[derive(EventLoopObject, Default)]
struct Kicker {
    #[signal]
    later: Signal<()>,
    #[signal]
    start: Signal<()>,
    #[signal]
    value: Signal<(u64,)>,
}

#[slots]
impl Kicker {
    fn trigger(&mut self) {
        self.later.emit(());
    }
    fn kick(&mut self) {
        self.start.emit(()); // the worker's task starts: it owns the worker
        self.value.emit((1,)); // waits for the task
    }
    fn go(&mut self, v: u64) {
        self.value.emit((v,));
    }
    fn nop(&mut self) {}
}

/// Review helper-52: a call that waited for an object owned by a task went
/// to the loop's own queue, so once the task ended a later call from the
/// inbox ran first (the worker saw 2, then 1).
#[test]
fn a_call_that_waited_for_a_task_is_not_overtaken_by_a_later_one() {
    let lp = EventLoopThread::new(uid("async-order"));
    let (tx, rx) = crossbeam_channel::unbounded();
    let w = lp
        .event_loop()
        .add(uid("worker"), QuickWorker { tx })
        .unwrap();
    let k = lp
        .event_loop()
        .add(uid("kicker"), Kicker::default())
        .unwrap();
    k.later()
        .connect_with(
            &k.kick(),
            ConnectOptions::new().kind(ConnectionKind::Queued),
        )
        .unwrap();
    k.start().connect(&w.work()).unwrap();
    k.value().connect(&w.note()).unwrap();
    // One batch of the inbox (256 calls): the trigger and 255 no-ops; go(2)
    // comes in the next batch, after the task has ended.
    k.trigger().invoke(()).unwrap();
    for _ in 0..255 {
        k.nop().invoke(()).unwrap();
    }
    k.go().invoke((2,)).unwrap();
    lp.start().unwrap();
    let first = rx.recv_timeout(DEADLINE).unwrap();
    let second = rx.recv_timeout(DEADLINE).unwrap();
    assert_eq!([first, second], [1, 2], "emitted 1, then 2");
}

/// Calls itself from a slot (queued on the loop's own queue: it is busy).
#[derive(EventLoopObject)]
struct SelfCaller {
    tx: Sender<u64>,
    #[signal]
    me: Signal<(u64,)>,
}

#[slots]
impl SelfCaller {
    async fn work(&mut self) {}
    fn note(&mut self, v: u64) {
        let _ = self.tx.send(v);
    }
    fn poke(&mut self) {
        self.me.emit((1,));
    }
}

/// Starts a task on the worker, then calls it (with 2).
#[derive(EventLoopObject, Default)]
struct TaskStarter {
    #[signal]
    start: Signal<()>,
    #[signal]
    value: Signal<(u64,)>,
}

#[slots]
impl TaskStarter {
    fn kick(&mut self) {
        self.start.emit(()); // the worker's task starts: it owns the worker
        self.value.emit((2,)); // waits for the task
    }
}

/// Review helper-55: a call queued on the loop's own queue while its object
/// was busy in a slot was put behind a call made later, once a task owned the
/// object (the later one went to the task's backlog first).
#[test]
fn a_call_queued_while_busy_stays_ahead_of_calls_made_once_a_task_owns_the_object() {
    let lp = EventLoopThread::new(uid("busy-then-task"));
    let (tx, rx) = crossbeam_channel::unbounded();
    let w = lp
        .event_loop()
        .add(
            uid("worker"),
            SelfCaller {
                tx,
                me: Signal::new(),
            },
        )
        .unwrap();
    let k = lp
        .event_loop()
        .add(uid("starter"), TaskStarter::default())
        .unwrap();
    w.me().connect(&w.note()).unwrap();
    k.start().connect(&w.work()).unwrap();
    k.value().connect(&w.note()).unwrap();
    w.poke().invoke(()).unwrap(); // note(1): queued, the worker is busy in poke
    k.kick().invoke(()).unwrap(); // the task starts, then note(2)
    lp.start().unwrap();
    let first = rx.recv_timeout(DEADLINE).unwrap();
    let second = rx.recv_timeout(DEADLINE).unwrap();
    assert_eq!([first, second], [1, 2], "emitted 1, then 2");
}

/// Yields once: wakes itself and returns `Pending` (as `tokio::task::yield_now`).
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Yields until another object of its loop raises the flag.
#[derive(EventLoopObject)]
struct Spinner {
    flag: Arc<Mutex<bool>>,
    tx: Sender<&'static str>,
}

#[slots]
impl Spinner {
    async fn wait_for_flag(&mut self) {
        let _ = self.tx.send("spinning");
        let start = std::time::Instant::now();
        while !*self.flag.lock().unwrap() {
            if start.elapsed() > DEADLINE {
                let _ = self.tx.send("the flag never came");
                return;
            }
            YieldNow(false).await;
        }
        let _ = self.tx.send("flag seen");
    }
}

#[derive(EventLoopObject)]
struct FlagRaiser {
    flag: Arc<Mutex<bool>>,
}

#[slots]
impl FlagRaiser {
    fn raise(&mut self) {
        *self.flag.lock().unwrap() = true;
    }
}

#[test]
fn a_task_that_yields_lets_the_other_objects_of_its_loop_run() {
    // Its own wake-ups were polled again within the same round of the loop,
    // for ever: no other object, no timer, no inbox ran (review helper-62).
    let lp = thread_loop("yielding");
    let flag = Arc::new(Mutex::new(false));
    let (tx, rx) = crossbeam_channel::unbounded();
    let spinner = lp
        .event_loop()
        .add(
            uid("spinner"),
            Spinner {
                flag: flag.clone(),
                tx,
            },
        )
        .unwrap();
    let raiser = lp
        .event_loop()
        .add(uid("raiser"), FlagRaiser { flag })
        .unwrap();
    spinner.wait_for_flag().invoke(()).unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), "spinning");
    raiser.raise().invoke(()).unwrap();
    assert_eq!(rx.recv_timeout(DEADLINE * 2).unwrap(), "flag seen");
}
