#![doc = include_str!("../README.md")]

pub use signal_slot_core::*;
pub use signal_slot_proc::{slots, EventLoopObject};

/// Everything a typical user needs: `use signal_slot::prelude::*;`.
pub mod prelude {
    pub use signal_slot_core::{
        ConnectOptions, Connection, ConnectionKind, EventLoop, EventLoopObject, EventLoopProcess,
        EventLoopThread, Handle, Meta, ObjectId, Overflow, Signal, SignalRef, SlotRef, Timer,
    };
    pub use signal_slot_proc::{slots, EventLoopObject};
}

/// Used by `#[slots]` around the code of an `async fn` slot: that code with
/// the `async` feature, a compile error naming the feature without it.
#[cfg(feature = "async")]
#[doc(hidden)]
#[macro_export]
macro_rules! __async_slot {
    ($($code:tt)*) => {
        $($code)*
    };
}

/// Used by `#[slots]` around the code of an `async fn` slot: that code with
/// the `async` feature, a compile error naming the feature without it.
#[cfg(not(feature = "async"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __async_slot {
    ($($code:tt)*) => {
        ::core::compile_error!(
            "async slots need the `async` feature of signal-slot: \
             `signal-slot = { version = \"...\", features = [\"async\"] }`"
        )
    };
}
