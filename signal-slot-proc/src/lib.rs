//! Macros of signal-slot: `#[derive(EventLoopObject)]` and `#[slots]`.
//!
//! Each macro parses its input into a small model ([`ast`]), reads the helper
//! attributes ([`attr`]), checks the model ([`valid`], every error collected with
//! the span of the user's code), then generates code ([`expand`]) that reaches the
//! runtime only through `::signal_slot` and its hidden `__private` module.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput, ItemImpl};

/// Makes a struct an object that can live on an event loop.
///
/// Fields marked `#[signal]` must have type `Signal<(A, B, ...)>`; each gets a
/// typed accessor on `Handle<Self>` with the field's name. Generic structs are
/// not supported.
///
/// ```
/// use signal_slot::prelude::*;
///
/// #[derive(EventLoopObject, Default)]
/// struct Sensor {
///     #[signal]
///     reading: Signal<(String, f64)>,
///     samples: u64,
/// }
/// ```
#[proc_macro_derive(EventLoopObject, attributes(signal))]
pub fn derive_event_loop_object(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    ast::Object::from_syn(&input)
        .and_then(|object| valid::object(&object).map(|()| object))
        .map(|object| expand::object(&object))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Turns the methods of an inherent impl into slots.
///
/// Every method taking `&mut self` or `&self` becomes a slot reachable as
/// `handle.method()`, typed by the tuple of its parameters. A last parameter of
/// type `&Meta` receives the emission's metadata and is not part of the tuple.
/// Parameters must be owned values (they may cross threads and processes).
/// Mark a method `#[slot(skip)]` to keep it a plain method.
///
/// With the facade's `async` feature a slot may be an `async fn`: each call
/// runs as a task that owns the object until it returns, while the loop runs
/// its other objects; messages for the object wait until then, in order. An
/// async slot answers no request. Without the feature it is a compile error.
///
/// ```
/// use signal_slot::prelude::*;
///
/// #[derive(EventLoopObject, Default)]
/// struct Robot {
///     position: (f64, f64),
/// }
///
/// #[slots]
/// impl Robot {
///     fn move_to(&mut self, x: f64, y: f64) {
///         self.position = (x, y);
///     }
///     fn log(&mut self, line: String, meta: &Meta) {
///         println!("{}: {line}", meta.sender());
///     }
///     #[slot(skip)]
///     fn distance(&self) -> f64 {
///         self.position.0.hypot(self.position.1)
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn slots(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let mut item = parse_macro_input!(input as ItemImpl);
    let result = attr::no_args(&args, "slots").and_then(|()| {
        let model = ast::Slots::from_syn(&mut item)?;
        valid::slots(&model)?;
        Ok(expand::slots(&model, &item))
    });
    match result {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            // Keep the user's impl so one mistake does not cascade into others.
            let mut out = e.into_compile_error();
            out.extend(quote::quote!(#item));
            out.into()
        }
    }
}
