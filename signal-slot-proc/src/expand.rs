//! Code generation. Generated code names the runtime only as `::signal_slot`.

use crate::ast::{arg_ident, Object, Slots};
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemImpl, Type, Visibility};

/// The generated type `Handle<T>` derefs to.
fn proxy_ident(object: &Ident) -> Ident {
    format_ident!("__SignalSlot_{}", object)
}

/// Private items stay reachable within the crate; the rest keep their visibility.
fn accessor_vis(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Inherited => quote!(pub(crate)),
        v => quote!(#v),
    }
}

/// A span that points at the user's code (for errors) but resolves names as
/// the macro's other output does: generated locals (`binder`, `self`,
/// `__this`, `__meta`) are declared in one piece of output and used in
/// another, which inside a `macro_rules!` expansion carry different hygiene
/// unless both resolve at the call site (review helper-54: such objects and
/// slots did not compile).
fn at(span: proc_macro2::Span) -> proc_macro2::Span {
    span.resolved_at(proc_macro2::Span::call_site())
}

pub(crate) fn object(o: &Object) -> TokenStream {
    let ident = o.ident;
    let vis = o.vis;
    let proxy = proxy_ident(ident);
    let accessors = o.signals.iter().enumerate().map(|(i, s)| {
        let name = s.ident;
        let ty = s.ty;
        let avis = accessor_vis(s.vis);
        let doc = format!("The `{name}` signal of this object.");
        quote_spanned! {at(ty.span())=>
            #[doc = #doc]
            #avis fn #name(&self) -> ::signal_slot::SignalRef<
                <#ty as ::signal_slot::__private::SignalField>::Args
            > {
                self.raw.__signal(#i)
            }
        }
    });
    let binds = o.signals.iter().map(|s| {
        let name = s.ident;
        let lit = name.to_string();
        let a = &s.attr;
        if a.topic.is_none() && !a.retain && !a.skip_no_change {
            return quote_spanned! {at(s.ty.span())=> binder.bind(&mut self.#name, #lit); };
        }
        let topic = match &a.topic {
            Some(t) => quote!(::core::option::Option::Some(#t)),
            None => quote!(::core::option::Option::None),
        };
        let (retain, skip) = (a.retain, a.skip_no_change);
        quote_spanned! {at(s.ty.span())=>
            binder.bind_with(&mut self.#name, #lit, ::signal_slot::__private::SignalOptions {
                topic: #topic,
                retain: #retain,
                skip_no_change: #skip,
            });
        }
    });
    let object_id = match o.signals.first() {
        Some(first) => {
            let name = first.ident;
            quote! {
                ::signal_slot::__private::SignalField::bound_owner(&self.#name)
                    .unwrap_or_else(::signal_slot::__private::current_object_id)
            }
        }
        None => quote!(::signal_slot::__private::current_object_id()),
    };
    let proxy_doc = format!("Typed signal and slot accessors of a `Handle<{ident}>`.");
    quote! {
        #[doc = #proxy_doc]
        #[allow(non_camel_case_types)]
        #vis struct #proxy {
            raw: ::signal_slot::__private::RawHandle,
        }

        impl ::core::convert::From<::signal_slot::__private::RawHandle> for #proxy {
            fn from(raw: ::signal_slot::__private::RawHandle) -> Self {
                Self { raw }
            }
        }

        #[allow(dead_code)]
        impl #proxy {
            #[doc(hidden)]
            pub fn __raw(&self) -> &::signal_slot::__private::RawHandle {
                &self.raw
            }
            #(#accessors)*
        }

        impl ::signal_slot::EventLoopObject for #ident {
            type __Proxy = #proxy;

            fn __slot_table() -> &'static [::signal_slot::__private::SlotEntry] {
                #[allow(unused_imports)]
                use ::signal_slot::__private::{ViaNoSlots as _, ViaSlots as _};
                (&&::signal_slot::__private::SlotsProbe::<Self>::NEW).__slot_table()
            }

            fn __bind_signals(&mut self, binder: &mut ::signal_slot::__private::SignalBinder) {
                #(#binds)*
            }

            fn object_id(&self) -> ::signal_slot::ObjectId {
                #object_id
            }
        }
    }
}

/// The proxy type for `path::to::Object`: `path::to::__SignalSlot_Object`.
fn proxy_path(self_ty: &Type) -> TokenStream {
    match crate::ast::plain_type(self_ty) {
        Type::Path(p) => {
            let mut path = p.path.clone();
            if let Some(last) = path.segments.last_mut() {
                last.ident = proxy_ident(&last.ident);
            }
            quote!(#path)
        }
        other => quote!(#other),
    }
}

/// The hidden associated function a request runs a slot through.
fn reply_ident(slot: &Ident) -> Ident {
    format_ident!("__signal_slot_reply_{}", slot)
}

/// The body of a reply thunk after the arguments are bound: runs the slot and
/// wraps what it returned. A return type that borrows (`&T`, a lifetime) or is
/// opaque (`impl Trait`) can never answer: the slot runs and the requester is
/// told it cannot answer. Any other type answers if it is `Serialize + Send +
/// 'static` (decided by autoref specialization on the value).
fn reply_body(slot: &crate::ast::Slot, args: &[Ident]) -> TokenStream {
    let name = &slot.ident;
    let call = if slot.wants_meta {
        quote! {
            let __meta = match __meta {
                ::core::option::Option::Some(m) => m,
                ::core::option::Option::None => ::signal_slot::__private::empty_meta(),
            };
            __this.#name(#(#args,)* __meta)
        }
    } else {
        quote!(__this.#name(#(#args),*))
    };
    match &slot.sig.output {
        syn::ReturnType::Type(_, ty) if !can_answer(ty) => {
            let shown = quote!(#ty).to_string();
            quote! {
                let _ = { #call };
                ::core::option::Option::Some(
                    ::signal_slot::__private::ReplyValue::unanswerable(#shown),
                )
            }
        }
        _ => quote! {
            let __ret = { #call };
            #[allow(unused_imports)]
            use ::signal_slot::__private::{ViaNoReply as _, ViaReply as _};
            ::core::option::Option::Some(
                (&&::signal_slot::__private::ReplyProbe::new(__ret)).__reply(),
            )
        },
    }
}

/// False for a type that borrows or is opaque (see [`reply_body`]). A
/// `'static` lifetime borrows nothing (`Cow<'static, str>` answers; review
/// helper-54).
fn can_answer(ty: &Type) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        let mut tokens = tokens.into_iter();
        while let Some(t) = tokens.next() {
            let ok = match t {
                proc_macro2::TokenTree::Punct(p) if p.as_char() == '\'' => matches!(
                    tokens.next(),
                    Some(proc_macro2::TokenTree::Ident(i)) if i == "static"
                ),
                proc_macro2::TokenTree::Punct(p) => p.as_char() != '&',
                proc_macro2::TokenTree::Ident(i) => i != "impl",
                proc_macro2::TokenTree::Group(g) => scan(g.stream()),
                proc_macro2::TokenTree::Literal(_) => true,
            };
            if !ok {
                return false;
            }
        }
        true
    }
    scan(quote!(#ty))
}

/// The thunk of an `async fn` slot: registers a task that takes the object out
/// of its cell, awaits the slot and gives the object back (see
/// `__private::spawn_slot_task`). Wrapped in `__async_slot!`, which is a
/// `compile_error!` unless the facade's `async` feature is on.
fn async_thunk(
    slot: &crate::ast::Slot,
    thunk: &Ident,
    tuple: &TokenStream,
    args: &[Ident],
    span: proc_macro2::Span,
) -> TokenStream {
    let name = &slot.ident;
    let lit = name.to_string();
    let (own_meta, call) = if slot.wants_meta {
        (
            quote! {
                let __meta: ::signal_slot::Meta = ::core::clone::Clone::clone(match __meta {
                    ::core::option::Option::Some(m) => m,
                    ::core::option::Option::None => ::signal_slot::__private::empty_meta(),
                });
            },
            quote!(__this.#name(#(#args,)* &__meta).await),
        )
    } else {
        (
            quote!(let _ = __meta;),
            quote!(__this.#name(#(#args),*).await),
        )
    };
    let body = quote_spanned! {span=>
        ::signal_slot::__async_slot! {
            ::signal_slot::__private::spawn_slot_task(
                #lit,
                move |__obj: ::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send>|
                      -> ::signal_slot::__private::SlotFuture {
                    ::std::boxed::Box::pin(async move {
                        #[allow(unused_mut)]
                        let mut __this: ::std::boxed::Box<Self> = match __obj.downcast::<Self>() {
                            ::core::result::Result::Ok(this) => this,
                            ::core::result::Result::Err(other) => return other,
                        };
                        let _ = #call;
                        __this as ::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send>
                    })
                },
            )
        }
    };
    quote! {
        #[doc(hidden)]
        fn #thunk(
            __obj: &mut dyn ::core::any::Any,
            __args: #tuple,
            __meta: ::core::option::Option<&::signal_slot::Meta>,
        ) {
            if !__obj.is::<Self>() {
                return;
            }
            let (#(#args,)*) = __args;
            #own_meta
            #body
        }
    }
}

/// The hidden associated function a slot is called through.
fn thunk_ident(slot: &Ident) -> Ident {
    format_ident!("__signal_slot_thunk_{}", slot)
}

pub(crate) fn slots(model: &Slots, item: &ItemImpl) -> TokenStream {
    let self_ty = &model.self_ty;
    let proxy = proxy_path(self_ty);
    let mut thunks = Vec::new();
    let mut accessors = Vec::new();
    let mut entries = Vec::new();
    for (index, slot) in model.slots.iter().enumerate() {
        let name = &slot.ident;
        let lit = name.to_string();
        let thunk = thunk_ident(name);
        let avis = accessor_vis(&slot.vis);
        let types = &slot.params;
        let args: Vec<Ident> = (0..types.len()).map(arg_ident).collect();
        let tuple = quote!((#(#types,)*));
        let wants_meta = slot.wants_meta;
        let call = if wants_meta {
            quote! {
                let __meta = match __meta {
                    ::core::option::Option::Some(m) => m,
                    ::core::option::Option::None => ::signal_slot::__private::empty_meta(),
                };
                let _ = __this.#name(#(#args,)* __meta);
            }
        } else {
            quote!(let _ = __this.#name(#(#args),*);)
        };
        let span = at(slot.sig.span());
        if let Some(asyncness) = &slot.sig.asyncness {
            thunks.push(async_thunk(
                slot,
                &thunk,
                &tuple,
                &args,
                at(asyncness.span()),
            ));
        } else {
            thunks.push(quote_spanned! {span=>
                #[doc(hidden)]
                #[inline]
                fn #thunk(
                    __obj: &mut dyn ::core::any::Any,
                    __args: #tuple,
                    __meta: ::core::option::Option<&::signal_slot::Meta>,
                ) {
                    let _ = &__meta;
                    if let ::core::option::Option::Some(__this) = __obj.downcast_mut::<Self>() {
                        let (#(#args,)*) = __args;
                        #call
                    }
                }
            });
        }
        let reply = reply_ident(name);
        let reply_body = if slot.sig.asyncness.is_some() {
            // The slot runs as a task; its result cannot answer a request.
            quote! {
                let _ = __this;
                Self::#thunk(__obj, (#(#args,)*), __meta);
                ::core::option::Option::Some(
                    ::signal_slot::__private::ReplyValue::unanswerable("async fn"),
                )
            }
        } else {
            reply_body(slot, &args)
        };
        thunks.push(quote_spanned! {span=>
            #[doc(hidden)]
            #[allow(unreachable_code, clippy::unused_unit)]
            fn #reply(
                __obj: &mut dyn ::core::any::Any,
                __args: #tuple,
                __meta: ::core::option::Option<&::signal_slot::Meta>,
            ) -> ::core::option::Option<::signal_slot::__private::ReplyValue> {
                let _ = &__meta;
                let __this = __obj.downcast_mut::<Self>()?;
                let (#(#args,)*) = __args;
                #reply_body
            }
        });
        let doc = format!("The `{lit}` slot of this object.");
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        accessors.push(quote_spanned! {span=>
            #[doc = #doc]
            #avis fn #name(&self) -> ::signal_slot::SlotRef<#tuple> {
                self.__raw().__slot(#lit, #index, #wants_meta, <#self_ty>::#thunk)
            }
        });
        let typed = format_ident!("__SIGNAL_SLOT_TYPED_{}", name);
        thunks.push(quote_spanned! {span=>
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            const #typed: ::signal_slot::__private::SlotFn<#tuple> = Self::#thunk;
        });
        let typed_reply = format_ident!("__SIGNAL_SLOT_TYPED_REPLY_{}", name);
        thunks.push(quote_spanned! {span=>
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            const #typed_reply: ::signal_slot::__private::ReplyFn<#tuple> = Self::#reply;
        });
        let reply_type = match &slot.sig.output {
            syn::ReturnType::Default => "()".to_string(),
            syn::ReturnType::Type(_, ty) => quote!(#ty).to_string(),
        };
        entries.push(quote! {
            ::signal_slot::__private::SlotEntry {
                name: #lit,
                typed: &<#self_ty>::#typed,
                reply_type: #reply_type,
                typed_reply: &<#self_ty>::#typed_reply,
                decode_reply: |__obj, __bytes, __meta| {
                    ::signal_slot::__private::decode_reply::<#tuple>(
                        __obj, __bytes, __meta, <#self_ty>::#reply,
                    )
                },
                decode_call: |__obj, __bytes, __meta| {
                    ::signal_slot::__private::decode_call::<#tuple>(
                        __obj, __bytes, __meta, <#self_ty>::#thunk,
                    )
                },
            }
        });
    }
    quote! {
        #item

        #[allow(dead_code, non_snake_case)]
        impl #self_ty {
            #(#thunks)*
        }

        #[allow(dead_code)]
        impl #proxy {
            #(#accessors)*
        }

        impl ::signal_slot::__private::Slots for #self_ty {
            const TABLE: &'static [::signal_slot::__private::SlotEntry] = &[#(#entries),*];
        }
    }
}
