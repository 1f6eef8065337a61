//! `#[derive(Event)]`: parse `#[event(...)]`, validate, expand to `impl Event`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, LitStr};

use crate::attr::{check_name, duplicate_key, unknown_key, Errors};

const VALID_KEYS: &[&str] = &["name"];

/// What `#[event(...)]` said.
struct EventAttrs {
    name: Option<LitStr>,
}

fn parse(input: &DeriveInput, errors: &mut Errors) -> EventAttrs {
    let mut attrs = EventAttrs { name: None };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let value: LitStr = meta.value()?.parse()?;
                if attrs.name.is_some() {
                    errors.push(duplicate_key(&meta.path, "event"));
                } else {
                    attrs.name = Some(value);
                }
                Ok(())
            } else {
                // Skip the value so parsing can go on to report later keys too.
                if meta.input.peek(syn::Token![=]) {
                    let _: syn::Expr = meta.value()?.parse()?;
                }
                errors.push(unknown_key(&meta.path, "event", VALID_KEYS));
                Ok(())
            }
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    attrs
}

fn validate(input: &DeriveInput, attrs: &EventAttrs, errors: &mut Errors) {
    if let Data::Union(data) = &input.data {
        errors.push(syn::Error::new_spanned(
            data.union_token,
            "#[derive(Event)] supports structs and enums, not unions",
        ));
    }
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics,
            "#[derive(Event)] does not support generic types: an event type has one fixed name on the wire; define a concrete type per event",
        ));
    }
    if let Some(name) = &attrs.name {
        if let Err(error) = check_name(name, "event") {
            errors.push(error);
        }
    }
}

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let attrs = parse(input, &mut errors);
    validate(input, &attrs, &mut errors);
    errors.finish()?;

    let ident = &input.ident;
    let name = match &attrs.name {
        Some(name) => name.value(),
        None => ident.to_string(),
    };
    Ok(quote! {
        impl ::necrostack::Event for #ident {
            const NAME: &'static str = #name;
        }
    })
}
