//! The organs: validation, the channel router, and three senders over one seeded
//! failure model.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use necrostack::{organ, Emit};

use crate::events::*;
use crate::rng::draw;

/// A template: its name, the fields it needs, and its subject and body with `{field}`
/// placeholders.
struct Template {
    name: &'static str,
    fields: &'static [&'static str],
    subject: &'static str,
    body: &'static str,
}

const TEMPLATES: [Template; 3] = [
    Template {
        name: "welcome",
        fields: &["name"],
        subject: "Welcome, {name}",
        body: "Hello {name}, your account is ready.",
    },
    Template {
        name: "password_reset",
        fields: &["name", "code"],
        subject: "Your reset code",
        body: "{name}, your password reset code is {code}.",
    },
    Template {
        name: "order_shipped",
        fields: &["name", "order_id"],
        subject: "Order {order_id} shipped",
        body: "{name}, order {order_id} is on its way.",
    },
];

/// The names of the templates, for help texts and the generator.
pub fn template_names() -> impl Iterator<Item = &'static str> {
    TEMPLATES.iter().map(|t| t.name)
}

fn template(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

fn render(text: &str, fields: &std::collections::BTreeMap<String, String>) -> String {
    fields.iter().fold(text.to_owned(), |out, (key, value)| {
        out.replace(&format!("{{{key}}}"), value)
    })
}

fn valid_email(address: &str) -> bool {
    match address.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty() && domain.contains('.') && !domain.starts_with('.')
        }
        None => false,
    }
}

fn valid_phone(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Checks the recipient, the channels (and each channel's address) and the template's
/// fields; returns the normalised request or every reason it is invalid.
pub fn validate(request: &NotificationRequested) -> Result<NotificationValidated, Vec<String>> {
    let mut reasons = Vec::new();
    let id = request.id.trim();
    if id.is_empty() {
        reasons.push("id is empty".to_owned());
    }
    if request.recipient.trim().is_empty() {
        reasons.push("recipient is empty".to_owned());
    }
    let mut channels = Vec::new();
    for written in &request.channels {
        let channel = match written.trim().to_lowercase().as_str() {
            "email" => Channel::Email,
            "sms" => Channel::Sms,
            "push" => Channel::Push,
            _ => {
                reasons.push(format!(
                    "unknown channel {written:?} (channels: email, sms, push)"
                ));
                continue;
            }
        };
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    if request.channels.is_empty() {
        reasons.push("no channel requested".to_owned());
    }
    let (email, phone, device) = (
        request.email.trim(),
        request.phone.trim(),
        request.device_token.trim(),
    );
    if channels.contains(&Channel::Email) && !valid_email(email) {
        reasons.push(format!(
            "email channel needs a valid email address, not {email:?}"
        ));
    }
    if channels.contains(&Channel::Sms) && !valid_phone(phone) {
        reasons.push(format!(
            "sms channel needs a phone number (+ and 7 to 15 digits), not {phone:?}"
        ));
    }
    if channels.contains(&Channel::Push) && device.is_empty() {
        reasons.push("push channel needs a device_token".to_owned());
    }
    let template_name = request.template.trim().to_lowercase();
    match template(&template_name) {
        None => reasons.push(format!(
            "unknown template {:?} (templates: {})",
            request.template,
            template_names().collect::<Vec<_>>().join(", ")
        )),
        Some(t) => {
            for field in t.fields {
                if request
                    .fields
                    .get(*field)
                    .is_none_or(|v| v.trim().is_empty())
                {
                    reasons.push(format!("template {} needs the field {field:?}", t.name));
                }
            }
        }
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    Ok(NotificationValidated {
        seq: request.seq,
        id: id.to_owned(),
        recipient: request.recipient.trim().to_owned(),
        email: email.to_owned(),
        phone: phone.to_owned(),
        device_token: device.to_owned(),
        channels,
        template: template_name,
        fields: request.fields.clone(),
    })
}

/// The validator: a sync function organ. It returns `Emit`, which can hold events of
/// different types: here the validated or the rejected request. `emits` lists them, for
/// the picture of the flow (`--topology`).
#[organ(
    listens_to = NotificationRequested,
    name = "Validate",
    emits = [NotificationValidated, NotificationRejected]
)]
pub fn validate_request(request: &NotificationRequested) -> Emit {
    match validate(request) {
        Ok(valid) => Emit::new().with(valid),
        Err(reasons) => {
            tracing::warn!(id = %request.id, seq = request.seq, ?reasons, "notification rejected");
            Emit::new().with(NotificationRejected {
                seq: request.seq,
                id: request.id.clone(),
                reasons,
            })
        }
    }
}

/// The router: one queued event per requested channel, rendered from the template.
#[organ(
    listens_to = NotificationValidated,
    name = "Router",
    emits = [EmailQueued, SmsQueued, PushQueued]
)]
pub async fn route(request: NotificationValidated) -> Emit {
    let mut emit = Emit::new();
    let Some(t) = template(&request.template) else {
        // Validated requests name a known template; a foreign producer's may not.
        tracing::warn!(id = %request.id, template = %request.template, "unknown template");
        return emit;
    };
    let subject = render(t.subject, &request.fields);
    let body = render(t.body, &request.fields);
    for channel in &request.channels {
        let (seq, id) = (request.seq, request.id.clone());
        match channel {
            Channel::Email => emit.push(EmailQueued {
                seq,
                id,
                to: request.email.clone(),
                subject: subject.clone(),
                body: body.clone(),
            }),
            Channel::Sms => emit.push(SmsQueued {
                seq,
                id,
                to: request.phone.clone(),
                text: body.clone(),
            }),
            Channel::Push => emit.push(PushQueued {
                seq,
                id,
                device_token: request.device_token.clone(),
                title: subject.clone(),
            }),
        }
    }
    emit
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth another try (the provider timed out, was busy...).
    #[error("{channel} provider timed out (attempt {attempt})")]
    Transient { channel: Channel, attempt: u32 },
    /// Would fail on every try (the address bounces): its source marks it
    /// [`necrostack::Permanent`], so the spine does not retry it.
    #[error("{channel} provider rejected the address")]
    Permanent {
        channel: Channel,
        #[source]
        reason: necrostack::Permanent,
    },
}

/// The simulated providers' behaviour, shared by the three senders: each message
/// (input position and channel) fails permanently with probability `permanent_rate`,
/// and otherwise each try fails with probability `transient_rate`. Draws are keyed, not
/// sequential, so results do not depend on the order or concurrency of sends.
pub struct FailureModel {
    seed: u64,
    transient_rate: f64,
    permanent_rate: f64,
    attempts: Mutex<HashMap<(u64, Channel), u32>>,
    /// Tries that failed transiently / permanently, for the summary.
    pub transient: AtomicU64,
    pub permanent: AtomicU64,
}

impl FailureModel {
    pub fn new(seed: u64, transient_rate: f64, permanent_rate: f64) -> Self {
        FailureModel {
            seed,
            transient_rate,
            permanent_rate,
            attempts: Mutex::new(HashMap::new()),
            transient: AtomicU64::new(0),
            permanent: AtomicU64::new(0),
        }
    }

    /// One try at sending message `seq` on `channel`: its attempt number, or the error.
    fn attempt(&self, seq: u64, channel: Channel) -> Result<u32, SendError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
            let n = attempts.entry((seq, channel)).or_insert(0);
            *n += 1;
            *n
        };
        let key = channel as u64 + 1;
        if draw(self.seed, &[seq, key, 0]) < self.permanent_rate {
            self.permanent.fetch_add(1, Ordering::Relaxed);
            return Err(SendError::Permanent {
                channel,
                reason: necrostack::Permanent::new("the address bounces"),
            });
        }
        if draw(self.seed, &[seq, key, u64::from(attempt)]) < self.transient_rate {
            self.transient.fetch_add(1, Ordering::Relaxed);
            return Err(SendError::Transient { channel, attempt });
        }
        Ok(attempt)
    }
}

/// The email sender: async, with the provider's latency.
pub struct EmailSender {
    pub failures: Arc<FailureModel>,
    pub latency: Duration,
}

#[organ(listens_to = EmailQueued)]
impl EmailSender {
    async fn handle(&self, email: &EmailQueued) -> Result<NotificationSent, SendError> {
        tokio::time::sleep(self.latency).await;
        let attempts = self.failures.attempt(email.seq, Channel::Email)?;
        tracing::debug!(id = %email.id, to = %email.to, subject = %email.subject, "email sent");
        Ok(NotificationSent {
            id: email.id.clone(),
            channel: Channel::Email,
            attempts,
        })
    }
}

/// The SMS sender: sync (the gateway call blocks briefly and needs no await).
pub struct SmsSender {
    pub failures: Arc<FailureModel>,
}

#[organ(listens_to = SmsQueued)]
impl SmsSender {
    fn handle(&self, sms: &SmsQueued) -> Result<NotificationSent, SendError> {
        let attempts = self.failures.attempt(sms.seq, Channel::Sms)?;
        tracing::debug!(id = %sms.id, to = %sms.to, "sms sent");
        Ok(NotificationSent {
            id: sms.id.clone(),
            channel: Channel::Sms,
            attempts,
        })
    }
}

/// The push sender: async, a little faster than email.
pub struct PushSender {
    pub failures: Arc<FailureModel>,
    pub latency: Duration,
}

#[organ(listens_to = PushQueued)]
impl PushSender {
    async fn handle(&self, push: &PushQueued) -> Result<NotificationSent, SendError> {
        tokio::time::sleep(self.latency / 2).await;
        let attempts = self.failures.attempt(push.seq, Channel::Push)?;
        tracing::debug!(id = %push.id, title = %push.title, "push sent");
        Ok(NotificationSent {
            id: push.id.clone(),
            channel: Channel::Push,
            attempts,
        })
    }
}
