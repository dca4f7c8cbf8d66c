//! The delivery oracle: for one subscriber connection, decides for every event of every
//! publisher whether the target had to deliver it, must not have, or could go either way, and
//! counts what actually happened — exactly, not by sampling, in O(1) memory per (subscriber,
//! publisher).
//!
//! The cuts come from facts PROTOCOL.md guarantees:
//! - an event is processed by the server no earlier than it was sent, and a publisher never sends
//!   before the intended time of its schedule (so "sent at or after t" is a seq threshold);
//! - an event is processed no later than its `publish_ack` arrived, and acks come in order (so
//!   "processed before t" is the number of acks at t);
//! - a subscription is active from before its `subscription_confirmed` is sent until after the
//!   unsubscribe (or close) is received; §5 rule 3 fixes both boundaries;
//! - one publisher's events reach a subscriber in order (§5 rule 2), so a gap is final.
//!
//! An event is **certainly expected** when it passes the filters, was sent after the
//! confirmation arrived, and was acknowledged before the unsubscribe (or close) left; **certainly
//! forbidden** when the filters exclude it (judged by the caller) or it was sent after the
//! `unsubscription_confirmed` arrived; **uncertain** otherwise (counted, never as loss).

use crate::results::model::Counters;

/// Where the oracle counts what it judges: a group's [`Counters`], or those with the counters
/// of each event's stage beside them (`runner::stage_counts`). An event belongs to the stage of
/// its intended publish time, so a count is always of one publisher's seqs.
pub trait EventCounts {
    /// Adds `n` to `field` for events of publisher `p` from `seq` on, all in one stage.
    fn add(&mut self, p: usize, seq: u64, field: CounterField, n: u64);
    /// Takes one back from `field` for event `seq` of publisher `p`.
    fn take_back(&mut self, p: usize, seq: u64, field: CounterField);
    /// The first seq of publisher `p` after `seq` that belongs to a later stage (`u64::MAX`:
    /// none).
    fn next_stage_at(&self, _p: usize, _seq: u64) -> u64 {
        u64::MAX
    }
}

/// One of the event counters the oracle keeps.
pub type CounterField = fn(&mut Counters) -> &mut u64;

impl EventCounts for Counters {
    fn add(&mut self, _p: usize, _seq: u64, field: CounterField, n: u64) {
        *field(self) += n;
    }

    fn take_back(&mut self, _p: usize, _seq: u64, field: CounterField) {
        *field(self) -= 1;
    }
}

fn missing(c: &mut Counters) -> &mut u64 {
    &mut c.events_missing
}
fn expected(c: &mut Counters) -> &mut u64 {
    &mut c.events_expected
}
fn uncertain(c: &mut Counters) -> &mut u64 {
    &mut c.events_uncertain
}
fn out_of_order(c: &mut Counters) -> &mut u64 {
    &mut c.events_out_of_order
}
fn duplicated(c: &mut Counters) -> &mut u64 {
    &mut c.events_duplicated
}
fn after_unsubscribe(c: &mut Counters) -> &mut u64 {
    &mut c.events_after_unsubscribe
}

/// What the oracle needs to know about publishers, from the subscriber's group's point of view.
pub trait PublisherFacts {
    /// The first seq of publisher `p` certainly sent at or after `t_us`.
    fn first_sent_at_or_after(&self, p: usize, t_us: u64) -> u64;
    /// Seqs `0..n` of publisher `p` have been answered (acked or refused) by now.
    fn answered(&self, p: usize) -> u64;
    /// Events of publisher `p` in `from..to` that this group's filters admit and the target accepted.
    fn admitted(&self, p: usize, from: u64, to: u64) -> u64;
}

const NONE: u64 = u64::MAX;
const WINDOW: u64 = 64;

/// The phase of the connection's subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not (yet) subscribed, or a subscribe is in flight: anything that arrives is uncertain.
    Pending,
    /// Confirmed and not being left.
    Active,
    /// An unsubscribe or close has been sent; waiting for its answer.
    Closing,
    /// The unsubscribe was confirmed (or the connection closed).
    Left,
}

/// Per (connection, publisher) state.
#[derive(Debug, Clone, Copy)]
struct Tracker {
    /// Seqs below this are accounted for.
    cursor: u64,
    max_seen: u64,
    /// Bit i: seq `max_seen - i` was received.
    seen: u64,
    /// Bit i: seq `max_seen - i` was counted missing.
    counted_missing: u64,
    /// While closing: seqs below this were certainly processed while the subscription was active.
    certain_until: u64,
    /// After leaving: seqs at or above this were certainly sent after the leave was confirmed.
    forbidden_from: u64,
    /// The publisher's answered count as carried by the latest event received (`of_acked`):
    /// what a subscriber knows of a publisher in another process.
    ack_hint: u64,
    /// Owed seqs above `max_seen` that were counted missing when the leave was answered; one
    /// of them arriving later was reordered behind the answer, not lost.
    late_owed: (u64, u64),
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            cursor: 0,
            max_seen: NONE,
            seen: 0,
            counted_missing: 0,
            certain_until: 0,
            forbidden_from: NONE,
            ack_hint: 0,
            late_owed: (0, 0),
        }
    }
}

/// How one received event was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Certainly expected, and here it is.
    Expected,
    Uncertain,
    Duplicate,
    OutOfOrder,
    AfterUnsubscribe,
}

/// The oracle of one connection. `publishers` lists the global indices of the publishers whose
/// topic the connection's group subscribes to.
#[derive(Debug, Clone)]
pub struct ConnectionOracle {
    trackers: Box<[Tracker]>,
    phase: Phase,
}

impl ConnectionOracle {
    /// An oracle tracking `publishers` publishers (slots `0..publishers`).
    pub fn new(publishers: usize) -> ConnectionOracle {
        ConnectionOracle { trackers: vec![Tracker::default(); publishers].into(), phase: Phase::Pending }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A subscribe was sent: until it is confirmed, arrivals are uncertain, not forbidden.
    pub fn on_subscribe_sent(&mut self) {
        self.phase = Phase::Pending;
        self.trackers.iter_mut().for_each(|t| t.forbidden_from = NONE);
    }

    /// `subscription_confirmed` arrived at `now_us`: events sent from now on are owed.
    pub fn on_subscribed(&mut self, now_us: u64, facts: &impl PublisherFacts, slots: &[usize]) {
        self.phase = Phase::Active;
        for (t, &p) in self.trackers.iter_mut().zip(slots) {
            t.cursor = t.cursor.max(facts.first_sent_at_or_after(p, now_us));
        }
    }

    /// An unsubscribe or a close is about to be sent: owed events are those acked by now.
    pub fn on_leave_sent(&mut self, facts: &impl PublisherFacts, slots: &[usize]) {
        if self.phase != Phase::Active {
            self.phase = Phase::Left;
            return;
        }
        self.phase = Phase::Closing;
        for (t, &p) in self.trackers.iter_mut().zip(slots) {
            t.certain_until = facts.answered(p).max(t.ack_hint);
        }
    }

    /// The leave was answered (`unsubscription_confirmed`, or the server's close frame after
    /// ours) at `now_us`: everything owed has had its chance to arrive.
    pub fn on_left(
        &mut self,
        now_us: u64,
        facts: &impl PublisherFacts,
        slots: &[usize],
        c: &mut impl EventCounts,
    ) {
        let closing = self.phase == Phase::Closing;
        self.phase = Phase::Left;
        for (t, &p) in self.trackers.iter_mut().zip(slots) {
            if closing {
                let until = t.certain_until;
                let above_seen = if t.max_seen == NONE { 0 } else { t.max_seen + 1 };
                t.late_owed = (t.cursor.max(above_seen), until);
                count_missing(t, p, until, facts, c);
                t.cursor = t.cursor.max(until);
            }
            t.forbidden_from = facts.first_sent_at_or_after(p, now_us);
        }
    }

    /// The target cut the connection: nothing more is owed and nothing can be judged.
    pub fn on_cut(&mut self) {
        self.phase = Phase::Left;
    }

    /// Judges event `seq` of the publisher in `slot` (global index `p`), which the group's
    /// filters admit; `acked` is the publisher's answered count the event carried.
    pub fn on_event(
        &mut self,
        slot: usize,
        p: usize,
        (seq, acked): (u64, u64),
        facts: &impl PublisherFacts,
        c: &mut impl EventCounts,
    ) -> Judgement {
        let phase = self.phase;
        let t = &mut self.trackers[slot];
        t.ack_hint = t.ack_hint.max(acked);
        if t.max_seen != NONE && seq <= t.max_seen {
            return late_arrival(t, p, seq, c);
        }
        if phase == Phase::Left && (t.late_owed.0..t.late_owed.1).contains(&seq) {
            // Owed before the leave was answered, counted missing then, and here it is after.
            c.take_back(p, seq, missing);
            c.add(p, seq, out_of_order, 1);
            advance(t, seq);
            return Judgement::OutOfOrder;
        }
        advance(t, seq);
        let judgement = match phase {
            Phase::Active if seq >= t.cursor => {
                count_missing(t, p, seq, facts, c);
                Judgement::Expected
            }
            Phase::Closing if seq >= t.cursor => {
                let until = t.certain_until;
                count_missing(t, p, seq.min(until), facts, c);
                if seq < until { Judgement::Expected } else { Judgement::Uncertain }
            }
            Phase::Left if seq >= t.forbidden_from => Judgement::AfterUnsubscribe,
            _ => Judgement::Uncertain,
        };
        t.cursor = t.cursor.max(seq + 1);
        match judgement {
            Judgement::Expected => c.add(p, seq, expected, 1),
            Judgement::Uncertain => c.add(p, seq, uncertain, 1),
            Judgement::AfterUnsubscribe => c.add(p, seq, after_unsubscribe, 1),
            _ => {}
        }
        judgement
    }
}

/// Makes `seq`, above every seq seen so far, the highest seen.
fn advance(t: &mut Tracker, seq: u64) {
    let shift = if t.max_seen == NONE { WINDOW } else { seq - t.max_seen };
    t.seen = if shift >= WINDOW { 0 } else { t.seen << shift };
    t.counted_missing = if shift >= WINDOW { 0 } else { t.counted_missing << shift };
    t.seen |= 1;
    t.max_seen = seq;
}

/// An event at or below the highest seq seen: a duplicate or a late (out-of-order) arrival.
fn late_arrival(t: &mut Tracker, p: usize, seq: u64, c: &mut impl EventCounts) -> Judgement {
    let back = t.max_seen - seq;
    if back >= WINDOW {
        c.add(p, seq, out_of_order, 1);
        return Judgement::OutOfOrder;
    }
    let bit = 1u64 << back;
    if t.seen & bit != 0 {
        c.add(p, seq, duplicated, 1);
        return Judgement::Duplicate;
    }
    t.seen |= bit;
    c.add(p, seq, out_of_order, 1);
    if t.counted_missing & bit != 0 {
        // Counted missing when the gap was seen; it came after all, just late.
        t.counted_missing &= !bit;
        c.take_back(p, seq, missing);
    }
    Judgement::OutOfOrder
}

/// Counts the admitted events in `t.cursor..to` as owed and missing, each in its stage.
fn count_missing(t: &mut Tracker, p: usize, to: u64, facts: &impl PublisherFacts, c: &mut impl EventCounts) {
    if to <= t.cursor {
        return;
    }
    let mut any = false;
    let mut from = t.cursor;
    while from < to {
        let until = to.min(c.next_stage_at(p, from));
        let n = facts.admitted(p, from, until);
        if n > 0 {
            c.add(p, from, missing, n);
            c.add(p, from, expected, n);
            any = true;
        }
        from = until;
    }
    if !any {
        return;
    }
    // Remember which of them are within the window, so a late arrival can be told apart.
    if t.max_seen != NONE {
        let low = t.cursor.max(t.max_seen.saturating_sub(WINDOW - 1));
        for seq in low..to.min(t.max_seen + 1) {
            if facts.admitted(p, seq, seq + 1) == 1 {
                t.counted_missing |= 1 << (t.max_seen - seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// One publisher sending every 1000 µs from t = 0, with `admit` deciding the filter.
    struct Facts {
        answered: Cell<u64>,
        admit: fn(u64) -> bool,
    }

    impl PublisherFacts for Facts {
        fn first_sent_at_or_after(&self, _p: usize, t_us: u64) -> u64 {
            t_us.div_ceil(1000)
        }
        fn answered(&self, _p: usize) -> u64 {
            self.answered.get()
        }
        fn admitted(&self, _p: usize, from: u64, to: u64) -> u64 {
            (from..to).filter(|s| (self.admit)(*s)).count() as u64
        }
    }

    fn all() -> Facts {
        Facts { answered: Cell::new(0), admit: |_| true }
    }

    fn subscribed(at_us: u64, facts: &Facts) -> ConnectionOracle {
        let mut o = ConnectionOracle::new(1);
        o.on_subscribe_sent();
        o.on_subscribed(at_us, facts, &[0]);
        o
    }

    fn receive(o: &mut ConnectionOracle, seqs: impl IntoIterator<Item = u64>, f: &Facts, c: &mut Counters) {
        for s in seqs {
            o.on_event(0, 0, (s, 0), f, c);
        }
    }

    #[test]
    fn a_complete_in_order_stream_is_all_expected_and_nothing_missing() {
        let (f, mut c) = (all(), Counters::default());
        let mut o = subscribed(10_000, &f);
        receive(&mut o, 10..20, &f, &mut c);
        f.answered.set(20);
        o.on_leave_sent(&f, &[0]);
        o.on_left(21_000, &f, &[0], &mut c);
        assert_eq!((c.events_expected, c.events_missing, c.events_uncertain), (10, 0, 0));
    }

    #[test]
    fn a_gap_is_missing_and_a_lost_tail_is_found_at_the_leave() {
        let (f, mut c) = (all(), Counters::default());
        let mut o = subscribed(10_000, &f);
        receive(&mut o, [10, 11, 14, 15], &f, &mut c);
        assert_eq!(c.events_missing, 2);
        f.answered.set(18);
        o.on_leave_sent(&f, &[0]);
        o.on_left(30_000, &f, &[0], &mut c);
        assert_eq!((c.events_missing, c.events_expected), (4, 8));
    }

    #[test]
    fn events_sent_before_the_confirmation_are_uncertain() {
        let (f, mut c) = (all(), Counters::default());
        let mut o = subscribed(10_500, &f);
        receive(&mut o, [10, 11, 12], &f, &mut c);
        assert_eq!((c.events_uncertain, c.events_expected, c.events_missing), (1, 2, 0));
    }

    #[test]
    fn events_not_yet_acked_at_the_leave_are_uncertain() {
        let (f, mut c) = (all(), Counters::default());
        let mut o = subscribed(0, &f);
        receive(&mut o, 0..5, &f, &mut c);
        f.answered.set(5);
        o.on_leave_sent(&f, &[0]);
        receive(&mut o, [5, 6], &f, &mut c);
        o.on_left(9_000, &f, &[0], &mut c);
        assert_eq!((c.events_expected, c.events_uncertain, c.events_missing), (5, 2, 0));
    }

    #[test]
    fn after_the_leave_is_confirmed_later_events_are_forbidden() {
        let (f, mut c) = (all(), Counters::default());
        let mut o = subscribed(0, &f);
        f.answered.set(0);
        o.on_leave_sent(&f, &[0]);
        o.on_left(5_000, &f, &[0], &mut c);
        receive(&mut o, [3, 4], &f, &mut c);
        assert_eq!((c.events_uncertain, c.events_after_unsubscribe), (2, 0));
        receive(&mut o, [5, 6], &f, &mut c);
        assert_eq!(c.events_after_unsubscribe, 2);
    }

    #[test]
    fn a_new_subscribe_lifts_the_ban() {
        let (f, mut c) = (all(), Counters::default());
        let mut o = subscribed(0, &f);
        o.on_leave_sent(&f, &[0]);
        o.on_left(1_000, &f, &[0], &mut c);
        o.on_subscribe_sent();
        receive(&mut o, [7], &f, &mut c);
        assert_eq!((c.events_after_unsubscribe, c.events_uncertain), (0, 1));
        o.on_subscribed(9_000, &f, &[0]);
        receive(&mut o, [9, 10], &f, &mut c);
        assert_eq!((c.events_expected, c.events_missing), (2, 0));
    }

    #[test]
    fn duplicates_and_late_arrivals_are_told_apart() {
        let (f, mut c) = (all(), Counters::default());
        let mut o = subscribed(0, &f);
        receive(&mut o, [0, 1, 1, 3, 2, 2], &f, &mut c);
        assert_eq!(c.events_duplicated, 2);
        assert_eq!(c.events_out_of_order, 1);
        assert_eq!(c.events_missing, 0, "2 was counted missing, then arrived late");
        assert_eq!(c.events_expected, 4);
    }

    #[test]
    fn filtered_out_gaps_are_not_missing() {
        let f = Facts { answered: Cell::new(0), admit: |s| s % 3 == 0 };
        let mut c = Counters::default();
        let mut o = subscribed(0, &f);
        receive(&mut o, [0, 3, 9], &f, &mut c);
        assert_eq!((c.events_expected, c.events_missing), (4, 1));
        f.answered.set(13);
        o.on_leave_sent(&f, &[0]);
        o.on_left(20_000, &f, &[0], &mut c);
        assert_eq!(c.events_missing, 2, "12 was owed too");
    }

    #[test]
    fn an_owed_event_arriving_after_the_leave_answer_is_late_not_lost() {
        let (f, mut c) = (all(), Counters::default());
        let mut o = subscribed(0, &f);
        receive(&mut o, 0..3, &f, &mut c);
        f.answered.set(5);
        o.on_leave_sent(&f, &[0]);
        receive(&mut o, [3], &f, &mut c);
        o.on_left(6_000, &f, &[0], &mut c);
        assert_eq!(c.events_missing, 1, "4 was owed before the answer");
        receive(&mut o, [4], &f, &mut c);
        assert_eq!((c.events_missing, c.events_out_of_order, c.events_expected), (0, 1, 5));
    }

    #[test]
    fn acks_carried_by_events_count_when_the_board_knows_nothing() {
        let (f, mut c) = (all(), Counters::default());
        let mut o = subscribed(0, &f);
        o.on_event(0, 0, (0, 0), &f, &mut c);
        o.on_event(0, 0, (1, 4), &f, &mut c);
        o.on_leave_sent(&f, &[0]);
        o.on_left(9_000, &f, &[0], &mut c);
        assert_eq!(c.events_missing, 2, "2 and 3 were acked before 1 was sent");
    }

    #[test]
    fn a_cut_connection_owes_nothing_more() {
        let (f, mut c) = (all(), Counters::default());
        let mut o = subscribed(0, &f);
        receive(&mut o, 0..3, &f, &mut c);
        f.answered.set(10);
        o.on_cut();
        assert_eq!((c.events_missing, c.events_expected), (0, 3));
    }
}
