//! The in-memory backend against a `VecDeque` model (issue 2, property 9), and its
//! capacity, close and release behaviour.

#[path = "common/probes.rs"]
mod probes;

use std::collections::VecDeque;
use std::time::Duration;

use necrostack::backend::memory::MemoryReceipt;
use necrostack::backend::{BackendError, Completion, DeadLetter, DeadLetterReason};
use necrostack::{Backend, Envelope, InMemoryBackend};
use probes::{runtime, A};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Enqueue(Vec<u32>),
    Pull { max: usize, wait: bool },
    Complete(Vec<u32>),
    ReleaseLast(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(any::<u32>(), 0..5).prop_map(Op::Enqueue),
        3 => (1usize..6, any::<bool>()).prop_map(|(max, wait)| Op::Pull { max, wait }),
        1 => prop::collection::vec(any::<u32>(), 0..3).prop_map(Op::Complete),
        1 => (0usize..4).prop_map(Op::ReleaseLast),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Property 9: generated interleavings of enqueue, pull (with and without waiting for
    /// the timeout), completions that emit, and releases agree with a VecDeque model.
    #[test]
    fn fifo_agrees_with_a_vecdeque_model(ops in prop::collection::vec(op(), 1..30)) {
        let rt = runtime();
        let backend = InMemoryBackend::new();
        let mut model: VecDeque<u32> = VecDeque::new();
        let mut last_pulled = Vec::new();
        rt.block_on(async {
            for op in ops {
                match op {
                    Op::Enqueue(values) => {
                        backend.enqueue(values.iter().map(|v| Envelope::new(A(*v)).into()).collect()).await.unwrap();
                        model.extend(values);
                    }
                    Op::Pull { max, wait } => {
                        let timeout = if wait { Duration::from_millis(1) } else { Duration::ZERO };
                        let batch = backend.pull(max, timeout).await.unwrap();
                        let got: Vec<u32> = batch.iter().map(|d| d.envelope.downcast_ref::<A>().unwrap().0).collect();
                        let expected: Vec<u32> = (0..max.min(model.len())).filter_map(|_| model.pop_front()).collect();
                        prop_assert_eq!(&got, &expected);
                        last_pulled = batch.into_vec();
                    }
                    Op::Complete(values) => {
                        let emitted = values.iter().map(|v| Envelope::new(A(*v)).into()).collect();
                        backend.complete(MemoryReceipt::default(), Completion { emitted, ..Completion::default() }).await.unwrap();
                        model.extend(values);
                    }
                    Op::ReleaseLast(n) => {
                        let n = n.min(last_pulled.len());
                        let released: Vec<_> = last_pulled.drain(..n).collect();
                        for delivery in released.iter().rev() {
                            model.push_front(delivery.envelope.downcast_ref::<A>().unwrap().0);
                        }
                        backend.release(released).await.unwrap();
                    }
                }
                prop_assert_eq!(backend.len(), model.len());
            }
            Ok(())
        })?;
    }
}

#[test]
fn pull_returns_nothing_when_the_timeout_expires() {
    runtime().block_on(async {
        let backend = InMemoryBackend::new();
        let started = tokio::time::Instant::now();
        let batch = backend.pull(10, Duration::from_millis(30)).await.unwrap();
        assert!(batch.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(30));
    });
}

#[test]
fn a_waiting_pull_wakes_up_when_an_event_arrives() {
    runtime().block_on(async {
        let backend = InMemoryBackend::new();
        let producer = backend.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            producer
                .enqueue(vec![Envelope::new(A(7)).into()])
                .await
                .unwrap();
        });
        let batch = backend.pull(10, Duration::from_secs(10)).await.unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].envelope.downcast_ref::<A>(), Some(&A(7)));
        handle.await.unwrap();
    });
}

#[test]
fn released_events_are_delivered_again_first_with_a_higher_attempt() {
    runtime().block_on(async {
        let backend = InMemoryBackend::new();
        backend
            .enqueue((0..4).map(|n| Envelope::new(A(n)).into()).collect())
            .await
            .unwrap();
        let first = backend.pull(2, Duration::ZERO).await.unwrap();
        assert!(first.iter().all(|d| d.attempt == 1));
        backend.release(first.into_vec()).await.unwrap();
        let again = backend.pull(4, Duration::ZERO).await.unwrap();
        let seen: Vec<(u32, u32)> = again
            .iter()
            .map(|d| (d.envelope.downcast_ref::<A>().unwrap().0, d.attempt))
            .collect();
        assert_eq!(seen, [(0, 2), (1, 2), (2, 1), (3, 1)]);
    });
}

#[test]
fn a_bounded_queue_applies_backpressure_to_producers() {
    runtime().block_on(async {
        let backend = InMemoryBackend::bounded(2);
        backend
            .enqueue(vec![Envelope::new(A(0)).into(), Envelope::new(A(1)).into()])
            .await
            .unwrap();
        let producer = backend.clone();
        let blocked = tokio::spawn(async move {
            producer
                .enqueue(vec![Envelope::new(A(2)).into()])
                .await
                .unwrap();
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!blocked.is_finished(), "the third event must wait for room");
        assert_eq!(backend.len(), 2);
        let batch = backend.pull(1, Duration::ZERO).await.unwrap();
        assert_eq!(batch.len(), 1);
        tokio::time::timeout(Duration::from_secs(5), blocked)
            .await
            .expect("the producer resumes once there is room")
            .unwrap();
        assert_eq!(backend.len(), 2);
        // Events emitted by organs are never held back: the spine would wait on itself.
        let emitted = vec![Envelope::new(A(3)).into(), Envelope::new(A(4)).into()];
        backend
            .complete(
                MemoryReceipt::default(),
                Completion {
                    emitted: emitted.into(),
                    ..Completion::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(backend.len(), 4);
    });
}

#[test]
fn close_discards_pending_events_and_refuses_more() {
    runtime().block_on(async {
        let backend = InMemoryBackend::new();
        backend
            .enqueue(vec![Envelope::new(A(1)).into()])
            .await
            .unwrap();
        let waiter = backend.clone();
        backend.close().await.unwrap();
        assert!(backend.is_empty());
        assert!(matches!(
            waiter.pull(1, Duration::from_secs(5)).await,
            Err(BackendError::Closed)
        ));
        assert!(matches!(
            backend.enqueue(vec![Envelope::new(A(2)).into()]).await,
            Err(BackendError::Closed)
        ));
    });
}

#[test]
fn close_wakes_a_waiting_pull() {
    runtime().block_on(async {
        let backend = InMemoryBackend::new();
        let closer = backend.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            closer.close().await.unwrap();
        });
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            backend.pull(1, Duration::from_secs(60)),
        )
        .await;
        assert!(matches!(result, Ok(Err(BackendError::Closed))));
    });
}

#[test]
fn is_empty_follows_the_queue() {
    runtime().block_on(async {
        let backend = InMemoryBackend::new();
        assert!(backend.is_empty());
        backend
            .enqueue(vec![Envelope::new(A(1)).into(), Envelope::new(A(2)).into()])
            .await
            .unwrap();
        assert!(!backend.is_empty());
        let first = backend.pull(1, Duration::ZERO).await.unwrap();
        assert!(!backend.is_empty(), "one event is still waiting");
        let second = backend.pull(1, Duration::ZERO).await.unwrap();
        assert!(backend.is_empty());
        backend.release(first.into_vec()).await.unwrap();
        assert!(!backend.is_empty());
        backend.pull(1, Duration::ZERO).await.unwrap();
        assert!(backend.is_empty());
        let completion = Completion {
            emitted: vec![Envelope::new(A(3)).into()].into(),
            ..Completion::default()
        };
        backend
            .complete(MemoryReceipt::default(), completion)
            .await
            .unwrap();
        assert!(!backend.is_empty());
        drop(second);
    });
}

#[test]
fn debug_shows_pending_capacity_dead_letters_and_closed() {
    runtime().block_on(async {
        let backend = InMemoryBackend::bounded(5);
        backend
            .enqueue(vec![Envelope::new(A(1)).into(), Envelope::new(A(2)).into()])
            .await
            .unwrap();
        assert_eq!(
            format!("{backend:?}"),
            "InMemoryBackend { pending: 2, scheduled: 0, capacity: Some(5), dead_letters: 0, closed: false }"
        );
        backend.close().await.unwrap();
        assert_eq!(
            format!("{:?}", InMemoryBackend::new()),
            "InMemoryBackend { pending: 0, scheduled: 0, capacity: None, dead_letters: 0, closed: false }"
        );
        assert_eq!(
            format!("{backend:?}"),
            "InMemoryBackend { pending: 0, scheduled: 0, capacity: Some(5), dead_letters: 0, closed: true }"
        );
    });
}

#[test]
fn take_dead_letters_returns_them_once_and_dead_letters_keeps_them() {
    runtime().block_on(async {
        let backend = InMemoryBackend::new();
        let letter = |n| DeadLetter {
            envelope: Envelope::new(A(n)).into(),
            reason: DeadLetterReason::Undecodable {
                error: format!("test {n}"),
            },
            at: chrono::Utc::now(),
        };
        let completion = Completion {
            dead_letters: vec![letter(1), letter(2)],
            ..Completion::default()
        };
        backend
            .complete(MemoryReceipt::default(), completion)
            .await
            .unwrap();
        assert_eq!(backend.dead_letters().len(), 2);
        assert_eq!(backend.dead_letters().len(), 2, "reading does not remove");
        let taken = backend.take_dead_letters();
        let seqs: Vec<u32> = taken
            .iter()
            .map(|d| d.envelope.downcast_ref::<A>().unwrap().0)
            .collect();
        assert_eq!(seqs, [1, 2], "oldest first");
        assert!(backend.take_dead_letters().is_empty());
        assert!(backend.dead_letters().is_empty());
    });
}
