//! What `#[organ]` generates when it rejects its input: the compile errors, the user's
//! item, and a stand-in `impl Organ` that does nothing.
//!
//! The stand-in keeps the rest of the user's code compiling (`.organ(answer)`,
//! `testing::call(&answer, ..)`), so the only errors are the ones about the mistake. The
//! program never runs: the `compile_error!`s stop the build.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

use super::expand::{event_type, function_struct, organ_name, private, type_name};
use super::parse::{Args, OrganItem};

pub(crate) fn stub(args: &Args, item: &OrganItem, keep_function: bool) -> TokenStream {
    match item {
        OrganItem::Fn(item) => {
            let ident = &item.sig.ident;
            let organ_struct = function_struct(item, keep_function);
            let organ_impl = stub_impl(args, &quote!(#ident), &ident.to_string(), None);
            quote! {
                #organ_struct
                #organ_impl
            }
        }
        OrganItem::Impl(item) => {
            let organ_impl = stub_impl(
                args,
                &item.self_ty.to_token_stream(),
                &type_name(&item.self_ty),
                Some(&item.generics),
            );
            quote! {
                #item
                #organ_impl
            }
        }
        // Nothing but the method itself can be declared where it is.
        OrganItem::Method(method) => method.clone(),
        OrganItem::Other(other) => {
            let ident = match other {
                syn::Item::Struct(s) if s.generics.params.is_empty() => Some(&s.ident),
                syn::Item::Enum(e) if e.generics.params.is_empty() => Some(&e.ident),
                _ => None,
            };
            let organ_impl =
                ident.map(|ident| stub_impl(args, &quote!(#ident), &ident.to_string(), None));
            quote! {
                #other
                #organ_impl
            }
        }
    }
}

fn stub_impl(
    args: &Args,
    self_ty: &TokenStream,
    default_name: &str,
    generics: Option<&syn::Generics>,
) -> TokenStream {
    let private = private();
    let listens_to = event_type(args);
    let name = organ_name(args, default_name);
    let (impl_generics, where_clause) = match generics {
        Some(generics) if !generics.params.is_empty() => {
            let (impl_generics, _, where_clause) = generics.split_for_impl();
            // The organ's supertraits, assumed rather than proven: proving them is not the
            // point of a stand-in and could only add errors.
            let predicates = where_clause.map(|w| &w.predicates);
            (
                impl_generics.to_token_stream(),
                quote!(where #predicates Self: ::core::marker::Send + ::core::marker::Sync + 'static),
            )
        }
        _ => (TokenStream::new(), TokenStream::new()),
    };
    quote! {
        impl #impl_generics #private::Organ for #self_ty #where_clause {
            type Event = #listens_to;
            const NAME: &'static str = #name;

            fn call<'__necrostack>(
                &'__necrostack self,
                _: &'__necrostack #private::Envelope<Self::Event>,
            ) -> #private::Handling<'__necrostack> {
                #private::Handling::Ready(::core::result::Result::Ok(#private::Emit::new()))
            }
        }
    }
}
