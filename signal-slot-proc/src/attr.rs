//! The helper attributes: `#[signal]` on fields, `#[slot(...)]` on methods.

use proc_macro2::TokenStream;
use syn::{Attribute, Meta};

/// What `#[signal(...)]` says about a field.
pub(crate) struct SignalAttr {
    pub(crate) span: proc_macro2::Span,
    pub(crate) topic: Option<syn::LitStr>,
    pub(crate) retain: bool,
    pub(crate) skip_no_change: bool,
}

/// Reads `#[signal]` / `#[signal(topic = "...", retain, skip_no_change)]`;
/// `None` if the field has no `#[signal]`.
pub(crate) fn signal(attrs: &[Attribute]) -> syn::Result<Option<SignalAttr>> {
    let mut found: Option<SignalAttr> = None;
    let mut errors = Errors::default();
    for a in attrs.iter().filter(|a| a.path().is_ident("signal")) {
        let mut out = SignalAttr {
            span: syn::spanned::Spanned::span(a),
            topic: None,
            retain: false,
            skip_no_change: false,
        };
        match &a.meta {
            Meta::Path(_) => {}
            Meta::List(_) => {
                let parsed = a.parse_nested_meta(|m| {
                    if m.path.is_ident("topic") {
                        out.topic = Some(m.value()?.parse()?);
                        Ok(())
                    } else if m.path.is_ident("retain") {
                        out.retain = true;
                        Ok(())
                    } else if m.path.is_ident("skip_no_change") {
                        out.skip_no_change = true;
                        Ok(())
                    } else {
                        Err(m.error(
                            "unknown signal option; expected `topic = \"...\"`, `retain` or `skip_no_change`",
                        ))
                    }
                });
                if let Err(e) = parsed {
                    errors.push(e);
                }
            }
            Meta::NameValue(_) => errors.push(syn::Error::new_spanned(
                a,
                "expected `#[signal]` or `#[signal(topic = \"...\", retain, skip_no_change)]`",
            )),
        }
        if found.is_some() {
            errors.push(syn::Error::new_spanned(a, "duplicate `#[signal]`"));
        }
        found = Some(out);
    }
    errors.finish().map(|()| found)
}

/// Options of one slot method.
#[derive(Default)]
pub(crate) struct SlotAttr {
    pub(crate) skip: bool,
}

/// Reads and removes `#[slot(...)]` from a method (it is not a real attribute).
pub(crate) fn take_slot(attrs: &mut Vec<Attribute>) -> syn::Result<SlotAttr> {
    let mut out = SlotAttr::default();
    let mut errors = Errors::default();
    let mut kept = Vec::with_capacity(attrs.len());
    for a in attrs.drain(..) {
        if !a.path().is_ident("slot") {
            kept.push(a);
            continue;
        }
        let parsed = a.parse_nested_meta(|m| {
            if m.path.is_ident("skip") {
                out.skip = true;
                Ok(())
            } else {
                Err(m.error("unknown slot option; expected `skip`"))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    *attrs = kept;
    errors.finish().map(|()| out)
}

/// Errors when an attribute macro that takes no arguments got some.
pub(crate) fn no_args(args: &TokenStream, name: &str) -> syn::Result<()> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            args,
            format!("`#[{name}]` takes no arguments"),
        ))
    }
}

/// Collects errors so the user sees all of them at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
