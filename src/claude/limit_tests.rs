//! Unit tests of the process budget: the queue's 429 and 503, eviction of idle processes in
//! least-recently-used order across holders, and slots that change state without being
//! counted twice.

use super::*;

fn limiter(max_processes: usize, max_queue: usize, wait_ms: u64) -> Arc<Limiter> {
    Arc::new(Limiter::new(LimitConfig {
        max_processes,
        max_queue,
        queue_timeout: Duration::from_millis(wait_ms),
    }))
}

/// A stand-in for the pool or the live sessions: idle slots, each idle since a given time, and
/// a log (shared by all holders) of what was evicted, in order.
struct Holder {
    idle: Mutex<Vec<(Instant, &'static str, Slot)>>,
    evicted: Arc<Mutex<Vec<&'static str>>>,
}

impl Holder {
    fn new(budget: &Limiter, evicted: &Arc<Mutex<Vec<&'static str>>>) -> Arc<Holder> {
        let holder = Arc::new(Holder {
            idle: Mutex::new(Vec::new()),
            evicted: evicted.clone(),
        });
        let idle: Arc<dyn Idle> = holder.clone();
        budget.watch_idle(Arc::downgrade(&idle));
        holder
    }

    fn keep(&self, since: Instant, name: &'static str, slot: Slot) {
        self.idle.lock().unwrap().push((since, name, slot));
    }

    fn take(&self, name: &str) -> Option<Slot> {
        let mut idle = self.idle.lock().unwrap();
        let at = idle.iter().position(|(_, n, _)| *n == name)?;
        Some(idle.remove(at).2)
    }

    fn len(&self) -> usize {
        self.idle.lock().unwrap().len()
    }
}

impl Idle for Holder {
    fn oldest(&self) -> Option<Instant> {
        self.idle.lock().unwrap().iter().map(|(t, _, _)| *t).min()
    }

    fn evict_oldest(&self) -> Option<Slot> {
        let mut idle = self.idle.lock().unwrap();
        let at = (0..idle.len()).min_by_key(|i| idle[*i].0)?;
        let (_, name, slot) = idle.remove(at);
        self.evicted.lock().unwrap().push(name);
        Some(slot)
    }
}

fn one(mut slots: Vec<Slot>) -> Slot {
    assert_eq!(slots.len(), 1);
    slots.pop().unwrap()
}

#[tokio::test]
async fn full_queue_is_429_and_long_waits_are_503() {
    let l = limiter(1, 1, 200);
    let held = l.acquire(1).await.unwrap();
    assert_eq!(l.in_use(), 1);
    let waiter = {
        let l = l.clone();
        tokio::spawn(async move { l.acquire(1).await.map(|_| ()) })
    };
    while l.queued() == 0 {
        tokio::task::yield_now().await;
    }
    let err = l.acquire(1).await.unwrap_err();
    assert!(matches!(
        err,
        ChatError::RateLimited {
            retry_after: Some(1),
            ..
        }
    ));
    let err = waiter.await.unwrap().unwrap_err();
    assert!(matches!(err, ChatError::Unavailable { .. }));
    drop(held);
    assert_eq!(l.in_use(), 0);
    assert_eq!(l.queued(), 0);
}

#[tokio::test]
async fn a_waiter_gets_the_slot_when_it_is_released() {
    let l = limiter(2, 4, 5_000);
    let held = l.acquire(2).await.unwrap();
    assert_eq!(held.len(), 2, "one slot per choice");
    let waiter = {
        let l = l.clone();
        tokio::spawn(async move { l.acquire(1).await.map(|s| s.len()) })
    };
    while l.queued() == 0 {
        tokio::task::yield_now().await;
    }
    drop(held);
    assert_eq!(waiter.await.unwrap().unwrap(), 1);
    assert!(
        l.acquire(3).await.is_err(),
        "more than the cap can never fit"
    );
}

#[tokio::test]
async fn a_full_budget_evicts_the_least_recently_used_idle_process_first() {
    let l = limiter(3, 4, 100);
    let evicted = Arc::new(Mutex::new(Vec::new()));
    let pool = Holder::new(&l, &evicted);
    let live = Holder::new(&l, &evicted);
    let t0 = Instant::now();
    // Idle since: warm-1 first, then session-1, then warm-2 — across two holders.
    pool.keep(t0, "warm-1", l.try_idle_slot().unwrap());
    live.keep(
        t0 + Duration::from_secs(1),
        "session-1",
        l.try_idle_slot().unwrap(),
    );
    pool.keep(
        t0 + Duration::from_secs(2),
        "warm-2",
        l.try_idle_slot().unwrap(),
    );
    assert_eq!(l.in_use(), 3);
    assert!(
        l.try_idle_slot().is_none(),
        "a refill never exceeds the budget"
    );

    let mut serving = Vec::new();
    for _ in 0..3 {
        serving.push(one(l.acquire(1).await.unwrap()));
        assert_eq!(
            l.in_use(),
            3,
            "an evicted process's slot is reused, not added"
        );
    }
    assert_eq!(*evicted.lock().unwrap(), ["warm-1", "session-1", "warm-2"]);
    assert_eq!(pool.len() + live.len(), 0);

    // Nothing idle is left to evict: the next request waits, and gives up at the timeout.
    let err = l.acquire(1).await.unwrap_err();
    assert!(matches!(err, ChatError::Unavailable { .. }), "{err:?}");
    drop(serving);
    assert_eq!(l.in_use(), 0);
}

#[tokio::test]
async fn a_slot_changes_state_without_being_counted_twice() {
    let l = limiter(2, 4, 100);
    let evicted = Arc::new(Mutex::new(Vec::new()));
    let pool = Holder::new(&l, &evicted);
    let live = Holder::new(&l, &evicted);
    let t0 = Instant::now();

    // Warm, then taken by a request: one process, one slot, whatever it does.
    pool.keep(t0, "p", l.try_idle_slot().unwrap());
    assert_eq!(l.in_use(), 1);
    let serving = pool.take("p").unwrap();
    assert_eq!(l.in_use(), 1, "taking a warm process adds no slot");
    // Its turn ended cleanly: kept for the session's next turn, still one slot.
    live.keep(t0 + Duration::from_secs(1), "p", serving);
    assert_eq!(l.in_use(), 1, "keeping a process adds no slot");
    // The next turn continues in it.
    let serving = live.take("p").unwrap();
    assert_eq!(l.in_use(), 1);

    // Another request fits beside it without evicting anything.
    let other = one(l.acquire(1).await.unwrap());
    assert_eq!(l.in_use(), 2);
    assert!(evicted.lock().unwrap().is_empty());

    // Kept again, it is what the next request evicts.
    live.keep(t0 + Duration::from_secs(2), "p", serving);
    let third = one(l.acquire(1).await.unwrap());
    assert_eq!(*evicted.lock().unwrap(), ["p"]);
    assert_eq!(l.in_use(), 2);
    drop((other, third));
    assert_eq!(l.in_use(), 0);
}

#[tokio::test]
async fn idle_processes_give_way_to_waiting_requests() {
    let l = limiter(1, 4, 5_000);
    let held = l.acquire(1).await.unwrap();
    assert!(!l.wanted());
    let waiter = {
        let l = l.clone();
        tokio::spawn(async move { l.acquire(1).await.map(|_| ()) })
    };
    while l.queued() == 0 {
        tokio::task::yield_now().await;
    }
    assert!(l.wanted(), "a waiting request wants the next free slot");
    drop(held);
    waiter.await.unwrap().unwrap();
    assert!(
        l.try_idle_slot().is_some(),
        "with nobody waiting, a refill may take a free slot"
    );
}

#[tokio::test]
async fn other_waits_count_in_the_same_queue() {
    let l = limiter(1, 1, 100);
    let _held = l.acquire(1).await.unwrap();
    let queue = l.queue();
    // A session-lock wait that never gets its turn takes the one place in the queue...
    let waiting = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.wait("a turn", std::future::pending::<()>()).await })
    };
    while l.queued() == 0 {
        tokio::task::yield_now().await;
    }
    // ...without asking idle processes to give way (it needs its session, not a slot)...
    assert!(!l.wanted());
    // ...so a request for a process is refused at once, and the wait ends at the timeout.
    let err = l.acquire(1).await.unwrap_err();
    assert!(matches!(err, ChatError::RateLimited { .. }), "{err:?}");
    let err = waiting.await.unwrap().unwrap_err();
    assert!(matches!(err, ChatError::Unavailable { .. }), "{err:?}");
    assert_eq!(l.queued(), 0);
}
