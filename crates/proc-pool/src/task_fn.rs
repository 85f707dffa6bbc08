//! How a task frame names the function to run: two code offsets. This module holds
//! proc-pool's only `unsafe`, and the invariant that makes it sound.
//!
//! # The invariant
//!
//! Every worker runs the same executable as the pool's process: a `Fork` worker is a copy of
//! it; a `ForkServer` or `Spawn` worker was started from it and proved, in its hello, that its
//! executable has the same identity (build id), before it was told anything (proc-core checks
//! this). A function is named by its offset from a base function in proc-core
//! ([`proc_core::code_offset`]), which is the same in every process of that executable
//! whatever addresses ASLR chose. A frame carries two offsets: the *entry*, `run_chunk::<A,
//! R>` (a monomorphised function that knows the argument and result types), and the user's
//! `fn(A) -> R`. The entry is only ever built by [`TaskFn::new`], from a `fn(A) -> R` of
//! exactly the types it was instantiated with, and frames only travel on the private,
//! close-on-exec pipe between a pool and its workers. So the addresses a worker turns back
//! into function pointers are those of real functions of those types in its own image. The
//! worker's initializer (`fn()`) crosses to `ForkServer` and `Spawn` workers the same way
//! ([`initializer_at`]).
//!
//! The one hole: code loaded with `dlopen` is not part of the executable's image, so its
//! offset from the base means nothing in another process. There its address is unmapped (the
//! worker dies: `WorkerDied`) or, worse, holds other code: undefined behaviour, though
//! confined to the worker (the parent only decodes the bytes a worker sends back, under the
//! frame limit). Do not submit functions of a library loaded with `dlopen`.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};

use proc_core::{code_offset, codec};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::TaskError;
use crate::result_writer::ResultWriter;

/// The type-erased shape of every entry point: the user's function (as an address), the
/// encoded arguments, how many of them to skip, where the results go, the bound value (for
/// functions that take one).
type Entry = for<'w, 'b> fn(usize, &[u8], u32, &mut ResultWriter<'w>, Option<&'b mut BoundSlot>);

/// A bound value in a worker: its encoding, as the parent sent it once, and the value itself
/// once a task needed it (decoded then, with the type the task's entry point knows).
pub(crate) struct BoundSlot {
    encoded: Vec<u8>,
    decoded: Option<Box<dyn std::any::Any>>,
}

impl BoundSlot {
    /// A value as it arrived, to decode when a task first needs it.
    pub(crate) fn new(encoded: Vec<u8>) -> BoundSlot {
        BoundSlot {
            encoded,
            decoded: None,
        }
    }
}

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
        R: Serialize + 'static,
    {
        TaskFn {
            entry: run_chunk::<A, R> as Entry as usize,
            function: function as usize,
        }
    }

    /// Names a task of several arguments: `function` is a function or a closure that
    /// captures nothing (zero-sized, checked at compile time), called with its arguments
    /// spread out of the tuple `Args`. The entry point is monomorphised for `F` itself, so
    /// the frame's function word is not needed (it repeats the entry).
    pub(crate) fn star<F, Args, R>(function: F) -> TaskFn
    where
        F: StarFn<Args, R>,
        Args: DeserializeOwned,
        R: Serialize + 'static,
    {
        const {
            assert!(
                size_of::<F>() == 0,
                "starmap takes a function, or a closure that captures nothing (its captures \
                 could not cross to the worker): pass what it needs in the arguments"
            )
        };
        let _ = function;
        let entry = run_star_chunk::<F, Args, R> as Entry as usize;
        TaskFn {
            entry,
            function: entry,
        }
    }

    /// The two offsets a frame carries; never 0 (the entry is not the base itself), which
    /// the shutdown frame uses.
    pub(crate) fn to_wire(self) -> (u64, u64) {
        (code_offset::of(self.entry), code_offset::of(self.function))
    }

    pub(crate) fn from_wire(entry: u64, function: u64) -> TaskFn {
        TaskFn {
            entry: code_offset::address(entry),
            function: code_offset::address(function),
        }
    }

    /// Checks that both functions can be named by offsets to a worker that is not a fork of
    /// this process (see [`proc_core::code_offset::check`]). Remembers the last pair checked
    /// on this thread, so a stream of tasks of one function pays for one lookup.
    pub(crate) fn check_nameable(self) -> Result<(), TaskError> {
        thread_local! {
            static CHECKED: std::cell::Cell<Option<TaskFn>> = const { std::cell::Cell::new(None) };
        }
        if CHECKED.get() == Some(self) {
            return Ok(());
        }
        code_offset::check(self.function)
            .and_then(|()| code_offset::check(self.entry))
            .map_err(|err| TaskError::NotNameable {
                message: err.to_string(),
            })?;
        CHECKED.set(Some(self));
        Ok(())
    }

    /// Names `function`, which takes a bound value of type `C` before each item (see
    /// [`crate::Bound`]).
    pub(crate) fn bound<C, A, R>(function: fn(&C, A) -> R) -> TaskFn
    where
        C: DeserializeOwned + 'static,
        A: DeserializeOwned,
        R: Serialize + 'static,
    {
        TaskFn {
            entry: run_bound_chunk::<C, A, R> as Entry as usize,
            function: function as usize,
        }
    }

    /// Runs the chunk whose encoded arguments are `args`, but for its first `skip` items, in a
    /// worker; `bound` is the bound value the task names, if it names one.
    pub(crate) fn run(
        self,
        args: &[u8],
        skip: u32,
        out: &mut ResultWriter<'_>,
        bound: Option<&mut BoundSlot>,
    ) {
        #[allow(unsafe_code)]
        // SAFETY: `entry` came from `TaskFn::new` in the pool's process, whose executable
        // this worker runs too (see the module docs), so it is the address of a
        // `run_chunk::<A, R>`, which has exactly the type `Entry`.
        let entry = unsafe { std::mem::transmute::<usize, Entry>(self.entry) };
        entry(self.function, args, skip, out, bound);
    }
}

/// The entry point for tasks of type `fn(A) -> R`.
fn run_chunk<A, R>(
    function: usize,
    args: &[u8],
    skip: u32,
    out: &mut ResultWriter<'_>,
    _bound: Option<&mut BoundSlot>,
) where
    A: DeserializeOwned,
    R: Serialize + 'static,
{
    #[allow(unsafe_code)]
    // SAFETY: `function` was paired with this entry by `TaskFn::new::<A, R>`, which took it
    // from a `fn(A) -> R` in the pool's process, whose executable this worker runs (see the
    // module docs).
    let function = unsafe { std::mem::transmute::<usize, fn(A) -> R>(function) };
    run_items(args, skip, out, function);
}

/// The entry point for tasks of type `fn(&C, A) -> R`: the bound value is decoded on the
/// first task that needs it in this worker, and kept.
fn run_bound_chunk<C, A, R>(
    function: usize,
    args: &[u8],
    skip: u32,
    out: &mut ResultWriter<'_>,
    bound: Option<&mut BoundSlot>,
) where
    C: DeserializeOwned + 'static,
    A: DeserializeOwned,
    R: Serialize + 'static,
{
    #[allow(unsafe_code)]
    // SAFETY: `function` was paired with this entry by `TaskFn::bound::<C, A, R>`, which took
    // it from a `fn(&C, A) -> R` in the pool's process, whose executable this worker runs
    // (see the module docs).
    let function = unsafe { std::mem::transmute::<usize, fn(&C, A) -> R>(function) };
    let Some(slot) = bound else {
        out.fail_chunk("the task's bound value never reached its worker");
        return;
    };
    if slot.decoded.as_ref().is_none_or(|value| !value.is::<C>()) {
        let decoded = catch_unwind(AssertUnwindSafe(|| codec::decode_value::<C>(&slot.encoded)));
        match decoded {
            Ok(Ok((value, _))) => slot.decoded = Some(Box::new(value)),
            Ok(Err(err)) => {
                out.fail_chunk(&format!("the bound value did not decode: {err}"));
                return;
            }
            Err(panic) => {
                let message = crate::protocol::panic_message(panic.as_ref());
                out.fail_chunk(&format!("decoding the bound value panicked: {message}"));
                return;
            }
        }
    }
    let Some(value) = slot
        .decoded
        .as_ref()
        .and_then(|value| value.downcast_ref::<C>())
    else {
        out.fail_chunk("the bound value is not of the task's type");
        return;
    };
    run_items(args, skip, out, |item: A| function(value, item));
}

/// Decodes a chunk's arguments, then runs `call` on each but the first `skip`, under
/// `catch_unwind`, handing each outcome to `out` (which stages it in the ring) before the
/// next item starts.
fn run_items<A, R>(args: &[u8], skip: u32, out: &mut ResultWriter<'_>, call: impl Fn(A) -> R)
where
    A: DeserializeOwned,
    R: Serialize + 'static,
{
    let items = match decode_args::<A>(args) {
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
    out.run_items(items.skip(skip as usize), call);
    out.finish();
}

/// A chunk's arguments, decoded: the values, or for `Vec<u8>` arguments their bytes in the
/// frame, each copied into its vector only when its task is about to run.
enum Items<'a, A> {
    Values(std::vec::IntoIter<A>),
    /// Only ever made for `A` = `Vec<u8>` (see `decode_args`).
    Bytes(std::vec::IntoIter<&'a [u8]>, PhantomData<A>),
}

impl<A> Iterator for Items<'_, A> {
    type Item = A;

    fn next(&mut self) -> Option<A> {
        self.nth(0)
    }

    /// What `skip` calls: the items skipped (run before, in a worker that died) are not
    /// copied.
    fn nth(&mut self, n: usize) -> Option<A> {
        match self {
            Items::Values(values) => values.nth(n),
            Items::Bytes(bodies, _) => {
                let body = bodies.nth(n)?;
                let mut item: Option<A> = None;
                if let Ok(slot) = castaway::cast!(&mut item, &mut Option<Vec<u8>>) {
                    *slot = Some(body.to_vec());
                }
                item
            }
        }
    }
}

/// Decodes a chunk's arguments, a sequence `[A]`: its length, then the items. `Vec<u8>`
/// items are read with one copy each, and one at a time, as their tasks run: the entry point
/// knows the type, which a decoder through serde cannot tell (serde's `Vec<u8>` takes its
/// bytes one at a time, about 1 GB/s); the bytes on the wire are the same. One at a time, a
/// vector's memory is the one its predecessor freed, already faulted in (decoded all at
/// once, a chunk of 32 vectors of 1 MiB was 32 MiB of new memory every chunk). `castaway`
/// tells whether `A` is `Vec<u8>` without a `'static` bound on `A` (callers' generic code
/// bounded by `DeserializeOwned` alone must keep compiling) and without `unsafe` here. Other
/// items take `codec::decode_sequence` (where a newtype around a byte vector takes the short
/// road).
fn decode_args<A: DeserializeOwned>(
    args: &[u8],
) -> Result<(Items<'_, A>, usize), codec::CodecError> {
    let (count, prefix) = codec::decode_len_prefix(args)?;
    let rest = &args[prefix..];
    let mut probe: Option<A> = None;
    if castaway::cast!(&mut probe, &mut Option<Vec<u8>>).is_ok() {
        let (bodies, used) = codec::split_byte_vectors(rest, count)?;
        return Ok((Items::Bytes(bodies.into_iter(), PhantomData), prefix + used));
    }
    let (items, used) = codec::decode_sequence::<A>(rest, count)?;
    Ok((Items::Values(items.into_iter()), prefix + used))
}

/// The entry point for `starmap` tasks of `F` (zero-sized).
fn run_star_chunk<F, Args, R>(
    _function: usize,
    args: &[u8],
    skip: u32,
    out: &mut ResultWriter<'_>,
    _bound: Option<&mut BoundSlot>,
) where
    F: StarFn<Args, R>,
    Args: DeserializeOwned,
    R: Serialize + 'static,
{
    #[allow(unsafe_code)]
    // SAFETY: `F` is zero-sized (`TaskFn::star`, the only place this entry is named, asserts
    // it at compile time) and `Copy`: every value of it is the same zero bytes, and the caller
    // of `starmap` held one, so making another is a copy of that value, which `Copy` allows.
    // (Only the compiler implements the `Fn` traits on stable Rust: `F` is a function item or
    // a closure.)
    let function: F = unsafe { std::mem::zeroed() };
    run_items(args, skip, out, |items: Args| function.call_with(items));
}

/// A task function of several arguments, for [`Pool::starmap`](crate::Pool::starmap): any
/// function, or closure that captures nothing, of 1 to 8 arguments; `Args` is the tuple of
/// their types, what each item of the input is. Implemented for all of them; there is
/// nothing to implement.
///
/// ```
/// fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// let pool = proc_pool::Pool::new(2)?;
/// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)])?, [3, 7]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A closure that captures something does not compile ("starmap takes a function, or a
/// closure that captures nothing"): its captures could not cross to a worker. Pass them in
/// the items instead.
///
/// ```compile_fail
/// let pool = proc_pool::Pool::new(1)?;
/// let offset = 10u64;
/// pool.starmap(move |a: u64, b: u64| a + b + offset, [(1, 2)])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait StarFn<Args, R>: Copy + Send + 'static {
    /// Calls the function with the tuple's fields as its arguments.
    fn call_with(self, args: Args) -> R;
}

macro_rules! star_fn {
    ($($arg:ident: $ty:ident),+) => {
        impl<F, R, $($ty),+> StarFn<($($ty,)+), R> for F
        where
            F: Fn($($ty),+) -> R + Copy + Send + 'static,
        {
            fn call_with(self, ($($arg,)+): ($($ty,)+)) -> R {
                self($($arg),+)
            }
        }
    };
}

star_fn!(a: A);
star_fn!(a: A, b: B);
star_fn!(a: A, b: B, c: C);
star_fn!(a: A, b: B, c: C, d: D);
star_fn!(a: A, b: B, c: C, d: D, e: E);
star_fn!(a: A, b: B, c: C, d: D, e: E, f: G);
star_fn!(a: A, b: B, c: C, d: D, e: E, f: G, g: H);
star_fn!(a: A, b: B, c: C, d: D, e: E, f: G, g: H, h: I);

/// The offset of a worker initializer, to send to a worker started by exec.
pub(crate) fn initializer_offset(initializer: fn()) -> u64 {
    code_offset::of(initializer as usize)
}

/// The initializer at `offset`, in a worker.
pub(crate) fn initializer_at(offset: u64) -> fn() {
    let address = code_offset::address(offset);
    #[allow(unsafe_code)]
    // SAFETY: `offset` came from `initializer_offset` in the pool's process, from a real
    // `fn()`, and this worker runs the same executable (see the module docs).
    unsafe {
        std::mem::transmute::<usize, fn()>(address)
    }
}
