//! Parsing `#[organ(...)]` arguments and the item it is attached to.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{LitStr, Type};

use crate::attr::{call_site, check_name, duplicate_key, unknown_key, Errors};

const VALID_KEYS: &[&str] = &["listens_to", "name"];

/// The attribute's arguments.
pub(crate) struct Args {
    pub(crate) listens_to: Type,
    pub(crate) name: Option<LitStr>,
}

pub(crate) fn args(tokens: TokenStream) -> syn::Result<Args> {
    let mut listens_to: Option<Type> = None;
    let mut name: Option<LitStr> = None;
    let mut errors = Errors::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("listens_to") {
            let value: Type = meta.value()?.parse()?;
            if listens_to.is_some() {
                errors.push(duplicate_key(&meta.path, "organ"));
            } else {
                listens_to = Some(value);
            }
        } else if meta.path.is_ident("name") {
            let value: LitStr = meta.value()?.parse()?;
            if name.is_some() {
                errors.push(duplicate_key(&meta.path, "organ"));
            } else {
                if let Err(error) = check_name(&value, "organ") {
                    errors.push(error);
                }
                name = Some(value);
            }
        } else {
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            errors.push(unknown_key(&meta.path, "organ", VALID_KEYS));
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(tokens) {
        errors.push(error);
    }
    if listens_to.is_none() {
        errors.push(syn::Error::new(
            call_site(),
            "#[organ] needs the event type it handles: #[organ(listens_to = EventType)]",
        ));
    }
    errors.finish()?;
    match listens_to {
        Some(listens_to) => Ok(Args { listens_to, name }),
        None => Err(syn::Error::new(call_site(), "missing `listens_to`")),
    }
}

/// What `#[organ]` is attached to.
pub(crate) enum OrganItem {
    Fn(syn::ItemFn),
    Impl(syn::ItemImpl),
}

pub(crate) fn item(tokens: TokenStream) -> syn::Result<OrganItem> {
    match syn::parse2::<syn::Item>(tokens)? {
        syn::Item::Fn(item) => Ok(OrganItem::Fn(item)),
        syn::Item::Impl(item) => Ok(OrganItem::Impl(item)),
        other => Err(syn::Error::new_spanned(
            other,
            "#[organ] goes on a handler function or on an `impl` block with a `handle(&self, event)` method",
        )),
    }
}
