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
