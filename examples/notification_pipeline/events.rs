//! The events of the notification flow.

use std::collections::BTreeMap;

use necrostack::Event;
use serde::{Deserialize, Serialize};

/// A delivery channel.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Push,
}

impl Channel {
    /// Every channel, in the order the summary lists them.
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Push];

    /// The channel's name in input files and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A request as the user sent it; the validator judges every field.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[event(name = "NOTIFICATION_REQUESTED")]
pub struct NotificationRequested {
    /// Position in the input, from 1: keys the seeded failure draws.
    pub seq: u64,
    pub id: String,
    /// Who it is for (a user name).
    pub recipient: String,
    /// Addresses, each needed only by its channel.
    pub email: String,
    pub phone: String,
    pub device_token: String,
    /// Requested channels as written: "email", "sms", "push".
    pub channels: Vec<String>,
    pub template: String,
    pub fields: BTreeMap<String, String>,
}

/// A request that passed validation.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "NOTIFICATION_VALIDATED")]
pub struct NotificationValidated {
    pub seq: u64,
    pub id: String,
    pub recipient: String,
    pub email: String,
    pub phone: String,
    pub device_token: String,
    /// Distinct, in the order first requested.
    pub channels: Vec<Channel>,
    pub template: String,
    pub fields: BTreeMap<String, String>,
}

/// A request that did not pass, with every reason.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "NOTIFICATION_REJECTED")]
pub struct NotificationRejected {
    pub seq: u64,
    pub id: String,
    pub reasons: Vec<String>,
}

/// An email ready for the email sender.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "EMAIL_QUEUED")]
pub struct EmailQueued {
    pub seq: u64,
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// A text message ready for the SMS sender.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "SMS_QUEUED")]
pub struct SmsQueued {
    pub seq: u64,
    pub id: String,
    pub to: String,
    pub text: String,
}

/// A push notification ready for the push sender.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "PUSH_QUEUED")]
pub struct PushQueued {
    pub seq: u64,
    pub id: String,
    pub device_token: String,
    pub title: String,
}

/// A message went out on one channel.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "NOTIFICATION_SENT")]
pub struct NotificationSent {
    pub id: String,
    pub channel: Channel,
    /// Tries it took.
    pub attempts: u32,
}

/// A message could not go out on one channel: its sender failed on every try the retry
/// policy allowed and the spine dead-lettered it.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "NOTIFICATION_FAILED")]
pub struct NotificationFailed {
    pub id: String,
    pub channel: Channel,
    pub attempts: u32,
    pub error: String,
}
