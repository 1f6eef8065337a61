//! `#[derive(Event)]`: parse `#[event(...)]`, validate the type, expand to `impl Event`.
//!
//! On a mistake in `#[event(...)]` the impl is still generated (with the type's name), so
//! that the type's other uses (in `listens_to`, as a return value) do not add errors of
//! their own; the user sees only the mistake itself. A type that cannot be an event at
//! all (generic, borrowing, a union) gets a stand-in impl for the same reason; see
//! [`stand_in`].

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::visit::Visit;
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
    let rejections = validate(input);
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
    if rejections.is_empty() {
        tokens.extend(event_impl(ident, &name));
    } else if matches!(input.data, Data::Union(_)) {
        // A union has no serde derives to lean on: the stand-in's supertraits would be
        // reported as missing. Its uses are reported instead, as not being events.
        tokens.extend(rejections.into_iter().map(|r| r.to_compile_error()));
    } else {
        tokens.extend(stand_in(input, &name, &rejections));
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

/// Checks the shape of the type: the reasons it cannot be an event, each spanned on the
/// tokens to change. Empty when an `impl Event` can be generated.
fn validate(input: &DeriveInput) -> Vec<syn::Error> {
    let mut rejections = Vec::new();
    if let Data::Union(data) = &input.data {
        rejections.push(syn::Error::new_spanned(
            data.union_token,
            "#[derive(Event)] works on structs and enums, not unions: an event must be \
             (de)serialized, and serde cannot derive that for a union; use an enum",
        ));
    }
    let ident = &input.ident;
    let generics = &input.generics;
    let lifetimes: Vec<&syn::LifetimeParam> = generics.lifetimes().collect();
    let borrowed = borrowed_types(&input.data);
    if lifetimes.is_empty() {
        for ty in &borrowed {
            rejections.push(syn::Error::new_spanned(
                ty,
                format!(
                    "an event owns its data, so it cannot hold `{}`: it is sent to other tasks \
                     and processes and decoded from bytes that are gone once it is handled; {}",
                    attr::pretty(ty),
                    replacement(ty)
                ),
            ));
        }
    } else {
        let params: syn::punctuated::Punctuated<&syn::LifetimeParam, syn::Token![,]> =
            lifetimes.into_iter().collect();
        let fix = if borrowed.is_empty() {
            "make every field an owned type (e.g. `String` instead of `&'a str`)".to_owned()
        } else {
            let fixes: Vec<String> = borrowed.iter().map(|ty| replacement(ty)).collect();
            format!("make every field an owned type: {}", fixes.join(", "))
        };
        rejections.push(syn::Error::new_spanned(
            params,
            format!(
                "an event owns its data, so `{ident}{}` cannot be one: it is sent to other \
                 tasks and processes and decoded from bytes that are gone once it is handled; \
                 {fix}, and remove the lifetime",
                attr::pretty(generics)
            ),
        ));
    }
    if generics.type_params().next().is_some() || generics.const_params().next().is_some() {
        // On `<T>`, or on the type parameters alone when a lifetime was reported too.
        let params: TokenStream = if generics.lifetimes().next().is_none() {
            generics.to_token_stream()
        } else {
            let params: syn::punctuated::Punctuated<&syn::GenericParam, syn::Token![,]> = generics
                .params
                .iter()
                .filter(|p| !matches!(p, syn::GenericParam::Lifetime(_)))
                .collect();
            params.to_token_stream()
        };
        rejections.push(syn::Error::new_spanned(
            params,
            format!(
                "#[derive(Event)] does not work on generic types: an event type has one fixed \
                 name on the wire, so `{ident}{}` cannot be one; define a concrete type for \
                 each event (e.g. with the generic parameters filled in)",
                attr::pretty(generics)
            ),
        ));
    }
    rejections
}

/// The reference types in the fields (`&'static str`, `Option<&[u8]>`): what makes an
/// event borrow. Function pointer and trait object types are not looked into.
fn borrowed_types(data: &Data) -> Vec<&syn::TypeReference> {
    struct Finder<'a>(Vec<&'a syn::TypeReference>);
    impl<'a> Visit<'a> for Finder<'a> {
        fn visit_type_reference(&mut self, reference: &'a syn::TypeReference) {
            self.0.push(reference);
        }
        fn visit_type_bare_fn(&mut self, _: &'a syn::TypeBareFn) {}
        fn visit_type_trait_object(&mut self, _: &'a syn::TypeTraitObject) {}
    }
    let mut finder = Finder(Vec::new());
    let fields: Vec<&syn::Field> = match data {
        Data::Struct(data) => data.fields.iter().collect(),
        Data::Enum(data) => data.variants.iter().flat_map(|v| &v.fields).collect(),
        Data::Union(data) => data.fields.named.iter().collect(),
    };
    for field in fields {
        finder.visit_type(&field.ty);
    }
    finder.0
}

/// What to write instead of a borrowed type: "use `String` instead of `&'a str`".
fn replacement(reference: &syn::TypeReference) -> String {
    let elem = &*reference.elem;
    let owned = match elem {
        syn::Type::Path(path) if path.qself.is_none() => {
            match path
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .as_deref()
            {
                Some("str") => "String".to_owned(),
                Some("Path") => "PathBuf".to_owned(),
                Some("OsStr") => "OsString".to_owned(),
                Some("CStr") => "CString".to_owned(),
                _ => attr::pretty(elem),
            }
        }
        syn::Type::Slice(slice) => format!("Vec<{}>", attr::pretty(&slice.elem)),
        other => attr::pretty(other),
    };
    format!("use `{owned}` instead of `{}`", attr::pretty(reference))
}

/// An `impl Event` for a type that cannot be one, so that its uses (in `listens_to`,
/// `emit`, return types) add no errors of their own. The rejections' `compile_error!`s
/// are its where clause, as const arguments of a trait whose supertraits are the ones
/// `Event` needs: the impl is checked assuming them, and a bound whose argument is an
/// error is not reported again where the impl is used. Each rejection is then one error,
/// on its tokens.
fn stand_in(input: &DeriveInput, name: &str, rejections: &[syn::Error]) -> TokenStream {
    let private = quote!(::necrostack::__private);
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let predicates = where_clause.map(|w| &w.predicates);
    let bounds = rejections.iter().map(|rejection| {
        let error = rejection.to_compile_error();
        quote!(Self: #private::RejectedEvent<{ (#error) }>,)
    });
    quote! {
        impl #impl_generics #private::Event for #ident #ty_generics
        where
            #predicates
            #(#bounds)*
        {
            const NAME: &'static str = #name;
        }
    }
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

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    fn expand(input: syn::DeriveInput) -> String {
        super::expand(&input).to_string()
    }

    #[test]
    fn a_borrowed_field_is_one_error_with_a_stand_in_impl() {
        let text = expand(parse_quote!(
            struct Ping {
                body: &'static str,
                count: u32,
            }
        ));
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
        assert!(
            text.contains("use `String` instead of `&'static str`"),
            "{text}"
        );
        assert!(text.contains("RejectedEvent"), "{text}");
    }

    #[test]
    fn a_lifetime_is_one_error_naming_the_owned_types() {
        let text = expand(parse_quote!(
            enum Upload<'a> {
                Name(&'a str),
                Chunk { bytes: &'a [u8] },
            }
        ));
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
        assert!(text.contains("`String` instead of `&'a str`"), "{text}");
        assert!(text.contains("`Vec<u8>` instead of `&'a [u8]`"), "{text}");
    }

    #[test]
    fn a_union_gets_no_impl() {
        let text = expand(parse_quote!(
            union Ping {
                number: u32,
            }
        ));
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
        assert!(!text.contains("impl"), "{text}");
    }

    #[test]
    fn a_valid_event_is_a_plain_impl() {
        let text = expand(parse_quote!(
            struct Ping {
                body: String,
            }
        ));
        assert!(!text.contains("compile_error"), "{text}");
        assert!(!text.contains("RejectedEvent"), "{text}");
    }
}
