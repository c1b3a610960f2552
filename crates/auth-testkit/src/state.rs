//! The [`StateStore`] conformance cases.
//!
//! Each case is a plain async function over `&dyn StateStore` that panics,
//! like a failed `assert!`, when the store breaks the contract. Each uses keys
//! unique to the run, so cases may share a backend. TTLs are short (200 ms) and
//! the cases sleep past them, so a store's expiry must be accurate to about
//! 100 ms. [`crate::state_store_suite!`] stamps one test per case.
//!
//! One case, [`expired_entries_are_removed_by_writes`], also looks at what
//! the store holds, through a [`CountEntries`] hook the suite is given
//! (`count =`); it is the one case that needs a store of its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use auth_module::StateStore;
use serde_json::{Value, json};

use crate::support::{join_all, ok, unique};

/// The TTL of values meant to expire during a case.
const SHORT: Duration = Duration::from_millis(200);
/// Comfortably past [`SHORT`].
const PAST_SHORT: Duration = Duration::from_millis(450);
/// The TTL of values meant to outlive a case.
const LONG: Duration = Duration::from_secs(60);

fn key(tag: &str) -> String {
    unique(&format!("auth-testkit:{tag}"))
}

/// `set` then `get` answers the value, of any JSON kind, as often as asked; a
/// key never set answers `None`.
pub async fn set_then_get(store: &dyn StateStore) {
    let values = [
        json!({ "state": "abc", "nested": { "list": [1, 2, 3] }, "none": null }),
        json!("a string"),
        json!(42),
        json!([true, false]),
        json!(null),
    ];
    for (i, value) in values.into_iter().enumerate() {
        let k = key(&format!("set-get-{i}"));
        ok(store.set(&k, value.clone(), LONG).await, "set");
        assert_eq!(ok(store.get(&k).await, "get"), Some(value.clone()));
        assert_eq!(
            ok(store.get(&k).await, "second get"),
            Some(value),
            "get does not consume"
        );
    }
    assert_eq!(ok(store.get(&key("never-set")).await, "get"), None);
}

/// A value is gone once its TTL has passed: `get` and `take` answer `None`
/// and `delete` reports nothing removed.
pub async fn value_expires_after_ttl(store: &dyn StateStore) {
    let (a, b, c) = (key("ttl-get"), key("ttl-take"), key("ttl-delete"));
    for k in [&a, &b, &c] {
        ok(store.set(k, json!({ "k": k }), SHORT).await, "set");
    }
    assert!(
        ok(store.get(&a).await, "get").is_some(),
        "live before its TTL"
    );
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(ok(store.get(&a).await, "get"), None, "expired for get");
    assert_eq!(ok(store.take(&b).await, "take"), None, "expired for take");
    assert!(
        !ok(store.delete(&c).await, "delete"),
        "delete of an expired value reports false"
    );
}

/// `take` returns the value once and removes it.
pub async fn take_is_single_use(store: &dyn StateStore) {
    let k = key("take");
    let value = json!({ "code_verifier": "v", "nonce": 7 });
    ok(store.set(&k, value.clone(), LONG).await, "set");
    assert_eq!(ok(store.take(&k).await, "take"), Some(value));
    assert_eq!(ok(store.take(&k).await, "second take"), None);
    assert_eq!(ok(store.get(&k).await, "get after take"), None);
    assert_eq!(ok(store.take(&key("never-set")).await, "take"), None);
}

/// Of 100 concurrent `take`s of one key, exactly one gets the value.
pub async fn concurrent_takes_yield_one(store: &dyn StateStore) {
    const N: usize = 100;
    let k = key("race");
    let value = json!({ "single": "use" });
    ok(store.set(&k, value.clone(), LONG).await, "set");
    let takes = (0..N).map(|_| store.take(&k)).collect();
    let results = join_all(takes).await;
    let mut got: Vec<Value> = Vec::new();
    for result in results {
        if let Some(v) = ok(result, "take") {
            got.push(v);
        }
    }
    assert_eq!(got, vec![value], "exactly one of {N} takes gets the value");
}

/// `delete` removes the value and reports whether a live one was there.
pub async fn delete_reports_live_value(store: &dyn StateStore) {
    let k = key("delete");
    assert!(
        !ok(store.delete(&k).await, "delete of a missing key"),
        "nothing was there"
    );
    ok(store.set(&k, json!(1), LONG).await, "set");
    assert!(
        ok(store.delete(&k).await, "delete"),
        "a live value was there"
    );
    assert_eq!(ok(store.get(&k).await, "get after delete"), None);
    assert!(!ok(store.delete(&k).await, "second delete"));
}

/// `set` replaces the value and the TTL, in both directions.
pub async fn set_replaces_value_and_ttl(store: &dyn StateStore) {
    let lengthened = key("lengthened");
    ok(store.set(&lengthened, json!("first"), SHORT).await, "set");
    ok(
        store.set(&lengthened, json!("second"), LONG).await,
        "replacing set",
    );
    assert_eq!(
        ok(store.get(&lengthened).await, "get"),
        Some(json!("second"))
    );

    let shortened = key("shortened");
    ok(store.set(&shortened, json!("first"), LONG).await, "set");
    ok(
        store.set(&shortened, json!("second"), SHORT).await,
        "replacing set",
    );
    assert_eq!(
        ok(store.get(&shortened).await, "get"),
        Some(json!("second"))
    );

    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        ok(store.get(&lengthened).await, "get"),
        Some(json!("second")),
        "the new, longer TTL holds"
    );
    assert_eq!(
        ok(store.get(&shortened).await, "get"),
        None,
        "the new, shorter TTL holds"
    );
}

/// Keys are independent: taking or deleting one leaves the others.
pub async fn keys_are_independent(store: &dyn StateStore) {
    let (a, b, c) = (key("a"), key("b"), key("c"));
    ok(store.set(&a, json!("a"), LONG).await, "set a");
    ok(store.set(&b, json!("b"), LONG).await, "set b");
    ok(store.set(&c, json!("c"), LONG).await, "set c");
    assert_eq!(ok(store.take(&a).await, "take a"), Some(json!("a")));
    assert!(ok(store.delete(&b).await, "delete b"));
    assert_eq!(ok(store.get(&c).await, "get c"), Some(json!("c")));
    // A key that is a prefix of another is its own key.
    let prefix = key("p");
    let longer = format!("{prefix}:more");
    ok(store.set(&longer, json!("longer"), LONG).await, "set");
    assert_eq!(ok(store.get(&prefix).await, "get prefix"), None);
}

/// `increment` counts from 0, answers the new value, and `get` reads the
/// counter as a JSON number; counters are independent.
pub async fn increment_counts(store: &dyn StateStore) {
    let (a, b) = (key("count-a"), key("count-b"));
    assert_eq!(ok(store.increment(&a, 1, LONG).await, "increment"), 1);
    assert_eq!(ok(store.increment(&a, 1, LONG).await, "increment"), 2);
    assert_eq!(ok(store.increment(&a, 5, LONG).await, "increment by 5"), 7);
    assert_eq!(ok(store.increment(&b, 3, LONG).await, "increment b"), 3);
    assert_eq!(ok(store.get(&a).await, "get"), Some(json!(7)));
    assert!(ok(store.delete(&a).await, "delete"));
    assert_eq!(ok(store.increment(&a, 1, LONG).await, "after delete"), 1);
}

/// The TTL is set when a counter is created and later increments do not
/// extend it (a fixed window); once it has passed, the count starts again.
pub async fn increment_window_is_fixed(store: &dyn StateStore) {
    let k = key("window");
    assert_eq!(ok(store.increment(&k, 1, SHORT).await, "first"), 1);
    tokio::time::sleep(SHORT / 2).await;
    // A long TTL here must not move the window's end.
    assert_eq!(ok(store.increment(&k, 1, LONG).await, "second"), 2);
    tokio::time::sleep(PAST_SHORT - SHORT / 2).await;
    assert_eq!(ok(store.get(&k).await, "get"), None, "the window ended");
    assert_eq!(
        ok(store.increment(&k, 1, SHORT).await, "in a new window"),
        1,
        "a new window starts from 0"
    );
}

/// 100 concurrent increments of one key end at exactly 100, and each
/// answers a different value.
pub async fn concurrent_increments_are_atomic(store: &dyn StateStore) {
    const N: u64 = 100;
    let k = key("increments");
    let increments = (0..N).map(|_| store.increment(&k, 1, LONG)).collect();
    let mut seen: Vec<u64> = join_all(increments)
        .await
        .into_iter()
        .map(|r| ok(r, "increment"))
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=N).collect::<Vec<_>>(),
        "each increment answers a new value"
    );
    assert_eq!(ok(store.get(&k).await, "get"), Some(json!(N)));
}

/// `increment_each` adds 1 to each counter as `increment` does (from 0, in
/// a fixed window) and answers the new values in order.
pub async fn increment_each_counts_each(store: &dyn StateStore) {
    let (a, b, c) = (key("each-a"), key("each-b"), key("each-c"));
    assert_eq!(ok(store.increment(&b, 4, LONG).await, "increment b"), 4);
    let counters = [(a.as_str(), LONG), (b.as_str(), LONG), (c.as_str(), SHORT)];
    assert_eq!(
        ok(store.increment_each(&counters).await, "increment_each"),
        vec![1, 5, 1]
    );
    assert_eq!(
        ok(store.increment_each(&counters).await, "again"),
        vec![2, 6, 2]
    );
    assert_eq!(ok(store.get(&b).await, "get"), Some(json!(6)));
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(ok(store.get(&c).await, "get"), None, "c's window ended");
    assert_eq!(
        ok(store.increment_each(&counters).await, "after c's window"),
        vec![3, 7, 1]
    );
    assert_eq!(
        ok(store.increment_each(&[]).await, "none"),
        Vec::<u64>::new()
    );
}

/// `give_back_each` takes 1 off each live counter, ends a counter at 1 and
/// the cleared value, and leaves missing counters missing; an ended counter
/// counts again from 0.
pub async fn give_back_each_takes_one_off(store: &dyn StateStore) {
    let (a, b, missing, cleared) = (
        key("back-a"),
        key("back-b"),
        key("back-missing"),
        key("back-cleared"),
    );
    assert_eq!(ok(store.increment(&a, 3, LONG).await, "a"), 3);
    assert_eq!(ok(store.increment(&b, 1, LONG).await, "b"), 1);
    assert_eq!(ok(store.increment(&cleared, 5, LONG).await, "cleared"), 5);
    let counters = [
        (a.as_str(), LONG),
        (b.as_str(), LONG),
        (missing.as_str(), LONG),
    ];
    ok(
        store.give_back_each(&counters, Some(&cleared)).await,
        "give_back_each",
    );
    assert_eq!(ok(store.get(&a).await, "a"), Some(json!(2)));
    assert_eq!(ok(store.get(&b).await, "b"), None, "b reached 0 and ended");
    assert_eq!(ok(store.get(&missing).await, "missing"), None);
    assert_eq!(ok(store.get(&cleared).await, "cleared"), None);
    assert_eq!(ok(store.increment(&b, 1, LONG).await, "b again"), 1);
    assert_eq!(
        ok(store.increment(&cleared, 1, LONG).await, "cleared again"),
        1
    );
    ok(store.give_back_each(&[], None).await, "nothing");
}

/// 50 concurrent `give_back_each` of a counter at 100 leave exactly 50.
pub async fn concurrent_give_backs_are_atomic(store: &dyn StateStore) {
    let k = key("back-concurrent");
    assert_eq!(ok(store.increment(&k, 100, LONG).await, "increment"), 100);
    let counters = [(k.as_str(), LONG)];
    let backs = (0..50)
        .map(|_| store.give_back_each(&counters, None))
        .collect();
    for r in join_all(backs).await {
        ok(r, "give_back_each");
    }
    assert_eq!(ok(store.get(&k).await, "get"), Some(json!(50)));
}

/// `compare_and_swap` changes a value only from the expected one: from
/// nothing (absent or expired), from an equal JSON value, and to nothing.
pub async fn compare_and_swap_needs_the_expected_value(store: &dyn StateStore) {
    let k = key("cas");
    let (a, b) = (
        json!({ "list": ["x"], "n": 1 }),
        json!({ "list": ["x", "y"], "n": 2 }),
    );
    assert!(ok(
        store
            .compare_and_swap(&k, None, Some(a.clone()), LONG)
            .await,
        "create"
    ));
    assert!(
        !ok(
            store
                .compare_and_swap(&k, None, Some(b.clone()), LONG)
                .await,
            "create again"
        ),
        "a live value is not nothing"
    );
    assert!(
        !ok(
            store
                .compare_and_swap(&k, Some(&b), Some(a.clone()), LONG)
                .await,
            "wrong expected"
        ),
        "a different expected value"
    );
    assert_eq!(ok(store.get(&k).await, "get"), Some(a.clone()));
    assert!(ok(
        store
            .compare_and_swap(&k, Some(&a), Some(b.clone()), LONG)
            .await,
        "swap"
    ));
    assert_eq!(ok(store.get(&k).await, "get"), Some(b.clone()));
    assert!(ok(
        store.compare_and_swap(&k, Some(&b), None, LONG).await,
        "remove"
    ));
    assert_eq!(ok(store.get(&k).await, "get"), None);
    assert!(ok(
        store.compare_and_swap(&k, None, None, LONG).await,
        "nothing stays nothing"
    ));

    // An expired value counts as nothing, and the new TTL holds.
    let e = key("cas-expired");
    ok(store.set(&e, json!(1), SHORT).await, "set");
    tokio::time::sleep(PAST_SHORT).await;
    assert!(
        !ok(
            store
                .compare_and_swap(&e, Some(&json!(1)), Some(json!(2)), LONG)
                .await,
            "from expired"
        ),
        "an expired value is not the expected one"
    );
    assert!(ok(
        store
            .compare_and_swap(&e, None, Some(json!(3)), SHORT)
            .await,
        "over expired"
    ));
    assert_eq!(ok(store.get(&e).await, "get"), Some(json!(3)));
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(ok(store.get(&e).await, "get"), None, "the new TTL holds");
}

/// Of 100 concurrent swaps from one expected value, exactly one succeeds.
pub async fn concurrent_swaps_yield_one(store: &dyn StateStore) {
    const N: usize = 100;
    let k = key("cas-race");
    let start = json!({ "v": 0 });
    ok(store.set(&k, start.clone(), LONG).await, "set");
    let swaps = (0..N)
        .map(|i| store.compare_and_swap(&k, Some(&start), Some(json!({ "v": i + 1 })), LONG))
        .collect();
    let winners: Vec<usize> = join_all(swaps)
        .await
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| ok(r, "swap").then_some(i + 1))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one of {N} swaps wins");
    assert_eq!(
        ok(store.get(&k).await, "get"),
        Some(json!({ "v": winners[0] }))
    );
}

/// Counts the entries a store holds, expired ones not yet removed included
/// (rows of a SQL table, entries of a map): the hook of
/// [`expired_entries_are_removed_by_writes`]. [`crate::state_store_suite!`]
/// builds it from its `count =` closure, which takes the store as `Arc<S>`
/// and answers a future of the count.
pub type CountEntries = dyn Fn() -> Pin<Box<dyn Future<Output = u64> + Send>> + Send + Sync;

/// `count` over `store`, as [`CountEntries`]. Used by the suite macro (a
/// function, so that the closure needs no type annotation).
#[doc(hidden)]
pub fn count_entries<S, F, Fut>(store: Arc<S>, count: F) -> Box<CountEntries>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = u64> + Send + 'static,
{
    Box::new(move || Box::pin(count(Arc::clone(&store))))
}

/// The writing calls [`expired_entries_are_removed_by_writes`] makes after
/// the entries expired.
const SWEEP_WRITES: u64 = 300;

/// Expired entries are removed from storage, not just hidden, by later
/// writes of any kind: 60 entries written by `set`, `increment` and
/// `compare_and_swap` expire, and after at most 300 writing calls that are
/// not `set` (`increment`, `compare_and_swap`, `take`, `delete`, in turn)
/// none of them is stored any more; the live entries stay.
///
/// `count` counts what the store holds ([`CountEntries`]); the store must be
/// this case's alone (the suites give each case a fresh one). Without it the
/// case checks nothing: that is for Redis, whose keys carry their TTL so the
/// server deletes them itself, and whose suite passes no counter.
pub async fn expired_entries_are_removed_by_writes(
    store: &dyn StateStore,
    count: Option<&CountEntries>,
) {
    let Some(count) = count else {
        return;
    };
    let before = count().await;
    let live = key("sweep-live");
    ok(store.set(&live, json!("stays"), LONG).await, "set");
    for i in 0..20 {
        let set = key(&format!("sweep-set-{i}"));
        ok(store.set(&set, json!(i), SHORT).await, "set");
        let counter = key(&format!("sweep-increment-{i}"));
        ok(store.increment(&counter, 1, SHORT).await, "increment");
        let swapped = key(&format!("sweep-swap-{i}"));
        assert!(ok(
            store
                .compare_and_swap(&swapped, None, Some(json!(i)), SHORT)
                .await,
            "compare_and_swap"
        ));
    }
    let stored = count().await;
    assert!(
        stored >= before + 61,
        "the 61 entries written are stored: {stored} (before: {before})"
    );
    tokio::time::sleep(PAST_SHORT).await;

    let (counter, swapped, missing) = (key("sweep-counter"), key("sweep-cas"), key("sweep-none"));
    let mut current: Option<Value> = None;
    for i in 0..SWEEP_WRITES {
        match i % 4 {
            0 => {
                ok(store.increment(&counter, 1, LONG).await, "increment");
            }
            1 => {
                let next = if current.is_none() {
                    Some(json!(i))
                } else {
                    None
                };
                assert!(ok(
                    store
                        .compare_and_swap(&swapped, current.as_ref(), next.clone(), LONG)
                        .await,
                    "compare_and_swap"
                ));
                current = next;
            }
            2 => {
                ok(store.take(&missing).await, "take");
            }
            _ => {
                ok(store.delete(&missing).await, "delete");
            }
        }
    }
    let after = count().await;
    assert!(
        after <= before + 3,
        "after {SWEEP_WRITES} writes, {} expired entries are still stored \
         ({after} entries; {before} before the case, at most 3 of its own live)",
        after.saturating_sub(before + 3)
    );
    assert_eq!(ok(store.get(&live).await, "get"), Some(json!("stays")));
    assert_eq!(
        ok(store.get(&counter).await, "get"),
        Some(json!(SWEEP_WRITES / 4))
    );
}
