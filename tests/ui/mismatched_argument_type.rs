use signal_slot::prelude::*;

#[derive(EventLoopObject, Default)]
struct A {
    #[signal]
    number: Signal<(i64,)>,
}

#[derive(EventLoopObject, Default)]
struct B {}

#[slots]
impl B {
    fn on_text(&mut self, text: String) {
        let _ = text;
    }
}

fn main() {
    let lp = EventLoop::new("l");
    let a = lp.add("a", A::default()).unwrap();
    let b = lp.add("b", B::default()).unwrap();
    a.number().connect(&b.on_text()).unwrap();
}
