//! Where requests come from: a JSON or CSV file read as it is handled, or a seeded
//! generator.
//!
//! Every entry of a file becomes a `NOTIFICATION_REQUESTED` with its fields as text, so
//! a bad field is rejected by the validator with a reason instead of being lost here.
//! Only a file that is not a notification file at all is an error.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::events::NotificationRequested;
use crate::file_input::{as_text, Fields, Shape};
use crate::organs::template_names;
use crate::rng::Rng;

/// Columns a CSV file must have; `email`, `phone`, `device_token` and `fields` may be
/// left out. `channels` are separated by `|`, `fields` written `key=value;...`.
const REQUIRED: [&str; 4] = ["id", "recipient", "channels", "template"];

/// What a request file holds: `{"notifications": [...]}`, or a CSV with the columns.
pub const SHAPE: Shape = Shape {
    key: "notifications",
    needs: &REQUIRED,
};

/// The request in `entry`, the `seq`-th of the file (from 1). In JSON, `channels` may
/// be a list and `fields` an object; in CSV they are the text forms above.
pub fn request(seq: u64, entry: &Fields) -> NotificationRequested {
    let text = |field: &str| as_text(entry.get(field));
    NotificationRequested {
        seq,
        id: text("id"),
        recipient: text("recipient"),
        email: text("email"),
        phone: text("phone"),
        device_token: text("device_token"),
        channels: match entry.get("channels") {
            Some(Value::Array(items)) => items.iter().map(|v| as_text(Some(v))).collect(),
            other => split_channels(&as_text(other)),
        },
        template: text("template"),
        fields: match entry.get("fields") {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| (k.clone(), as_text(Some(v))))
                .collect(),
            other => split_fields(&as_text(other)),
        },
    }
}

fn split_channels(text: &str) -> Vec<String> {
    text.split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `name=Ada;code=42` → {name: Ada, code: 42}; a part without `=` is a key with no value.
fn split_fields(text: &str) -> BTreeMap<String, String> {
    text.split(';')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

/// `count` requests drawn from `seed`: one to three channels each, one of the templates
/// with its fields, and about one in twelve invalid in one of five ways.
pub fn generate(count: u64, seed: u64) -> impl Iterator<Item = NotificationRequested> {
    let mut rng = Rng::new(seed);
    let templates: Vec<&str> = template_names().collect();
    (1..=count).map(move |seq| {
        let user = rng.range(1, 500);
        let mask = rng.range(1, 7);
        let channels: Vec<String> = [(1, "email"), (2, "sms"), (4, "push")]
            .iter()
            .filter(|(bit, _)| mask & bit != 0)
            .map(|(_, name)| (*name).to_owned())
            .collect();
        let template = (*rng.pick(&templates)).to_owned();
        let mut fields = BTreeMap::from([("name".to_owned(), format!("User {user}"))]);
        fields.insert("code".into(), format!("{:06}", rng.range(0, 999_999)));
        fields.insert("order_id".into(), format!("ORD-{}", rng.range(1000, 9999)));
        let mut request = NotificationRequested {
            seq,
            id: format!("n-{seq:05}"),
            recipient: format!("user-{user}"),
            email: format!("user{user}@example.com"),
            phone: format!("+1555{user:07}"),
            device_token: format!("device-{user}"),
            channels,
            template,
            fields,
        };
        if rng.unit() < 1.0 / 12.0 {
            match rng.range(0, 4) {
                0 => request.recipient.clear(),
                1 => request.channels.push("fax".into()),
                2 => request.template = "newsletter".into(),
                3 => {
                    request.fields.remove("name");
                }
                _ => {
                    request.channels = vec!["email".into()];
                    request.email = request.email.replace('@', " at ");
                }
            }
        }
        request
    })
}
