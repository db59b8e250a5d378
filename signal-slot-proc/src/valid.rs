//! Checks on the model; every problem becomes a spanned error, all reported.

use crate::ast::{plain_type, Object, Receiver, Slots};
use crate::attr::Errors;
use syn::{Type, TypePath};

/// Names `Handle<T>` itself uses, its own and those of the prelude's traits it
/// implements (`Clone`, and `ToOwned`, `Into`, `TryInto` through blanket
/// impls); a signal or slot of that name would be hidden behind them (review
/// helper-54: a slot `clone` compiled, and `h.clone()` was the handle's).
const RESERVED: &[&str] = &[
    "id",
    "is_alive",
    "remove",
    "destroyed",
    "raw",
    "__raw",
    "clone",
    "clone_from",
    "to_owned",
    "into",
    "try_into",
];

fn reserved(ident: &syn::Ident, what: &str, errors: &mut Errors) {
    if RESERVED.iter().any(|r| ident == r) {
        errors.push(syn::Error::new_spanned(
            ident,
            format!("`{ident}` cannot name a {what}: `Handle` has a method of that name"),
        ));
    }
}

pub(crate) fn object(o: &Object) -> syn::Result<()> {
    let mut errors = Errors::default();
    if !o.generics.params.is_empty() || o.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            o.generics,
            "generic event-loop objects are not supported",
        ));
    }
    for s in &o.signals {
        reserved(s.ident, "signal", &mut errors);
        if !looks_like_signal(s.ty) {
            errors.push(syn::Error::new_spanned(
                s.ty,
                "a `#[signal]` field must have type `Signal<(A, B, ...)>`",
            ));
        }
        if let Some(t) = &s.attr.topic {
            if let Some(why) = topic_problem(&t.value()) {
                errors.push(syn::Error::new_spanned(t, why));
            }
        }
    }
    errors.finish()
}

/// `Signal<...>` or `path::Signal<...>`; anything else is refused early with a
/// clearer message than the trait error it would become.
fn looks_like_signal(ty: &Type) -> bool {
    matches!(plain_type(ty), Type::Path(TypePath { qself: None, path })
        if path.segments.last().is_some_and(|s| s.ident == "Signal"))
}

pub(crate) fn slots(s: &Slots) -> syn::Result<()> {
    let mut errors = Errors::default();
    for p in &s.problems {
        errors.push(p.clone());
    }
    if let Some(t) = &s.trait_ {
        errors.push(syn::Error::new_spanned(
            t,
            "`#[slots]` goes on an inherent impl (`impl MyObject { ... }`), not a trait impl",
        ));
    }
    if !s.generics.params.is_empty() || s.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &s.generics,
            "generic event-loop objects are not supported",
        ));
    }
    match plain_type(&s.self_ty) {
        Type::Path(TypePath { qself: None, path })
            if path.segments.last().is_some_and(|l| l.arguments.is_empty()) => {}
        other => errors.push(syn::Error::new_spanned(
            other,
            "`#[slots]` needs the object's type by name, like `impl MyObject`",
        )),
    }
    for slot in &s.slots {
        let sig = &slot.sig;
        reserved(&slot.ident, "slot", &mut errors);
        if let Receiver::Other(span) = slot.receiver {
            errors.push(syn::Error::new(
                span,
                "a slot takes `&mut self` or `&self`; the loop keeps the object",
            ));
        }
        if !sig.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(
                &sig.generics,
                "a slot cannot be generic: its argument types are its signature",
            ));
        }
        if let Some(u) = &sig.unsafety {
            errors.push(syn::Error::new_spanned(u, "a slot cannot be `unsafe`"));
        }
        if let Some(v) = &sig.variadic {
            errors.push(syn::Error::new_spanned(v, "a slot cannot be variadic"));
        }
        for ty in &slot.params {
            match plain_type(ty) {
                Type::Reference(_) => errors.push(syn::Error::new_spanned(
                    ty,
                    "slot parameters must be owned values (they may cross threads and \
                     processes); only a last `&Meta` parameter may be a reference",
                )),
                Type::ImplTrait(_) => errors.push(syn::Error::new_spanned(
                    ty,
                    "a slot parameter needs a concrete type, not `impl Trait`",
                )),
                _ => {}
            }
        }
    }
    errors.finish()
}

/// The topic rules the macro can check without the object id (`{id}` is
/// filled in at `add`, which checks the rest).
fn topic_problem(t: &str) -> Option<String> {
    if t.is_empty() {
        return Some("a topic must not be empty".into());
    }
    if t.starts_with('/') || t.ends_with('/') || t.contains("//") {
        return Some("a topic has no empty levels (no leading, trailing or double `/`)".into());
    }
    if t.contains(['+', '#']) {
        return Some("`+` and `#` are wildcards: patterns may hold them, topics not".into());
    }
    None
}
