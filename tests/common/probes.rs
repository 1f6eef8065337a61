//! Test organs whose behaviour is chosen at run time, for property tests that generate
//! sets of organs. They implement `Organ` by hand, which also exercises the trait as a
//! third party would use it.

#![allow(dead_code)]

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use necrostack::{Emit, Envelope, Event, Handling, Organ};
use serde::{Deserialize, Serialize};

/// Test events carrying a sequence number.
pub trait Seq {
    fn seq(&self) -> u32;
}

macro_rules! seq_events {
    ($($name:ident),*) => {$(
        #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
        pub struct $name(pub u32);
        impl Seq for $name {
            fn seq(&self) -> u32 {
                self.0
            }
        }
    )*};
}

seq_events!(A, B, C, D);

/// What a probe does when called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Ok,
    AsyncOk,
    Fail,
    AsyncFail,
    Panic,
    AsyncPanic,
}

impl Behavior {
    pub fn fails(self) -> bool {
        !matches!(self, Behavior::Ok | Behavior::AsyncOk)
    }
}

/// One call of a probe: (probe id, event type, event seq).
pub type Log = Arc<Mutex<Vec<(usize, &'static str, u32)>>>;

pub struct Probe<E> {
    pub id: usize,
    pub log: Log,
    pub behavior: Behavior,
    _event: PhantomData<fn(E)>,
}

impl<E> Probe<E> {
    pub fn new(id: usize, log: &Log, behavior: Behavior) -> Self {
        Probe {
            id,
            log: Arc::clone(log),
            behavior,
            _event: PhantomData,
        }
    }
}

#[derive(Debug)]
pub struct ProbeError(pub usize);

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "probe {} failed on purpose", self.0)
    }
}

impl std::error::Error for ProbeError {}

impl<E: Event + Seq> Organ for Probe<E> {
    type Event = E;
    const NAME: &'static str = "probe";

    fn call<'a>(&'a self, event: &'a Envelope<E>) -> Handling<'a> {
        self.log
            .lock()
            .unwrap()
            .push((self.id, E::NAME, event.payload().seq()));
        let id = self.id;
        match self.behavior {
            Behavior::Ok => Handling::Ready(Ok(Emit::new())),
            Behavior::Fail => Handling::Ready(Err(Box::new(ProbeError(id)))),
            Behavior::Panic => panic!("probe {id} panics on purpose"),
            Behavior::AsyncOk => Handling::Pending(Box::pin(async move {
                tokio::task::yield_now().await;
                Ok(Emit::new())
            })),
            Behavior::AsyncFail => Handling::Pending(Box::pin(async move {
                tokio::task::yield_now().await;
                Err(Box::new(ProbeError(id)) as necrostack::BoxError)
            })),
            Behavior::AsyncPanic => Handling::Pending(Box::pin(async move {
                tokio::task::yield_now().await;
                panic!("probe {id} panics on purpose (async)")
            })),
        }
    }
}

/// Silences the default panic hook's output for panics the tests cause on purpose.
pub fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !text.contains("on purpose") {
                default(info);
            }
        }));
    });
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
