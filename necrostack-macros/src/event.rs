//! `#[derive(Event)]`: parse `#[event(...)]`, validate the type, expand to `impl Event`.
//!
//! On a mistake in `#[event(...)]` the impl is still generated (with the type's name), so
//! that the type's other uses (in `listens_to`, as a return value) do not add errors of
//! their own; the user sees only the mistake itself.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Data, DeriveInput, LitStr};

use crate::attr::{self, Errors, Key};

const KEYS: &[Key] = &[Key {
    name: "name",
    form: "name = \"EVENT_NAME\"",
}];

/// What `#[event(...)]` said.
#[derive(Default)]
struct EventAttrs {
    name: Option<LitStr>,
}

pub(crate) fn expand(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let attrs = parse(input, &mut errors);
    let implementable = validate(input, &mut errors);
    let ident = &input.ident;
    let default_name = ident.to_string();
    let example = default_name.to_uppercase();
    let name = match &attrs.name {
        Some(name) => match attr::check_name(name, "event", &default_name, &example) {
            Ok(()) => name.value(),
            Err(error) => {
                errors.push(error);
                default_name
            }
        },
        None => default_name,
    };
    let mut tokens = errors.into_compile_errors();
    if implementable {
        tokens.extend(event_impl(ident, &name));
    }
    tokens
}

fn parse(input: &DeriveInput, errors: &mut Errors) -> EventAttrs {
    let mut attrs = EventAttrs::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let input = attr::value(&meta.path, meta.input, KEYS[0].form)?;
                let value = attr::string_value(input, "name = \"EVENT_NAME\"")?;
                if attrs.name.is_some() {
                    errors.push(attr::duplicate_key(
                        &meta.path,
                        "event",
                        "an event has exactly one name",
                    ));
                } else {
                    attrs.name = Some(value);
                }
            } else {
                if meta.input.peek(syn::Token![=]) {
                    meta.input.parse::<syn::Token![=]>()?;
                }
                attr::take_value(meta.input)?;
                errors.push(attr::unknown_key(&meta.path, "event", KEYS));
            }
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    attrs
}

/// Checks the shape of the type; returns whether an `impl Event` can be generated.
fn validate(input: &DeriveInput, errors: &mut Errors) -> bool {
    let mut implementable = true;
    if let Data::Union(data) = &input.data {
        errors.push(syn::Error::new_spanned(
            data.union_token,
            "#[derive(Event)] works on structs and enums, not unions: an event must be \
             (de)serialized, and serde cannot derive that for a union; use an enum",
        ));
        implementable = false;
    }
    if !input.generics.params.is_empty() {
        let ident = &input.ident;
        errors.push(syn::Error::new_spanned(
            &input.generics,
            format!(
                "#[derive(Event)] does not work on generic types: an event type has one fixed \
                 name on the wire, so `{ident}{}` cannot be one; define a concrete type for \
                 each event (e.g. with the generic parameters filled in)",
                attr::pretty(&input.generics)
            ),
        ));
        implementable = false;
    }
    implementable
}

/// The `impl Event`, spanned on the type's name: a type without `Serialize` or
/// `Deserialize`, or one that is not `Send + Sync`, is reported there, by the compiler's
/// own message that says which derive or change it needs.
fn event_impl(ident: &syn::Ident, name: &str) -> TokenStream {
    let private = quote!(::necrostack::__private);
    quote_spanned! {ident.span()=>
        impl #private::Event for #ident {
            const NAME: &'static str = #name;
        }
    }
}
