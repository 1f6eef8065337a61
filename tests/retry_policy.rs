//! `RetryPolicy`'s backoff: exponential from the initial delay, capped, and with full
//! jitter a wait drawn from zero to that delay (never more); without jitter exactly it.

use std::time::Duration;

use necrostack::RetryPolicy;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn delays_double_from_the_initial_one_up_to_the_cap() {
    let policy = RetryPolicy::new(10).backoff(ms(10), ms(100));
    let delays: Vec<Duration> = (2..=7)
        .map(|attempt| policy.delay_before(attempt))
        .collect();
    assert_eq!(delays, [ms(10), ms(20), ms(40), ms(80), ms(100), ms(100)]);
    assert_eq!(
        policy.delay_before(u32::MAX),
        ms(100),
        "no overflow far out"
    );
}

#[test]
fn without_jitter_the_wait_is_exactly_the_delay() {
    let policy = RetryPolicy::new(5).backoff(ms(10), ms(100)).jitter(false);
    for attempt in 2..=6 {
        assert_eq!(
            policy.jittered_delay_before(attempt),
            policy.delay_before(attempt)
        );
    }
}

#[test]
fn with_jitter_the_wait_spreads_from_zero_to_the_delay() {
    let policy = RetryPolicy::new(5).backoff(ms(1_000), ms(1_000));
    let waits: Vec<Duration> = (0..200).map(|_| policy.jittered_delay_before(3)).collect();
    assert!(
        waits.iter().all(|wait| *wait <= ms(1_000)),
        "never past the delay"
    );
    let below_half = waits.iter().filter(|wait| **wait < ms(500)).count();
    assert!(
        (40..=160).contains(&below_half),
        "uniform over [0, delay]: {below_half} of 200 below half"
    );
    let distinct: std::collections::HashSet<Duration> = waits.into_iter().collect();
    assert!(distinct.len() > 150, "drawn at random, not one fixed value");
    // The default is jitter on.
    let default = RetryPolicy::new(5).backoff(ms(1_000), ms(1_000));
    assert!((0..50).any(|_| default.jittered_delay_before(2) != ms(1_000)));
    // A zero delay stays zero.
    let zero = RetryPolicy::new(3).backoff(Duration::ZERO, Duration::ZERO);
    assert_eq!(zero.jittered_delay_before(2), Duration::ZERO);
}
