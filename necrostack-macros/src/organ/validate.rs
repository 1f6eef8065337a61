//! Checking the handler's signature and describing it for expansion.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ReturnType, Signature, Type};

use super::parse::{Args, OrganItem};
use crate::attr::Errors;

/// The accepted parameter forms, for error messages.
const PARAM_FORMS: &str = "the event as `E`, `&E`, `Envelope<E>` or `&Envelope<E>`";

/// The handler, as the expansion needs it.
pub(crate) struct Handler {
    pub(crate) is_async: bool,
    /// The parameter type without its reference, and whether it was a reference.
    pub(crate) param: Type,
    pub(crate) by_ref: bool,
    /// The declared return type; `None` for `()`.
    pub(crate) output: Option<Type>,
    /// Where to point errors about the handler as a whole (e.g. a future that is not Send).
    pub(crate) signature_span: Span,
}

pub(crate) fn handler(_args: &Args, item: &OrganItem) -> syn::Result<Handler> {
    match item {
        OrganItem::Fn(item) => check_signature(&item.sig, false),
        OrganItem::Impl(item) => {
            let mut errors = Errors::default();
            if let Some((_, path, _)) = &item.trait_ {
                errors.push(syn::Error::new_spanned(
                    path,
                    "#[organ] goes on an inherent `impl` block (`impl MyOrgan { ... }`), not on a trait impl",
                ));
            }
            if !item.generics.params.is_empty() {
                errors.push(syn::Error::new_spanned(
                    &item.generics,
                    "organs cannot be generic: a spine routes to one concrete handler per event type",
                ));
            }
            let handle = item.items.iter().find_map(|i| match i {
                ImplItem::Fn(f) if f.sig.ident == "handle" => Some(f),
                _ => None,
            });
            let result = match handle {
                Some(handle) => check_signature(&handle.sig, true),
                None => Err(syn::Error::new_spanned(
                    &item.self_ty,
                    "an `impl` block with #[organ] needs a method `fn handle(&self, event: &EventType)` (or `async fn`)",
                )),
            };
            match result {
                Ok(handler) => errors.finish().map(|()| handler),
                Err(error) => {
                    errors.push(error);
                    errors.finish().map(|()| unreachable_handler())
                }
            }
        }
    }
}

/// Never used: `Errors::finish` always fails when this is reached.
fn unreachable_handler() -> Handler {
    Handler {
        is_async: false,
        param: syn::parse_quote!(()),
        by_ref: false,
        output: None,
        signature_span: Span::call_site(),
    }
}

fn check_signature(sig: &Signature, method: bool) -> syn::Result<Handler> {
    let mut errors = Errors::default();
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "organs cannot be generic: a spine routes to one concrete handler per event type",
        ));
    }
    let mut inputs = sig.inputs.iter();
    if method {
        match inputs.next() {
            Some(FnArg::Receiver(receiver)) => {
                if receiver.reference.is_none() {
                    errors.push(syn::Error::new_spanned(
                        receiver,
                        "`handle` must take `&self`, not `self`: the spine keeps the organ and calls it for every event",
                    ));
                } else if receiver.mutability.is_some() {
                    errors.push(syn::Error::new_spanned(
                        receiver,
                        "`handle` must take `&self`, not `&mut self`: organs are shared across events; keep mutable state in a `Mutex` or atomics",
                    ));
                }
            }
            _ => errors.push(syn::Error::new_spanned(
                &sig.ident,
                "`handle` must be a method taking `&self` and the event",
            )),
        }
    } else if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        errors.push(syn::Error::new_spanned(
            receiver,
            "a function organ takes only the event; put #[organ] on the `impl` block for a stateful organ",
        ));
        inputs.next();
    }
    let param = match (inputs.next(), inputs.next()) {
        (Some(FnArg::Typed(param)), None) => Some(&*param.ty),
        (Some(_), Some(extra)) => {
            errors.push(syn::Error::new_spanned(
                extra,
                format!("an organ takes exactly one parameter: {PARAM_FORMS}"),
            ));
            None
        }
        (None, _) => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                format!("an organ takes one parameter: {PARAM_FORMS}"),
            ));
            None
        }
        (Some(FnArg::Receiver(_)), None) => None,
    };
    errors.finish()?;
    let Some(param) = param else {
        return Err(syn::Error::new_spanned(sig, "missing parameter"));
    };
    let (param, by_ref) = match param {
        Type::Reference(reference) => {
            if let Some(mutability) = reference.mutability {
                return Err(syn::Error::new_spanned(
                    mutability,
                    format!("an organ cannot take the event by `&mut`: {PARAM_FORMS}"),
                ));
            }
            ((*reference.elem).clone(), true)
        }
        other => (other.clone(), false),
    };
    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some((**ty).clone()),
    };
    Ok(Handler {
        is_async: sig.asyncness.is_some(),
        param,
        by_ref,
        output,
        signature_span: sig.span(),
    })
}
