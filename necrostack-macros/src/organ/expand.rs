//! Generating the organ type and its `impl Organ`.
//!
//! Each type requirement appears exactly once in the generated code, spanned on the
//! user's token it is about, so that a mistake gives one error in the right place:
//! - `type Event = <listens_to>` (through one alias): the `listens_to` type exists and is
//!   an event;
//! - `EventParam` on the parameter type: the parameter is that event (or its envelope);
//! - `OwnedParam` on the parameter type: a by-value parameter can be cloned;
//! - `IntoOutcome` on the return type, or `IntoEmit` and `ErrorType` on the two halves of
//!   a `Result<T, Err>`: the return value can be emitted, the error is an error type;
//! - `pending` on the `async` keyword: the handler's future is `Send`;
//! - the impl itself, on the organ's type: the organ is `Send + Sync`.

use proc_macro2::{TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;

use super::parse::Args;
use super::validate::Handler;

/// `::necrostack::__private`, where generated code finds everything it uses.
pub(crate) fn private() -> TokenStream {
    quote!(::necrostack::__private)
}

/// `fn summon(..)` becomes `struct summon;` with the function kept as `summon::handle`.
pub(crate) fn function_organ(args: &Args, item: &syn::ItemFn, handler: &Handler) -> TokenStream {
    let ident = &item.sig.ident;
    let call = quote_spanned!(ident.span()=> #ident::handle(__necrostack_arg));
    let organ_impl = organ_impl(
        args,
        &quote!(#ident),
        &ident.to_string(),
        handler,
        call,
        false,
    );
    let organ_struct = function_struct(item, true);
    quote! {
        #organ_struct
        #organ_impl
    }
}

/// The unit struct that a function organ becomes, with the function as its `handle`.
/// Without `with_handle`, the function is dropped (its body would only add errors).
pub(crate) fn function_struct(item: &syn::ItemFn, with_handle: bool) -> TokenStream {
    let ident = &item.sig.ident;
    let vis = &item.vis;
    let docs = item.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let handle = with_handle.then(|| {
        let attrs = &item.attrs;
        let mut sig = item.sig.clone();
        sig.ident = format_ident!("handle", span = ident.span());
        let block = &item.block;
        quote! {
            impl #ident {
                #(#attrs)*
                #vis #sig #block
            }
        }
    });
    quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #ident;

        #handle
    }
}

/// `impl Scribe { fn handle(&self, ..) }` stays as written and gains `impl Organ`.
pub(crate) fn impl_organ(args: &Args, item: &syn::ItemImpl, handler: &Handler) -> TokenStream {
    let self_ty = &item.self_ty;
    let call = quote_spanned!(handler.ident_span=> <#self_ty>::handle(self, __necrostack_arg));
    let organ_impl = organ_impl(
        args,
        &self_ty.to_token_stream(),
        &type_name(self_ty),
        handler,
        call,
        true,
    );
    quote! {
        #item
        #organ_impl
    }
}

/// The organ's default name: the last segment of its type's path.
pub(crate) fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(path) => path
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        other => crate::attr::pretty(other),
    }
}

/// The organ's event type: the `listens_to` type, or `NoEvent` when it is missing (an
/// error has been recorded then). Shared by the expansion and the stand-in.
pub(crate) fn event_type(args: &Args) -> TokenStream {
    match &args.listens_to {
        Some(ty) => ty.to_token_stream(),
        None => {
            let private = private();
            quote!(#private::NoEvent)
        }
    }
}

/// The organ's name: `name = "..."`, or the function's or type's name. Shared by the
/// expansion and the stand-in.
pub(crate) fn organ_name(args: &Args, default_name: &str) -> String {
    args.name
        .as_ref()
        .map_or_else(|| default_name.to_owned(), syn::LitStr::value)
}

fn organ_impl(
    args: &Args,
    self_ty: &TokenStream,
    default_name: &str,
    handler: &Handler,
    call: TokenStream,
    method: bool,
) -> TokenStream {
    let private = private();
    let emits = emits_fn(args, handler, method);
    let listens_to = event_type(args);
    let listens_to_span = args
        .listens_to
        .as_ref()
        .map_or_else(proc_macro2::Span::call_site, Spanned::span);
    let name = organ_name(args, default_name);
    let param = &handler.param;
    // Errors about the parameter are reported on the first token of its type (`Pong`,
    // `Envelope` in `Envelope<Pong>`).
    let param_span = param.span();
    let borrow = quote_spanned! {param_span=>
        <__NecrostackEvent as #private::EventParam<#param>>::from_envelope(__necrostack_envelope)
    };
    let own = (!handler.by_ref).then(|| {
        quote_spanned! {param_span=>
            let __necrostack_arg = #private::OwnedParam::owned(::core::convert::identity(__necrostack_arg));
        }
    });
    let convert = conversion(handler);
    let body = match handler.asyncness {
        Some(async_span) => {
            // From `async` to the handler's name: `async fn answer`.
            let future = respan(
                quote!(::core::convert::identity(__necrostack_future)),
                async_span,
                handler.ident_span,
            );
            quote! {
                let __necrostack_future = #call;
                #private::pending(#future, |__necrostack_output| #convert)
            }
        }
        None => quote! {
            let __necrostack_output = #call;
            #private::Handling::Ready(#convert)
        },
    };
    // The whole impl carries the organ type's span: a type that is not `Send + Sync` is
    // reported there, once. It sits in an anonymous const with an alias for the event
    // type, so that a `listens_to` type that does not exist is reported once, too.
    let self_span = self_ty
        .clone()
        .into_iter()
        .next()
        .map_or_else(proc_macro2::Span::call_site, |t| t.span());
    // ... except the event type, so that one that is not an event is reported on it.
    let event_alias = syn::Ident::new("__NecrostackEvent", listens_to_span);
    let organ_impl = quote_spanned! {self_span=>
        const _: () = {
            type __NecrostackEvent = #listens_to;

            impl #private::Organ for #self_ty {
                type Event = #event_alias;
                const NAME: &'static str = #name;

                fn call<'__necrostack>(
                    &'__necrostack self,
                    __necrostack_envelope: &'__necrostack #private::Envelope<__NecrostackEvent>,
                ) -> #private::Handling<'__necrostack> {
                    let __necrostack_arg = #borrow;
                    #own
                    #body
                }

                #emits
            }
        };
    };
    call_site_locals(organ_impl)
}

/// `fn emits()`: the event types of the handler's output type, found by the type system
/// from the handler function itself (`Self::handle`), so the user's return type is not
/// written a second time (its errors would be). An output that cannot be emitted (an
/// error reported on the return type) gives `Emits::Unknown` here, not a second error.
/// The types listed in `emits = [..]` are each checked to be an event, on the listed type.
fn emits_fn(args: &Args, handler: &Handler, method: bool) -> TokenStream {
    let private = private();
    let probe = match (method, handler.asyncness.is_some()) {
        (false, false) => quote!(output_of),
        (false, true) => quote!(output_of_async),
        (true, false) => quote!(output_of_method),
        (true, true) => quote!(output_of_async_method),
    };
    let declared = match &args.emits {
        None => quote!(::core::option::Option::None),
        Some(types) => {
            let names = types.iter().map(|ty| {
                let (first, last) = first_last(ty);
                // `<Ty as EmittedEvent>::NAME`, spanning the user's `Ty` from its first
                // token to its last, where an unmet bound is reported.
                let open = quote_spanned!(first=> <);
                let close = respan(quote!(as #private::EmittedEvent>::NAME), last, last);
                quote!(#open #ty #close)
            });
            quote!(::core::option::Option::Some(&[#(#names),*]))
        }
    };
    quote! {
        fn emits() -> #private::Emits {
            #[allow(unused_imports)]
            use #private::{KnownEmits as _, UnknownEmits as _};
            let __necrostack_output = #private::#probe(&Self::handle);
            (&__necrostack_output).emits(#declared)
        }
    }
}

/// Gives the generated code's own locals (`self`, `__necrostack_*`) call-site hygiene,
/// keeping their location. Errors still point at the user's tokens, and the locals stay
/// one set of names even when the user's tokens come from a `macro_rules!` expansion,
/// whose hygiene would otherwise split a local's declaration from its uses.
fn call_site_locals(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut out =
                    proc_macro2::Group::new(group.delimiter(), call_site_locals(group.stream()));
                out.set_span(group.span());
                TokenTree::Group(out)
            }
            TokenTree::Ident(mut ident) => {
                let name = ident.to_string();
                if name == "self" || name.starts_with("__necrostack") {
                    ident.set_span(proc_macro2::Span::call_site().located_at(ident.span()));
                }
                TokenTree::Ident(ident)
            }
            other => other,
        })
        .collect()
}

/// Turns `__necrostack_output` (what the handler returned) into the outcome. Trait
/// methods are called directly (not through generic helper functions) so that errors
/// carry no "required by a bound in" notes about necrostack's internals. A declared
/// `Result<T, Err>` is taken apart so that a bad `T` and a bad `Err` are each reported on
/// their own tokens; any other return type is converted as a whole, reported on itself.
fn conversion(handler: &Handler) -> TokenStream {
    let private = private();
    if let Some((ok, err)) = handler.output.as_ref().and_then(result_parts) {
        let ok = argument_over(
            ok,
            quote!(#private::IntoEmit::into_emit),
            quote!(__necrostack_value, &mut __necrostack_emit),
        );
        let err = argument_over(
            err,
            quote!(#private::ErrorType::into_organ_error),
            quote!(__necrostack_error),
        );
        return quote! {
            match __necrostack_output {
                ::core::result::Result::Ok(__necrostack_value) => {
                    let mut __necrostack_emit = #private::Emit::new();
                    #ok;
                    ::core::result::Result::Ok(__necrostack_emit)
                }
                ::core::result::Result::Err(__necrostack_error) => {
                    ::core::result::Result::Err(#err)
                }
            }
        };
    }
    let into_outcome = quote!(#private::IntoOutcome::into_outcome);
    match &handler.output {
        Some(output) => argument_over(output, into_outcome, quote!(__necrostack_output)),
        None => {
            let call = quote!(#into_outcome(__necrostack_output));
            respan(call, handler.ident_span, handler.ident_span)
        }
    }
}

/// `function(args)`, where the compiler reports an unmet trait bound on the first
/// argument, spanned so that it underlines all of `node`: the argument is wrapped in
/// `identity(..)`, a call whose span runs from its first token (given `node`'s first
/// token's span) to its last (given `node`'s last token's span). `quote_spanned!` alone
/// can only give one token's span, which for `Vec<u32>` is `Vec`.
fn argument_over(node: &impl ToTokens, function: TokenStream, args: TokenStream) -> TokenStream {
    let (first, last) = first_last(node);
    let mut args = args.into_iter();
    let first_arg: TokenStream = args.next().into_iter().collect();
    let rest: TokenStream = args.collect();
    let wrapped = respan(quote!(::core::convert::identity(#first_arg)), first, last);
    let function = respan(function, first, first);
    let rest = respan(rest, first, first);
    let mut group =
        proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, quote!(#wrapped #rest));
    group.set_span(first);
    quote!(#function #group)
}

/// The spans of the first and last tokens of `node`.
fn first_last(node: &impl ToTokens) -> (proc_macro2::Span, proc_macro2::Span) {
    let mut tokens = node.to_token_stream().into_iter();
    let first = tokens
        .next()
        .map_or_else(proc_macro2::Span::call_site, |t| t.span());
    let last = tokens.last().map_or(first, |t| t.span());
    (first, last)
}

/// `tokens` with the first token spanned at `first` and all others (nested too) at `last`.
fn respan(tokens: TokenStream, first: proc_macro2::Span, last: proc_macro2::Span) -> TokenStream {
    fn set(token: TokenTree, span: proc_macro2::Span) -> TokenTree {
        match token {
            TokenTree::Group(group) => {
                let stream = group.stream().into_iter().map(|t| set(t, span)).collect();
                let mut out = proc_macro2::Group::new(group.delimiter(), stream);
                out.set_span(span);
                TokenTree::Group(out)
            }
            mut other => {
                other.set_span(span);
                other
            }
        }
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| set(token, if i == 0 { first } else { last }))
        .collect()
}

/// `T` and `Err` of a return type written `Result<T, Err>` (with any path before it).
pub(crate) fn result_parts(ty: &syn::Type) -> Option<(&syn::Type, &syn::Type)> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(Some(ok)), Some(Some(err)), None) => Some((ok, err)),
        _ => None,
    }
}
