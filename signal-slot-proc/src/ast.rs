//! The model the macros work on, read from syn's syntax tree.

use crate::attr::{self, Errors};
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, FnArg, Ident, ImplItem, ItemImpl, Type, Visibility};

/// A struct deriving `EventLoopObject`.
pub(crate) struct Object<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) generics: &'a syn::Generics,
    pub(crate) signals: Vec<SignalField<'a>>,
}

pub(crate) struct SignalField<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) vis: &'a Visibility,
    pub(crate) attr: attr::SignalAttr,
}

impl<'a> Object<'a> {
    pub(crate) fn from_syn(input: &'a DeriveInput) -> syn::Result<Self> {
        let fields = match &input.data {
            Data::Struct(s) => &s.fields,
            Data::Enum(e) => {
                return Err(syn::Error::new_spanned(
                    e.enum_token,
                    "`EventLoopObject` can only be derived for structs",
                ))
            }
            Data::Union(u) => {
                return Err(syn::Error::new_spanned(
                    u.union_token,
                    "`EventLoopObject` can only be derived for structs",
                ))
            }
        };
        let mut errors = Errors::default();
        let mut signals = Vec::new();
        for field in fields.iter() {
            match attr::signal(&field.attrs) {
                Ok(Some(attr)) => match (&field.ident, fields) {
                    (Some(ident), Fields::Named(_)) => signals.push(SignalField {
                        ident,
                        ty: &field.ty,
                        vis: &field.vis,
                        attr,
                    }),
                    (_, _) => errors.push(syn::Error::new(
                        attr.span,
                        "`#[signal]` needs a named field: the name is the signal's name",
                    )),
                },
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        errors.finish()?;
        Ok(Self {
            ident: &input.ident,
            vis: &input.vis,
            generics: &input.generics,
            signals,
        })
    }
}

/// A `#[slots]` impl block.
pub(crate) struct Slots {
    pub(crate) self_ty: Type,
    pub(crate) generics: syn::Generics,
    pub(crate) trait_: Option<syn::Path>,
    pub(crate) slots: Vec<Slot>,
    /// Problems found while reading methods, reported by `valid`.
    pub(crate) problems: Vec<syn::Error>,
}

pub(crate) struct Slot {
    pub(crate) ident: Ident,
    pub(crate) vis: Visibility,
    /// Types of the parameters that form the argument tuple.
    pub(crate) params: Vec<Type>,
    /// The last parameter is `&Meta`.
    pub(crate) wants_meta: bool,
    pub(crate) receiver: Receiver,
    pub(crate) sig: syn::Signature,
}

#[derive(Clone, Copy)]
pub(crate) enum Receiver {
    /// `&mut self` or `&self`.
    Borrowed,
    /// `self`, `mut self`, `self: Box<Self>`...
    Other(Span),
}

impl Slots {
    /// Reads the impl, removing `#[slot(...)]` attributes from it.
    pub(crate) fn from_syn(item: &mut ItemImpl) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let mut slots = Vec::new();
        for impl_item in &mut item.items {
            let ImplItem::Fn(method) = impl_item else {
                continue;
            };
            let options = match attr::take_slot(&mut method.attrs) {
                Ok(o) => o,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let Some(first) = method.sig.inputs.first() else {
                continue;
            };
            let FnArg::Receiver(r) = first else {
                continue; // an associated function, not a slot
            };
            if options.skip {
                continue;
            }
            // `&self`, `&mut self`, or written out: `self: &Self`,
            // `self: &mut Self` (review helper-54: those were refused).
            let written_out = || {
                matches!(plain_type(&r.ty), Type::Reference(t)
                    if matches!(plain_type(&t.elem), Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self")))
            };
            let receiver = if (r.reference.is_some() && r.colon_token.is_none()) || written_out() {
                Receiver::Borrowed
            } else {
                Receiver::Other(r.span())
            };
            let mut params: Vec<Type> = method
                .sig
                .inputs
                .iter()
                .skip(1)
                .filter_map(|a| match a {
                    FnArg::Typed(t) => Some((*t.ty).clone()),
                    FnArg::Receiver(_) => None,
                })
                .collect();
            let wants_meta = params.last().is_some_and(is_meta_ref);
            if wants_meta {
                params.pop();
            }
            slots.push(Slot {
                ident: method.sig.ident.clone(),
                vis: method.vis.clone(),
                params,
                wants_meta,
                receiver,
                sig: method.sig.clone(),
            });
        }
        errors.finish()?;
        Ok(Self {
            self_ty: (*item.self_ty).clone(),
            generics: item.generics.clone(),
            trait_: item.trait_.as_ref().map(|(_, p, _)| p.clone()),
            slots,
            problems: Vec::new(),
        })
    }
}

/// `ty` without the invisible group a `macro_rules!` `$t:ty` wraps a type
/// in (or parentheses): the checks below look at the type itself (review
/// helper-54: `Signal<..>` passed as `$t:ty` was refused, `&Meta` taken for
/// an argument).
pub(crate) fn plain_type(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => plain_type(&g.elem),
        Type::Paren(p) => plain_type(&p.elem),
        other => other,
    }
}

/// `&Meta` or `&path::to::Meta` (not `&mut`).
fn is_meta_ref(ty: &Type) -> bool {
    match plain_type(ty) {
        Type::Reference(r) if r.mutability.is_none() => match plain_type(&r.elem) {
            Type::Path(p) => p
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "Meta" && s.arguments.is_empty()),
            _ => false,
        },
        _ => false,
    }
}

/// Names a pattern binding for generated code, ignoring the user's pattern.
pub(crate) fn arg_ident(i: usize) -> Ident {
    Ident::new(&format!("__arg{i}"), Span::call_site())
}
