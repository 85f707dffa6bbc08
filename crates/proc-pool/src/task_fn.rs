//! How a task frame names the function to run: two code addresses. This module holds
//! proc-pool's only `unsafe`, and the invariant that makes it sound.
//!
//! # The invariant
//!
//! Workers are `fork`s of the parent, so they run the same executable mapped at the same
//! addresses. A `fn` pointer taken in the parent therefore points at the same code in every
//! worker. A frame carries two such addresses: the *entry*, `run_chunk::<A, R>` (a
//! monomorphised function that knows the argument and result types), and the user's
//! `fn(A) -> R`. The entry is only ever built by [`TaskFn::new`], from a `fn(A) -> R` of
//! exactly the types it was instantiated with, and frames only travel on the private,
//! close-on-exec pipe between a pool and the workers it forked. So the addresses a worker
//! turns back into function pointers are ones its parent made from real functions of those
//! types.
//!
//! The one hole: code loaded with `dlopen` *after* a worker was forked is not mapped in that
//! worker. There its address is unmapped (the worker dies: `WorkerDied`) or, worse, holds
//! other code: undefined behaviour, though confined to the worker (the parent only decodes
//! the bytes a worker sends back, under the frame limit). Do not submit functions of a
//! library loaded after the pool was built.

use std::panic::{AssertUnwindSafe, catch_unwind};

use proc_core::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::ResultWriter;

/// The type-erased shape of every entry point: the user's function (as an address), the
/// encoded arguments, where the results go.
type Entry = fn(usize, &[u8], &mut ResultWriter);

/// A task's function, as a frame carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskFn {
    entry: usize,
    function: usize,
}

impl TaskFn {
    /// Names `function`, together with the entry point that knows its types.
    pub(crate) fn new<A, R>(function: fn(A) -> R) -> TaskFn
    where
        A: DeserializeOwned,
        R: Serialize,
    {
        TaskFn {
            entry: run_chunk::<A, R> as Entry as usize,
            function: function as usize,
        }
    }

    pub(crate) fn to_wire(self) -> (u64, u64) {
        (self.entry as u64, self.function as u64)
    }

    pub(crate) fn from_wire(entry: u64, function: u64) -> TaskFn {
        TaskFn {
            entry: entry as usize,
            function: function as usize,
        }
    }

    /// Runs the chunk whose encoded arguments are `args`, in a worker.
    pub(crate) fn run(self, args: &[u8], out: &mut ResultWriter) {
        #[allow(unsafe_code)]
        // SAFETY: `entry` came from `TaskFn::new` in the parent this worker was forked from
        // (see the module docs), so it is the address of a `run_chunk::<A, R>`, which has
        // exactly the type `Entry`.
        let entry = unsafe { std::mem::transmute::<usize, Entry>(self.entry) };
        entry(self.function, args, out);
    }
}

/// The entry point for tasks of type `fn(A) -> R`: decodes the chunk's arguments, runs the
/// function on each under `catch_unwind`, and encodes each outcome.
fn run_chunk<A, R>(function: usize, args: &[u8], out: &mut ResultWriter)
where
    A: DeserializeOwned,
    R: Serialize,
{
    #[allow(unsafe_code)]
    // SAFETY: `function` was paired with this entry by `TaskFn::new::<A, R>`, which took it
    // from a `fn(A) -> R` in the parent this worker was forked from (see the module docs).
    let function = unsafe { std::mem::transmute::<usize, fn(A) -> R>(function) };
    let items = match codec::decode_value::<Vec<A>>(args) {
        Ok((items, used)) if used == args.len() => items,
        Ok((_, used)) => {
            out.fail_chunk(&format!(
                "the arguments left {} bytes over after decoding",
                args.len() - used
            ));
            return;
        }
        Err(err) => {
            out.fail_chunk(&err.to_string());
            return;
        }
    };
    // Run the items while they return; the values then go back as one sequence.
    let mut values = Vec::with_capacity(items.len());
    let mut items = items.into_iter();
    let mut panicked = None;
    for item in items.by_ref() {
        match catch_unwind(AssertUnwindSafe(|| function(item))) {
            Ok(value) => values.push(value),
            Err(panic) => {
                panicked = Some(panic);
                break;
            }
        }
    }
    if panicked.is_none() && out.push_values(&values) {
        return;
    }
    // The slow path: an outcome per item (a panic, a value too large to share a frame).
    for value in values {
        out.push_item(Ok(value));
    }
    if let Some(panic) = panicked {
        out.push_item::<R>(Err(panic));
    }
    for item in items {
        out.push_item(catch_unwind(AssertUnwindSafe(|| function(item))));
    }
    out.finish();
}
