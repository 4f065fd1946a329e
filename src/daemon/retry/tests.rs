//! The queue's rules, driven by explicit times (seconds since the epoch of the test).

use super::*;

fn s(secs: u64) -> Mono {
    Duration::from_secs(secs)
}

type Q = Queue<&'static str, &'static str>;

fn q() -> Q {
    Queue::new(Backoff::WEBHOOK)
}

/// Takes the next attempt at `now` and reports `outcome` at once.
fn attempt(q: &mut Q, now: Mono, outcome: Outcome) -> Option<(&'static str, Then)> {
    let a = q.poll(now)?;
    Some((a.item, q.on_result(a.ticket, outcome, now)))
}

#[test]
fn backoff_doubles_from_two_seconds_to_its_cap() {
    let w: Vec<u64> = (1..=8)
        .map(|f| Backoff::WEBHOOK.after(f).as_secs())
        .collect();
    assert_eq!(w, [2, 4, 8, 16, 32, 60, 60, 60]);
    let e: Vec<u64> = (1..=10)
        .map(|f| Backoff::EMAIL.after(f).as_secs())
        .collect();
    assert_eq!(e, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    assert_eq!(Backoff::EMAIL.after(u32::MAX), s(300), "no overflow");
}

#[test]
fn due_deliveries_go_one_at_a_time_in_the_order_queued() {
    let mut q = q();
    assert!(q.push("a", "a", 0, s(0)));
    assert!(q.push("b", "b", 0, s(0)));
    let a = q.poll(s(0)).unwrap();
    assert_eq!(a.item, "a");
    assert_eq!(q.poll(s(0)), None, "one attempt at a time");
    assert_eq!(
        q.next_due(),
        None,
        "nothing to wait for while one is in hand"
    );
    assert_eq!(q.on_result(a.ticket, Outcome::Delivered, s(1)), Then::Done);
    assert_eq!(
        attempt(&mut q, s(1), Outcome::Delivered),
        Some(("b", Then::Done))
    );
    assert!(q.is_empty());
    assert_eq!(q.poll(s(1)), None);
    assert_eq!(q.next_due(), None);
}

#[test]
fn a_failed_delivery_waits_its_backoff_and_does_not_hold_back_the_others() {
    let mut q = q();
    q.push("a", "a", 0, s(0));
    q.push("b", "b", 0, s(0));
    let wait = Then::Retry {
        wait: s(2),
        failures: 1,
    };
    assert_eq!(attempt(&mut q, s(10), Outcome::Failed), Some(("a", wait)));
    // "a" is due at 12: "b" goes first.
    assert_eq!(q.next_due(), Some(s(0)));
    assert_eq!(attempt(&mut q, s(10), Outcome::Failed), Some(("b", wait)));
    assert_eq!(q.next_due(), Some(s(12)));
    assert_eq!(q.poll(s(11)), None, "not due before its backoff");
    let a = q.poll(s(12)).unwrap();
    assert_eq!((a.item, a.failures), ("a", 1));
    assert_eq!(
        q.on_result(a.ticket, Outcome::Failed, s(13)),
        Then::Retry {
            wait: s(4),
            failures: 2
        },
        "failures in a row double the wait, counted from the result"
    );
    assert_eq!(
        attempt(&mut q, s(13), Outcome::Delivered),
        Some(("b", Then::Done))
    );
    assert_eq!(q.next_due(), Some(s(17)));
    assert_eq!(
        attempt(&mut q, s(17), Outcome::Delivered),
        Some(("a", Then::Done))
    );
    assert!(q.is_empty());
}

#[test]
fn a_due_retry_goes_before_what_was_queued_after_it() {
    let mut q = q();
    q.push("a", "a", 0, s(0));
    attempt(&mut q, s(0), Outcome::Failed);
    q.push("b", "b", 0, s(5));
    assert_eq!(
        attempt(&mut q, s(5), Outcome::Delivered),
        Some(("a", Then::Done))
    );
    assert_eq!(
        attempt(&mut q, s(5), Outcome::Delivered),
        Some(("b", Then::Done))
    );
}

#[test]
fn failures_from_before_a_restart_are_due_at_once_and_continue_the_backoff() {
    let mut q: Q = Queue::new(Backoff::EMAIL);
    q.push("a", "a", 7, s(100));
    let a = q.poll(s(100)).unwrap();
    assert_eq!(a.failures, 7);
    assert_eq!(
        q.on_result(a.ticket, Outcome::Failed, s(100)),
        Then::Retry {
            wait: s(256),
            failures: 8
        }
    );
}

#[test]
fn a_delivery_is_attempted_once_while_queued_and_never_after_delivered() {
    let mut q = q();
    assert!(q.push("n1 email:a", "first", 0, s(0)));
    assert!(!q.push("n1 email:a", "again", 0, s(0)), "already queued");
    assert_eq!(q.len(), 1);
    let a = q.poll(s(0)).unwrap();
    assert_eq!(a.item, "first");
    assert_eq!(q.on_result(a.ticket, Outcome::Delivered, s(1)), Then::Done);
    assert_eq!(
        q.on_result(a.ticket, Outcome::Delivered, s(1)),
        Then::Unknown,
        "a result reported twice changes nothing"
    );
    assert_eq!(q.poll(s(1000)), None);
    assert!(q.is_empty());
}

#[test]
fn after_stop_nothing_starts_but_the_attempt_in_hand_reports() {
    let mut q = q();
    q.push("a", "a", 0, s(0));
    q.push("b", "b", 0, s(0));
    let a = q.poll(s(0)).unwrap();
    q.stop();
    assert!(q.in_hand());
    assert_eq!(q.on_result(a.ticket, Outcome::Delivered, s(1)), Then::Done);
    assert!(!q.in_hand());
    assert_eq!(q.poll(s(1)), None, "b stays for the next start");
    assert_eq!(q.next_due(), None);
    assert_eq!(q.len(), 1);
}
