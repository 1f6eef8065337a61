//! Generating the organ type and its `impl Organ`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;

use super::parse::{Args, OrganItem};
use super::validate::Handler;

pub(crate) fn organ(args: &Args, item: &OrganItem, handler: &Handler) -> TokenStream {
    match item {
        OrganItem::Fn(item) => function_organ(args, item, handler),
        OrganItem::Impl(item) => impl_organ(args, item, handler),
    }
}

/// `fn summon(..)` becomes `struct summon;` with the function kept as `summon::handle`.
fn function_organ(args: &Args, item: &syn::ItemFn, handler: &Handler) -> TokenStream {
    let ident = &item.sig.ident;
    let vis = &item.vis;
    let docs = item.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let attrs = &item.attrs;
    let mut sig = item.sig.clone();
    sig.ident = format_ident!("handle", span = ident.span());
    let block = &item.block;
    let name = args
        .name
        .as_ref()
        .map(|n| n.value())
        .unwrap_or_else(|| ident.to_string());
    let call = quote!(#ident::handle(__necrostack_arg));
    let organ_impl = organ_impl(args, quote!(#ident), &name, handler, call);
    quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #ident;

        impl #ident {
            #(#attrs)*
            #vis #sig #block
        }

        #organ_impl
    }
}

/// `impl Scribe { fn handle(&self, ..) }` stays as written and gains `impl Organ`.
fn impl_organ(args: &Args, item: &syn::ItemImpl, handler: &Handler) -> TokenStream {
    let self_ty = &item.self_ty;
    let name = args
        .name
        .as_ref()
        .map(|n| n.value())
        .unwrap_or_else(|| match &**self_ty {
            syn::Type::Path(path) => path
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default(),
            other => other.to_token_stream().to_string(),
        });
    let call = quote!(<#self_ty>::handle(self, __necrostack_arg));
    let organ_impl = organ_impl(args, self_ty.to_token_stream(), &name, handler, call);
    quote! {
        #item
        #organ_impl
    }
}

fn organ_impl(
    args: &Args,
    self_ty: TokenStream,
    name: &str,
    handler: &Handler,
    call: TokenStream,
) -> TokenStream {
    let listens_to = &args.listens_to;
    let param = &handler.param;
    let private = quote!(::necrostack::__private);
    // Errors about the parameter point at the user's parameter type.
    let borrowed = quote_spanned! {param.span()=>
        <#param as #private::EventParam<#listens_to>>::from_envelope(__necrostack_envelope)
    };
    let arg = if handler.by_ref {
        borrowed
    } else {
        quote_spanned! {param.span()=> #private::Clone::clone(#borrowed) }
    };
    // Errors about the return type point at the user's return type.
    let output_span = handler
        .output
        .as_ref()
        .map_or(handler.signature_span, Spanned::span);
    let body = if handler.is_async {
        let into_outcome = quote_spanned! {output_span=> #private::into_outcome(#call.await) };
        let future = quote_spanned! {handler.signature_span=>
            #private::Box::pin(async move { #into_outcome })
        };
        quote!(#private::Handling::Pending(#future))
    } else {
        let into_outcome = quote_spanned! {output_span=> #private::into_outcome(#call) };
        quote!(#private::Handling::Ready(#into_outcome))
    };
    let listens_to_checked = quote_spanned! {listens_to.span()=> #listens_to };
    let _ = Span::call_site();
    quote! {
        impl #private::Organ for #self_ty {
            type Event = #listens_to_checked;
            const NAME: &'static str = #name;

            #[allow(clippy::clone_on_copy, clippy::unit_arg)]
            fn call<'__necrostack>(
                &'__necrostack self,
                __necrostack_envelope: &'__necrostack #private::Envelope<#listens_to>,
            ) -> #private::Handling<'__necrostack> {
                let __necrostack_arg = #arg;
                #body
            }
        }
    }
}
