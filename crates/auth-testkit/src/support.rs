//! Helpers shared by the cases.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use auth_module::{ErrorKind, Metadata, Result, generate_id};
use serde_json::Value;

/// `tag` made unique to this run, so cases never share data even on a
/// persistent backend shared by many runs.
pub(crate) fn unique(tag: &str) -> String {
    // A ULID: unique, and sortable by creation time.
    format!("{tag}-{}", generate_id("u").to_lowercase())
}

/// A JSON object literal as [`Metadata`].
pub(crate) fn obj(v: Value) -> Metadata {
    match v {
        Value::Object(m) => m,
        other => panic!("test metadata must be a JSON object, got {other}"),
    }
}

/// Asserts that `result` failed with `kind`.
#[track_caller]
pub(crate) fn expect_kind<T: Debug>(result: Result<T>, kind: ErrorKind, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected a {kind} error, got Ok({v:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: wrong error kind: {e}"),
    }
}

/// Unwraps `result`, naming the step that failed.
#[track_caller]
pub(crate) fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e} (source: {:?})", {
            std::error::Error::source(&e).map(ToString::to_string)
        }),
    }
}

/// Polls all `futures` concurrently on the current task and returns their
/// outputs in order. The cases get the store as `&dyn _`, which cannot move
/// into spawned tasks; the requests still overlap at the backend, which is
/// where the races under test happen.
pub(crate) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        // Invariant: poll_fn above returns Ready only once every output is set.
        .map(|o| o.expect("every future completed"))
        .collect()
}
