//! Checking the handler's signature, and describing it for the expansion.
//!
//! Only what is visible in the tokens is checked here; whether the parameter is the
//! `listens_to` event, whether the return type can be emitted and whether a future is
//! `Send` are type questions, left to trait bounds in the generated code (spanned on the
//! user's tokens, see `expand`).

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, ImplItem, ImplItemFn, ReturnType, Signature, Type};

use super::parse::{Args, OrganItem};
use crate::attr::{self, Errors};

/// The handler, as the expansion needs it.
pub(crate) struct Handler {
    /// The `async` keyword, for async handlers: where a non-`Send` future is reported.
    pub(crate) asyncness: Option<Span>,
    /// The parameter type without its reference, and whether it was a reference.
    pub(crate) param: Type,
    pub(crate) by_ref: bool,
    /// The declared return type; `None` for `()`.
    pub(crate) output: Option<Type>,
    /// The handler's name: where errors about the handler as a whole go.
    pub(crate) ident_span: Span,
}

/// How a parameter may be written, for messages: `Ping`, `&Ping`, ... for the actual
/// `listens_to` type, or with `E` when it is unknown.
fn param_forms(args: &Args) -> String {
    let e = args
        .listens_to
        .as_ref()
        .map_or_else(|| "E".to_owned(), attr::pretty);
    format!("`{e}`, `&{e}`, `Envelope<{e}>` or `&Envelope<{e}>`")
}

/// The error for `#[organ]` on a function with `self`: a method, in an `impl` block or a
/// trait, or a function that was meant to be one. Spanned on the attribute, since the
/// fix is to move it.
pub(crate) fn on_a_method(args: &Args) -> syn::Error {
    let event = args
        .listens_to
        .as_ref()
        .map_or_else(|| "EventType".to_owned(), attr::pretty);
    syn::Error::new(
        Span::call_site(),
        format!(
            "#[organ] goes on a free function or on an inherent `impl` block, not on a method: \
             for an organ with state, put `#[organ(listens_to = {event})]` on the block \
             `impl YourType {{ fn handle(&self, event: &{event}) }}` (not on an impl of a trait); \
             a function organ takes no `self`"
        ),
    )
}

/// Checks the handler and records every mistake in `errors`. Returns the handler when its
/// parameter could be read; the caller expands it only when `errors` stayed empty.
pub(crate) fn handler(args: &Args, item: &OrganItem, errors: &mut Errors) -> Option<Handler> {
    match item {
        OrganItem::Fn(item) => {
            let handler = signature(args, &item.sig, false, errors);
            let organ = &item.sig.ident;
            for ident in bindings_named(organ, &item.sig, &item.block) {
                errors.push(syn::Error::new(
                    ident.span(),
                    format!(
                        "`{organ}` here would mean the organ, not a new variable: #[organ] turns \
                         `fn {organ}` into a unit struct `{organ}`, and a pattern with that name \
                         matches the struct; rename this binding"
                    ),
                ));
            }
            handler
        }
        OrganItem::Impl(item) => {
            if let Some((_, path, _)) = &item.trait_ {
                errors.push(syn::Error::new_spanned(
                    path,
                    format!(
                        "#[organ] goes on an inherent `impl` block (`impl {} {{ fn handle(&self, ..) }}`), not on an impl of a trait",
                        attr::pretty(&item.self_ty)
                    ),
                ));
            }
            if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
                errors.push(generic(&item.generics));
            }
            match handle_method(args, item) {
                Ok(handle) => signature(args, &handle.sig, true, errors),
                Err(error) => {
                    errors.push(error);
                    None
                }
            }
        }
        OrganItem::Method(_) | OrganItem::Other(_) => None,
    }
}

/// The `handle` method of an `impl` block, or the error that explains its absence.
fn handle_method<'a>(args: &Args, item: &'a syn::ItemImpl) -> syn::Result<&'a ImplItemFn> {
    let methods = || {
        item.items.iter().filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f),
            _ => None,
        })
    };
    if let Some(handle) = methods().find(|f| f.sig.ident == "handle") {
        return Ok(handle);
    }
    if let Some(near) = methods().find(|f| attr::is_misspelling(&f.sig.ident.to_string(), "handle"))
    {
        return Err(syn::Error::new_spanned(
            &near.sig.ident,
            format!(
                "#[organ] calls the method named `handle`; did you mean `handle` instead of `{}`?",
                near.sig.ident
            ),
        ));
    }
    Err(syn::Error::new_spanned(
        &item.self_ty,
        format!(
            "`impl {}` with #[organ] needs a method `fn handle(&self, {})` (sync or async) that handles the event",
            attr::pretty(&item.self_ty),
            example_param(args, None)
        ),
    ))
}

fn generic(generics: &syn::Generics) -> syn::Error {
    let tokens = match &generics.where_clause {
        Some(clause) if generics.params.is_empty() => clause.to_token_stream(),
        _ => generics.to_token_stream(),
    };
    syn::Error::new_spanned(
        tokens,
        "an organ cannot be generic: the spine routes each event type to concrete handlers; \
         remove the generic parameters (write one organ per concrete type)",
    )
}

fn signature(args: &Args, sig: &Signature, method: bool, errors: &mut Errors) -> Option<Handler> {
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(generic(&sig.generics));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "an organ's handler cannot be `unsafe fn`: the spine calls it with no safety contract; \
             make it a safe fn and use an `unsafe` block inside",
        ));
    }
    let mut inputs = sig.inputs.iter().peekable();
    let receiver = match inputs.peek() {
        Some(FnArg::Receiver(receiver)) => {
            inputs.next();
            Some(receiver)
        }
        _ => None,
    };
    match (method, receiver) {
        (true, Some(receiver)) if receiver.reference.is_none() => errors.push(syn::Error::new_spanned(
            receiver,
            "`handle` must take `&self`, not `self`: the spine keeps the organ and calls it for every event",
        )),
        (true, Some(receiver)) if receiver.mutability.is_some() => errors.push(syn::Error::new_spanned(
            receiver,
            "`handle` must take `&self`, not `&mut self`: one organ handles many events, possibly at \
             once; keep changing state in atomics or a `Mutex` field",
        )),
        (true, Some(_)) => {}
        (true, None) => errors.push(syn::Error::new_spanned(
            &sig.ident,
            format!(
                "`handle` must be a method: write `fn handle(&self, {})`",
                example_param(args, sig.inputs.first())
            ),
        )),
        // A function with `self` is a method, rejected before (`on_a_method`).
        (false, _) => {}
    }
    let params: Vec<&FnArg> = inputs.collect();
    let param = match params.as_slice() {
        [] => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!(
                    "an organ takes the event it handles as its parameter: add `{}` (accepted forms: {})",
                    example_param(args, None),
                    param_forms(args)
                ),
            ));
            None
        }
        [FnArg::Typed(param)] => Some(param),
        [FnArg::Receiver(_)] => None,
        [_, extra @ ..] => {
            // The extra parameters, comma-separated, so the error underlines all of them.
            let extra: syn::punctuated::Punctuated<&FnArg, syn::Token![,]> =
                extra.iter().copied().collect();
            errors.push(syn::Error::new_spanned(
                &extra,
                format!(
                    "an organ takes exactly one parameter, the event ({}); remove `{}`{}",
                    param_forms(args),
                    attr::pretty(&extra),
                    if method {
                        ""
                    } else {
                        " (an organ that needs more keeps it as state: put #[organ] on an `impl` block)"
                    }
                ),
            ));
            None
        }
    };
    let (ty, by_ref) = match param.map(|p| &*p.ty) {
        Some(Type::Reference(reference)) => {
            if let Some(mutability) = reference.mutability {
                let and = reference.and_token;
                let tokens = quote::quote!(#and #mutability);
                errors.push(syn::Error::new_spanned(
                    tokens,
                    format!(
                        "an organ cannot take the event by `&mut`: every organ of the event sees the same value; take `&{0}`, or `{0}` for an owned copy",
                        attr::pretty(&reference.elem)
                    ),
                ));
            }
            ((*reference.elem).clone(), true)
        }
        Some(other) => (other.clone(), false),
        None => (syn::parse_quote!(()), false),
    };
    param.map(|_| Handler {
        asyncness: sig.asyncness.map(|a| a.span()),
        param: ty,
        by_ref,
        output: match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some((**ty).clone()),
        },
        ident_span: sig.ident.span(),
    })
}

/// A parameter to suggest: `ping: &Ping` for `listens_to = Ping`.
fn example_param(args: &Args, existing: Option<&FnArg>) -> String {
    if let Some(FnArg::Typed(param)) = existing {
        return attr::pretty(param);
    }
    match &args.listens_to {
        Some(ty) => {
            let name = attr::pretty(ty);
            let short = name.rsplit("::").next().unwrap_or(&name);
            format!("event: &{short}")
        }
        None => "event: &EventType".to_owned(),
    }
}

/// The bindings in the handler's parameters and body that are named like the organ:
/// once `fn organ` is a unit struct `organ`, such a pattern matches the struct instead of
/// binding a new variable, and the compiler's error would not say why.
pub(crate) fn bindings_named<'a>(
    organ: &syn::Ident,
    sig: &'a Signature,
    block: &'a syn::Block,
) -> Vec<&'a syn::Ident> {
    struct Finder<'a, 'i> {
        organ: &'i syn::Ident,
        found: Vec<&'a syn::Ident>,
    }
    impl<'a> Visit<'a> for Finder<'a, '_> {
        fn visit_pat_ident(&mut self, pat: &'a syn::PatIdent) {
            if pat.ident == *self.organ && pat.subpat.is_none() {
                self.found.push(&pat.ident);
            }
            syn::visit::visit_pat_ident(self, pat);
        }
        // Nested items have their own scope rules; leave them alone.
        fn visit_item(&mut self, _: &'a syn::Item) {}
    }
    let mut finder = Finder {
        organ,
        found: Vec::new(),
    };
    for input in &sig.inputs {
        if let FnArg::Typed(param) = input {
            finder.visit_pat(&param.pat);
        }
    }
    finder.visit_block(block);
    finder.found
}
