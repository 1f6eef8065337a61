//! Parsing `#[organ(...)]` arguments and the item the attribute is on.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::Parser;
use syn::{LitStr, Type};

use crate::attr::{self, Errors, Key};

pub(crate) const KEYS: &[Key] = &[
    Key {
        name: "listens_to",
        form: "listens_to = EventType",
    },
    Key {
        name: "name",
        form: "name = \"organ-name\"",
    },
    Key {
        name: "emits",
        form: "emits = [EventA, EventB]",
    },
];

/// The attribute's arguments, as far as they could be read. `listens_to` is `None` when
/// it is missing or unreadable; an error has been recorded then.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) listens_to: Option<Type>,
    pub(crate) name: Option<LitStr>,
    /// The event types listed in `emits = [..]`: what the organ's `Emit` may hold.
    pub(crate) emits: Option<Vec<Type>>,
}

pub(crate) fn args(tokens: TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    let mut listens_to_given = false;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("listens_to") {
            let input = attr::value(&meta.path, meta.input, KEYS[0].form)?;
            let value = listens_to(input)?;
            if listens_to_given {
                errors.push(attr::duplicate_key(
                    &meta.path,
                    "organ",
                    "an organ listens to exactly one event type (write one organ per event type)",
                ));
            } else {
                args.listens_to = Some(value);
            }
            listens_to_given = true;
        } else if meta.path.is_ident("name") {
            let input = attr::value(&meta.path, meta.input, KEYS[1].form)?;
            let value = attr::string_value(input, KEYS[1].form)?;
            if args.name.is_some() {
                errors.push(attr::duplicate_key(
                    &meta.path,
                    "organ",
                    "an organ has exactly one name",
                ));
            } else {
                args.name = Some(value);
            }
        } else if meta.path.is_ident("emits") {
            let input = attr::value(&meta.path, meta.input, KEYS[2].form)?;
            let value = emits(input, errors)?;
            if args.emits.is_some() {
                errors.push(attr::duplicate_key(
                    &meta.path,
                    "organ",
                    "list every event type the organ emits in one `emits = [..]`",
                ));
            } else {
                args.emits = Some(value);
            }
        } else {
            if meta.input.peek(syn::Token![=]) {
                meta.input.parse::<syn::Token![=]>()?;
            }
            attr::take_value(meta.input)?;
            errors.push(attr::unknown_key(&meta.path, "organ", KEYS));
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(tokens) {
        errors.push(error);
    }
    // After a misspelled or unreadable key, "missing `listens_to`" would be a repetition.
    if !listens_to_given && errors.is_empty() {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!(
                "#[organ] needs the event type it handles: write `#[organ(listens_to = EventType)]`; valid keys: {}",
                attr::list(KEYS.iter().map(|k| k.form))
            ),
        ));
    }
    args
}

/// Reads the type after `listens_to =`, explaining the usual mistakes.
fn listens_to(input: syn::parse::ParseStream<'_>) -> syn::Result<Type> {
    if input.peek(LitStr) {
        let literal: LitStr = input.parse()?;
        return Err(syn::Error::new(
            literal.span(),
            format!(
                "`listens_to` takes the event type itself, not a string: write `listens_to = {}`",
                literal.value()
            ),
        ));
    }
    let fork = input.fork();
    match fork.parse::<Type>() {
        Ok(ty) if fork.is_empty() || fork.peek(syn::Token![,]) => {
            input.parse::<Type>()?;
            Ok(ty)
        }
        _ => {
            let value = attr::take_value(input)?;
            Err(syn::Error::new_spanned(
                &value,
                format!(
                    "`listens_to` takes one event type, e.g. `listens_to = MyEvent`; found `{}`",
                    attr::pretty(&value)
                ),
            ))
        }
    }
}

/// Reads the list after `emits =`: event types in brackets, each once. A mistake in one
/// element is recorded and the others are still read.
fn emits(input: syn::parse::ParseStream<'_>, errors: &mut Errors) -> syn::Result<Vec<Type>> {
    if !input.peek(syn::token::Bracket) {
        let value = attr::take_value(input)?;
        let found = attr::pretty(&value);
        let message = if value.is_empty() {
            "`emits` needs a value: write `emits = [EventA, EventB]`".to_owned()
        } else {
            format!("`emits` takes a list of event types in brackets: write `emits = [{found}]`")
        };
        return Err(if value.is_empty() {
            syn::Error::new(input.span(), message)
        } else {
            syn::Error::new_spanned(&value, message)
        });
    }
    let content;
    syn::bracketed!(content in input);
    let mut types: Vec<Type> = Vec::new();
    while !content.is_empty() {
        if content.peek(LitStr) {
            let literal: LitStr = content.parse()?;
            errors.push(syn::Error::new(
                literal.span(),
                format!(
                    "`emits` takes event types themselves, not strings: write `{}`",
                    literal.value()
                ),
            ));
        } else {
            let fork = content.fork();
            match fork.parse::<Type>() {
                Ok(ty) if fork.is_empty() || fork.peek(syn::Token![,]) => {
                    content.parse::<Type>()?;
                    let name = attr::pretty(&ty);
                    if types.iter().any(|t| attr::pretty(t) == name) {
                        errors.push(syn::Error::new_spanned(
                            &ty,
                            format!("`{name}` is listed twice in `emits`; remove one of them"),
                        ));
                    } else {
                        types.push(ty);
                    }
                }
                _ => {
                    let value = attr::take_value(&content)?;
                    errors.push(syn::Error::new_spanned(
                        &value,
                        format!(
                            "`emits` lists event types, e.g. `emits = [OrderFilled, OrderQueued]`; found `{}`",
                            attr::pretty(&value)
                        ),
                    ));
                }
            }
        }
        if content.is_empty() {
            break;
        }
        content.parse::<syn::Token![,]>()?;
    }
    Ok(types)
}

/// What `#[organ]` is attached to.
pub(crate) enum OrganItem {
    Fn(syn::ItemFn),
    Impl(syn::ItemImpl),
    /// A method (a function with `self`, or a method declared in a trait without a
    /// body): in an `impl` block or a trait, where nothing but the method itself can be
    /// generated. Given back unchanged.
    Method(TokenStream),
    /// Anything else: an error has been recorded; the item is given back unchanged.
    Other(syn::Item),
}

pub(crate) fn item(tokens: TokenStream, errors: &mut Errors) -> syn::Result<OrganItem> {
    let item = syn::parse2::<syn::Item>(tokens)?;
    Ok(match item {
        syn::Item::Fn(item) if item.sig.receiver().is_some() => {
            OrganItem::Method(item.into_token_stream())
        }
        syn::Item::Fn(item) => OrganItem::Fn(item),
        syn::Item::Verbatim(tokens) if syn::parse2::<syn::TraitItemFn>(tokens.clone()).is_ok() => {
            OrganItem::Method(tokens)
        }
        syn::Item::Impl(item) => OrganItem::Impl(item),
        other => {
            errors.push(not_a_handler(&other));
            OrganItem::Other(other)
        }
    })
}

/// `a b` as tokens.
fn head(a: &impl ToTokens, b: &impl ToTokens) -> TokenStream {
    let mut tokens = a.to_token_stream();
    b.to_tokens(&mut tokens);
    tokens
}

/// The error for `#[organ]` on an item that is not a function or an `impl` block,
/// spanned on the item's keyword and name.
fn not_a_handler(item: &syn::Item) -> syn::Error {
    use syn::Item;
    let (what, head): (&str, TokenStream) = match item {
        Item::Struct(i) => ("a struct", head(&i.struct_token, &i.ident)),
        Item::Enum(i) => ("an enum", head(&i.enum_token, &i.ident)),
        Item::Union(i) => ("a union", head(&i.union_token, &i.ident)),
        Item::Const(i) => ("a const", head(&i.const_token, &i.ident)),
        Item::Static(i) => ("a static", head(&i.static_token, &i.ident)),
        Item::Trait(i) => ("a trait", head(&i.trait_token, &i.ident)),
        Item::Type(i) => ("a type alias", head(&i.type_token, &i.ident)),
        Item::Mod(i) => ("a module", head(&i.mod_token, &i.ident)),
        Item::Use(i) => ("a `use`", i.use_token.to_token_stream()),
        other => ("this item", other.to_token_stream()),
    };
    let hint = match item {
        Item::Struct(_) | Item::Enum(_) => {
            " for a stateful organ, put the attribute on the type's `impl` block, which has \
             one method `handle(&self, event: &EventType)`"
        }
        _ => " write a handler function `fn name(event: &EventType)`",
    };
    syn::Error::new_spanned(
        head,
        format!("#[organ] goes on a handler function or on an `impl` block, not on {what}:{hint}"),
    )
}
