//! Which worker a request goes to, as pure functions over what the façade knows of each.
//!
//! - A request that continues a conversation has an affinity key (`chat::affinity`): its session, its
//!   response chain, or (a stateless request resending its history) the conversation's opening.
//!   It goes to the worker that wins rendezvous hashing for that key (`rendezvous`), which is
//!   where the conversation's live process was kept; adding or losing a worker moves only the
//!   keys it wins. When that worker fails before the first event, the next in the same order.
//! - Any other request goes to the less loaded of two workers drawn at random (`two_choices`):
//!   "the power of two choices", as tower's `p2c` balancer does, here over the load the workers
//!   report plus what this façade has in flight on each (a report is up to 100 ms old).

use sha2::{Digest, Sha256};

/// What the façade knows of one worker when it chooses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Requests the worker reported running or waiting.
    pub reported_busy: u32,
    /// Requests this façade sent it since that report (a report is up to 100 ms old).
    pub since_report: u32,
    /// The worker's process budget (0 before its first report).
    pub capacity: u32,
    /// Idle processes the worker reported ready (warm, recycled).
    pub ready: u32,
    /// Requests this façade has on it now.
    pub in_flight: u32,
}

impl Candidate {
    /// The share of its capacity a new request would find busy, lower is better: what the
    /// worker reported plus what this façade sent it since (every façade sees its own requests
    /// at once, so a stale report does not send them all to one worker), or this façade's own
    /// count when that is larger. A worker with a process ready skips a cold start
    /// (~0.7 CPU-s): between equally busy workers, it wins; it never outweighs a request.
    pub fn cost(&self) -> f64 {
        let reported = self.reported_busy.saturating_add(self.since_report);
        let busy = f64::from(reported.max(self.in_flight));
        let capacity = f64::from(self.capacity.max(1));
        let ready = if self.ready > 0 { 0.1 } else { 0.0 };
        (busy + 1.0 - ready) / capacity
    }
}

/// The index of the less costly of two distinct candidates drawn with `random` (two draws from
/// it), or the only one.
pub fn two_choices(candidates: &[Candidate], random: u64) -> Option<usize> {
    match candidates.len() {
        0 => None,
        1 => Some(0),
        n => {
            let n = n as u64;
            let a = random % n;
            // A second, distinct index: an offset of 1..n from the first.
            let b = (a + 1 + (random / n) % (n - 1)) % n;
            let (a, b) = (a as usize, b as usize);
            Some(if candidates[b].cost() < candidates[a].cost() {
                b
            } else {
                a
            })
        }
    }
}

/// The workers (by name) in rendezvous order for `key`: the first wins, the next takes over
/// when it is gone. Each worker's score depends only on the key and its own name.
pub fn rendezvous<'a>(key: &[u8], names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(u64, &str)> = names
        .into_iter()
        .map(|name| {
            let digest = Sha256::new()
                .chain_update(key)
                .chain_update([0])
                .chain_update(name.as_bytes())
                .finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            (u64::from_be_bytes(first), name)
        })
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.into_iter().map(|(_, name)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(capacity: u32) -> Candidate {
        Candidate {
            reported_busy: 0,
            since_report: 0,
            capacity,
            ready: 0,
            in_flight: 0,
        }
    }

    #[test]
    fn two_choices_takes_the_less_loaded_of_two_distinct() {
        let busy = Candidate {
            reported_busy: 4,
            ..idle(4)
        };
        let candidates = [busy, idle(4)];
        for random in 0..100 {
            assert_eq!(two_choices(&candidates, random), Some(1));
        }
        assert_eq!(two_choices(&[], 7), None);
        assert_eq!(two_choices(&[busy], 7), Some(0));
        // Over three, the busiest is never chosen, the others about evenly.
        let candidates = [idle(4), busy, idle(4)];
        let mut counts = [0; 3];
        for random in 0..3000u64 {
            let r = random.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            counts[two_choices(&candidates, r).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0, "{counts:?}");
        assert!(counts[0] > 1200 && counts[2] > 1200, "{counts:?}");
    }

    #[test]
    fn cost_is_relative_to_capacity_and_counts_in_flight_and_ready_processes() {
        let small = Candidate {
            reported_busy: 2,
            ..idle(2)
        };
        let large = Candidate {
            reported_busy: 2,
            ..idle(8)
        };
        assert!(large.cost() < small.cost());
        let unreported = Candidate {
            in_flight: 3,
            ..idle(4)
        };
        assert!(unreported.cost() > idle(4).cost());
        let warm = Candidate {
            ready: 1,
            ..idle(4)
        };
        assert!(warm.cost() < idle(4).cost());
    }

    #[test]
    fn rendezvous_moves_only_the_share_of_a_worker_that_leaves() {
        let all = ["10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051"];
        let mut moved = 0;
        let mut wins = [0; 3];
        for i in 0..3000 {
            let key = format!("session-{i}");
            let order = rendezvous(key.as_bytes(), all);
            assert_eq!(order.len(), 3);
            let winner = all.iter().position(|w| *w == order[0]).unwrap();
            wins[winner] += 1;
            let without_third = rendezvous(key.as_bytes(), all[..2].iter().copied());
            if order[0] != all[2] {
                // Keys the third worker did not win stay where they were.
                assert_eq!(without_third[0], order[0]);
            } else {
                // Its keys go to the next in their own order.
                assert_eq!(without_third[0], order[1]);
                moved += 1;
            }
        }
        assert_eq!(moved, wins[2]);
        for w in wins {
            assert!((850..1150).contains(&w), "{wins:?}");
        }
    }
}
