//! Organs declared inside `macro_rules!`: the tokens carry the declarative macro's
//! hygiene, and the code `#[organ]` generates around them must still resolve its own
//! locals (`self`, the envelope, the argument). A regression here is a compile error.

use std::sync::atomic::{AtomicU32, Ordering};

use necrostack::{organ, testing, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping(u32);

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong(u32);

macro_rules! counting_organ {
    ($name:ident, $event:ty, $e:ident) => {
        #[derive(Default)]
        struct $name(AtomicU32);

        #[organ(listens_to = $event)]
        impl $name {
            fn handle(&self, $e: &$event) -> Pong {
                Pong(self.0.fetch_add(1, Ordering::SeqCst) + $e.0)
            }
        }
    };
}

macro_rules! function_organ {
    ($name:ident, $event:ty, $e:ident) => {
        #[organ(listens_to = $event)]
        async fn $name($e: $event) -> Pong {
            Pong($e.0 * 2)
        }
    };
}

counting_organ!(Counter, Ping, ping);
function_organ!(doubler, Ping, ping);

#[tokio::test]
async fn organs_declared_in_macro_rules_work() {
    let outcome = testing::Flow::new()
        .organ(Counter::default())
        .organ(doubler)
        .emit(Ping(10))
        .emit(Ping(20))
        .run()
        .await
        .unwrap();
    assert_eq!(
        outcome.events::<Pong>(),
        [&Pong(10), &Pong(20), &Pong(21), &Pong(40)]
    );
}
