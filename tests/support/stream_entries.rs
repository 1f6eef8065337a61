//! Reads a whole Redis stream in a test, decoding every entry's envelope (for checks on
//! what a run wrote: outputs exactly once, nothing lost).
#![allow(dead_code)] // each test file uses a part of this helper

use necrostack::AnyEnvelope;

/// Every envelope of `stream` at `url`, in stream order.
pub async fn envelopes(url: &str, stream: &str) -> Vec<AnyEnvelope> {
    let mut conn = crate::redis_server::connect(url).await;
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|entry| {
            let json: Vec<u8> = entry.get("envelope").expect("envelope field");
            AnyEnvelope::from_json(&json).expect("valid envelope")
        })
        .collect()
}
