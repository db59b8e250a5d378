//! Objects and slots written through `macro_rules!` (review helper-54): types
//! passed as `$t:ty` arrive wrapped in an invisible group, and the generated
//! code must not depend on the spans of the user's tokens.

mod common;
use common::{take, uid, Sink};
use signal_slot::prelude::*;
use std::borrow::Cow;

macro_rules! object_with_signal {
    ($name:ident, $t:ty) => {
        #[derive(EventLoopObject, Default)]
        struct $name {
            #[signal]
            value: $t,
        }
    };
}

object_with_signal!(Typed, Signal<(u64,)>);

macro_rules! slots_of {
    ($t:ty { $($body:tt)* }) => {
        #[slots]
        impl $t { $($body)* }
    };
}

#[derive(EventLoopObject, Default)]
struct Echoer {
    #[signal]
    said: Signal<(u64,)>,
}

slots_of!(Echoer {
    fn hear(&mut self, n: u64) {
        self.said.emit((n,));
    }
    fn hear_meta(&mut self, n: u64, _meta: &Meta) {
        self.said.emit((n + 1,));
    }
    fn name(&mut self) -> Cow<'static, str> {
        Cow::Borrowed("echoer")
    }
});

/// A slot's receiver written out (`self: &mut Self`) is a slot too.
#[derive(EventLoopObject, Default)]
struct Spelled {
    #[signal]
    said: Signal<(u64,)>,
}

#[slots]
impl Spelled {
    #[allow(clippy::needless_arbitrary_self_type)]
    fn hear(self: &mut Self, n: u64) {
        self.said.emit((n,));
    }
}

#[test]
fn a_receiver_written_out_is_a_slot() {
    let lp = EventLoopThread::new(uid("spelled"));
    let s = lp
        .event_loop()
        .add(uid("spelled"), Spelled::default())
        .unwrap();
    let (sink, rx) = Sink::new();
    let sink = lp.event_loop().add(uid("sink"), sink).unwrap();
    s.said().connect(&sink.on_value()).unwrap();
    lp.start().unwrap();
    s.hear().invoke((3,)).unwrap();
    assert_eq!(take(&rx, 1), ["value 3"]);
}

#[test]
fn objects_and_slots_written_by_macros_work() {
    let lp = EventLoopThread::new(uid("macros"));
    let typed = lp.event_loop().add(uid("typed"), Typed::default()).unwrap();
    let echoer = lp
        .event_loop()
        .add(uid("echoer"), Echoer::default())
        .unwrap();
    let (sink, rx) = Sink::new();
    let sink = lp.event_loop().add(uid("sink"), sink).unwrap();
    typed.value().connect(&echoer.hear()).unwrap();
    typed.value().connect(&echoer.hear_meta()).unwrap();
    echoer.said().connect(&sink.on_value()).unwrap();
    lp.start().unwrap();
    typed.value().emit((41,));
    let mut got = take(&rx, 2);
    got.sort();
    assert_eq!(got, ["value 41", "value 42"]);
}

#[derive(EventLoopObject, Default)]
struct Asker {
    #[signal]
    ask: Signal<()>,
}

/// A `'static` lifetime borrows nothing: such a reply answers.
#[test]
fn a_reply_with_a_static_lifetime_answers() {
    let lp = EventLoopThread::new(uid("cow"));
    let asker = lp.event_loop().add(uid("asker"), Asker::default()).unwrap();
    let echoer = lp
        .event_loop()
        .add(uid("echoer"), Echoer::default())
        .unwrap();
    asker.ask().connect(&echoer.name()).unwrap();
    lp.start().unwrap();
    let r = asker
        .ask()
        .request::<Cow<'static, str>>((), common::DEADLINE)
        .unwrap();
    assert_eq!(
        r.values().map(|v| v.as_ref()).collect::<Vec<_>>(),
        ["echoer"],
        "{r:?}"
    );
}
