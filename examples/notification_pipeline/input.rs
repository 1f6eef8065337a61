//! Where requests come from: a JSON or CSV file, or a seeded generator.
//!
//! Every entry of a file becomes a `NOTIFICATION_REQUESTED` with its fields as text, so
//! a bad field is rejected by the validator with a reason instead of being lost here.
//! Only a file that is not a notification file at all is an error.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::csv;
use crate::events::NotificationRequested;
use crate::file_input::{self, as_text, InputError};
use crate::organs::template_names;
use crate::rng::Rng;

/// The columns of a CSV file; `channels` separated by `|`, `fields` as `key=value;...`.
pub const COLUMNS: [&str; 8] = [
    "id",
    "recipient",
    "email",
    "phone",
    "device_token",
    "channels",
    "template",
    "fields",
];
/// Columns a CSV file must have; the addresses and fields may be left out.
const REQUIRED: [&str; 4] = ["id", "recipient", "channels", "template"];

/// Reads requests from `path`: JSON if it ends in `.json` or starts with `{`, else CSV.
pub fn read_file(path: &str) -> Result<Vec<NotificationRequested>, InputError> {
    let text = file_input::read(path)?;
    let mut requests = if file_input::is_json(path, &text) {
        parse_json(path, &text)?
    } else {
        parse_csv(path, &text)?
    };
    for (seq, request) in (1..).zip(&mut requests) {
        request.seq = seq;
    }
    Ok(requests)
}

fn parse_json(path: &str, text: &str) -> Result<Vec<NotificationRequested>, InputError> {
    let entries = file_input::json_list(path, text, "notifications")?;
    Ok(entries
        .iter()
        .map(|entry| {
            let text = |field: &str| as_text(entry.get(field));
            NotificationRequested {
                seq: 0,
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
        })
        .collect())
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

fn parse_csv(path: &str, text: &str) -> Result<Vec<NotificationRequested>, InputError> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header = lines.next().map(file_input::csv_header).unwrap_or_default();
    if let Some(column) = REQUIRED.iter().find(|c| !header.iter().any(|h| h == *c)) {
        return Err(InputError::MissingColumn {
            path: path.to_owned(),
            column,
            needs: &REQUIRED,
        });
    }
    let index = COLUMNS.map(|c| header.iter().position(|h| h == c));
    Ok(lines
        .map(|line| {
            let cells = csv::split_line(line);
            let [id, recipient, email, phone, device_token, channels, template, fields] =
                index.map(|i| i.and_then(|i| cells.get(i).cloned()).unwrap_or_default());
            NotificationRequested {
                seq: 0,
                id,
                recipient,
                email,
                phone,
                device_token,
                channels: split_channels(&channels),
                template,
                fields: split_fields(&fields),
            }
        })
        .collect())
}

/// `count` requests drawn from `seed`: one to three channels each, one of the templates
/// with its fields, and about one in twelve invalid in one of five ways.
pub fn generate(count: u64, seed: u64) -> Vec<NotificationRequested> {
    let mut rng = Rng::new(seed);
    let templates: Vec<&str> = template_names().collect();
    (1..=count)
        .map(|seq| {
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
        .collect()
}
