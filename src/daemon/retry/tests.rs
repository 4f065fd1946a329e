//! The queue's rules, driven by explicit times (seconds since the epoch of the test).

use super::*;

fn s(secs: u64) -> Mono {
    Duration::from_secs(secs)
}

type Q = Queue<&'static str, &'static str, &'static str>;

/// A queue with room for 8 attempts at once; the tests before the lanes' own put every
/// delivery in one lane ("x"), where attempts go one at a time.
fn q() -> Q {
    Queue::new(Backoff::WEBHOOK, 8)
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
    assert!(q.push("a", "x", "a", 0, s(0)));
    assert!(q.push("b", "x", "b", 0, s(0)));
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
    q.push("a", "x", "a", 0, s(0));
    q.push("b", "x", "b", 0, s(0));
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
    q.push("a", "x", "a", 0, s(0));
    attempt(&mut q, s(0), Outcome::Failed);
    q.push("b", "x", "b", 0, s(5));
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
    let mut q: Q = Queue::new(Backoff::EMAIL, 8);
    q.push("a", "x", "a", 7, s(100));
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
    assert!(q.push("n1 email:a", "x", "first", 0, s(0)));
    assert!(
        !q.push("n1 email:a", "x", "again", 0, s(0)),
        "already queued"
    );
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
    q.push("a", "x", "a", 0, s(0));
    q.push("b", "x", "b", 0, s(0));
    let a = q.poll(s(0)).unwrap();
    q.stop();
    assert!(q.in_hand());
    assert_eq!(q.on_result(a.ticket, Outcome::Delivered, s(1)), Then::Done);
    assert!(!q.in_hand());
    assert_eq!(q.poll(s(1)), None, "b stays for the next start");
    assert_eq!(q.next_due(), None);
    assert_eq!(q.len(), 1);
}

#[test]
fn lanes_go_in_parallel_up_to_the_limit_each_lane_in_order() {
    let mut q: Q = Queue::new(Backoff::WEBHOOK, 2);
    q.push("a1", "a", "a1", 0, s(0));
    q.push("a2", "a", "a2", 0, s(0));
    q.push("b1", "b", "b1", 0, s(0));
    q.push("c1", "c", "c1", 0, s(0));
    let a1 = q.poll(s(0)).unwrap();
    let b1 = q.poll(s(0)).unwrap();
    assert_eq!(
        (a1.item, b1.item),
        ("a1", "b1"),
        "a2 waits for a1 (same lane); b1 does not"
    );
    assert_eq!(q.poll(s(0)), None, "two in hand: the limit");
    assert_eq!(q.next_due(), None, "nothing can start before a result");
    assert_eq!(q.on_result(b1.ticket, Outcome::Delivered, s(1)), Then::Done);
    assert_eq!(q.next_due(), Some(s(0)), "c1 can start");
    assert_eq!(q.poll(s(1)).unwrap().item, "c1");
    assert_eq!(q.poll(s(1)), None);
    assert_eq!(q.on_result(a1.ticket, Outcome::Delivered, s(2)), Then::Done);
    assert_eq!(q.poll(s(2)).unwrap().item, "a2", "its lane is free again");
}

#[test]
fn a_due_delivery_whose_lane_is_busy_does_not_hold_back_the_others() {
    let mut q = q();
    q.push("a1", "a", "a1", 0, s(0));
    q.push("a2", "a", "a2", 0, s(0));
    q.push("b1", "b", "b1", 0, s(0));
    let a1 = q.poll(s(0)).unwrap();
    assert_eq!(
        q.poll(s(0)).unwrap().item,
        "b1",
        "a2 is due, its lane is busy"
    );
    assert_eq!(q.poll(s(0)), None);
    assert_eq!(
        q.next_due(),
        None,
        "a2 waits for a1's result, not for a time"
    );
    // a1 fails: a2 goes now, a1 after its backoff, in its lane.
    assert!(matches!(
        q.on_result(a1.ticket, Outcome::Failed, s(1)),
        Then::Retry { .. }
    ));
    let a2 = q.poll(s(1)).unwrap();
    assert_eq!(a2.item, "a2");
    assert_eq!(
        q.next_due(),
        Some(s(3)),
        "a1's retry is due at 3 (its lane may still be busy then)"
    );
    assert_eq!(q.poll(s(3)), None, "a2 still in hand: a1 waits");
    assert_eq!(q.next_due(), None, "and needs no wake-up for that");
    assert_eq!(q.on_result(a2.ticket, Outcome::Delivered, s(4)), Then::Done);
    let again = q.poll(s(4)).unwrap();
    assert_eq!((again.item, again.failures), ("a1", 1));
}

#[test]
fn a_retry_that_became_due_goes_before_later_deliveries_of_its_lane() {
    let mut q = q();
    q.push("a1", "a", "a1", 0, s(0));
    attempt(&mut q, s(0), Outcome::Failed);
    q.push("a2", "a", "a2", 0, s(1));
    assert_eq!(
        attempt(&mut q, s(1), Outcome::Delivered),
        Some(("a2", Then::Done)),
        "a1 is not due before 2"
    );
    q.push("a3", "a", "a3", 0, s(2));
    assert_eq!(
        attempt(&mut q, s(5), Outcome::Delivered),
        Some(("a1", Then::Done)),
        "a1 (due at 2) was queued before a3"
    );
    assert_eq!(
        attempt(&mut q, s(5), Outcome::Delivered),
        Some(("a3", Then::Done))
    );
    assert!(q.is_empty());
}
