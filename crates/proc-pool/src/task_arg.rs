//! What a task takes, and what may stand for it in a call: [`TaskArg`], the bound on a task
//! function's argument type, and [`TaskItems`], the bound on the items given to `map` and its
//! kin (the arguments themselves, or references to them: encoding needs only `&A`).
//!
//! Both exist for their error messages as much as for their bounds: a task written as
//! `fn(&str) -> R`, or items that are not the task's argument type, should fail to compile
//! with a message that says what to write instead.

use serde::{Deserialize, Serialize};

/// The argument type `A` of a task `fn(A) -> R`: a value that crosses to a worker process, so
/// it is owned (`Serialize + DeserializeOwned`, no borrowed data). Every such type implements
/// it; it is spelled out only for the compiler's message when a task takes a reference.
///
/// A worker decodes the argument from the bytes of a frame, into a value it owns: a task
/// cannot take `&str`, `&[u8]` or `&T`. Take `String`, `Vec<u8>` or `T` instead, and pass
/// the items by reference if you want to keep them: `pool.map(count_words, &texts)`.
///
/// ```compile_fail
/// fn count_words(text: &str) -> usize {
///     text.split_whitespace().count()
/// }
///
/// let pool = proc_pool::Pool::new(1)?;
/// // error: implementation of `TaskArgMustBeOwned` is not general enough
/// pool.map(count_words, ["a b", "c"])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// ```compile_fail,E0277
/// fn double(x: &u64) -> u64 {
///     x * 2
/// }
///
/// let pool = proc_pool::Pool::new(1)?;
/// // error[E0277]: `&u64` cannot be a task's argument: a task takes an owned value
/// pool.map(double, &[1, 2])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The fix, for both: take the owned type and pass references to the items.
///
/// ```
/// fn count_words(text: String) -> usize {
///     text.split_whitespace().count()
/// }
///
/// let pool = proc_pool::Pool::new(1)?;
/// let texts = vec!["a b".to_string(), "c".to_string()];
/// assert_eq!(pool.map(count_words, &texts)?, [2, 1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a task's argument: a task takes an owned value",
    label = "this task takes `{Self}`",
    note = "a worker decodes the argument into a value of its own: take `String` instead of `&str`, `Vec<T>` instead of `&[T]`, `T` instead of `&T`",
    note = "the items may still be passed by reference: `pool.map(task, &items)`"
)]
pub trait TaskArg: Serialize + for<'de> TaskArgMustBeOwned<'de> {}

// Without `do_not_recommend`, the compiler would report the unmet `Deserialize` bound of
// this impl rather than the message of `TaskArg`.
#[diagnostic::do_not_recommend]
impl<A> TaskArg for A where A: Serialize + for<'de> TaskArgMustBeOwned<'de> {}

/// `Deserialize<'de>` under a name that states the rule, for one compiler message.
///
/// A task `fn(&str) -> R` fails to compile with "implementation of `TaskArgMustBeOwned` is
/// not general enough": `&str` can be decoded only from bytes that outlive it, not into a
/// value of its own, which is what a worker needs. (That is a lifetime error, which the
/// compiler reports without the custom message [`TaskArg`] carries for `&u64` and other
/// references.) Take `String` (or `Vec<u8>`, or the owned type) instead.
///
/// Every `Deserialize<'de>` type implements it; there is nothing to implement.
pub trait TaskArgMustBeOwned<'de>: Deserialize<'de> {}

impl<'de, A> TaskArgMustBeOwned<'de> for A where A: Deserialize<'de> {}

/// What `map`, `map_chunked`, `imap`, `imap_unordered` and `map_async` accept as the items
/// of a task `fn(A) -> R`: anything that iterates over `A` values (`Vec<A>`, `[A; N]`, a
/// range, any iterator of `A`), or the `A`s by reference, which are encoded exactly as the
/// `A`s, without a clone: `&Vec<A>`, `&[A]`, `&[A; N]`, `slice.iter()`, and any other
/// iterator of `&A` wrapped in [`Refs`].
///
/// `M` is a marker (owned or borrowed) the compiler infers: never name it. It keeps the two
/// kinds apart so that items whose type only the task tells (`Vec::new()`,
/// `.map(|s| s.parse().unwrap())`, `collect::<Vec<_>>()`) still infer as `A`. (With a bound
/// on each item, "`A` or `&A`", they would be ambiguous.) Sealed: those are all there is.
///
/// ```
/// fn shout(text: String) -> String {
///     text.to_uppercase()
/// }
///
/// let pool = proc_pool::Pool::new(1)?;
/// let words = vec!["a".to_string(), "b".to_string()];
/// assert_eq!(pool.map(shout, &words)?, ["A", "B"]);
/// assert_eq!(pool.map(shout, &words[1..])?, ["B"]);
/// assert_eq!(pool.map(shout, words.iter())?, ["A", "B"]);
/// let long = proc_pool::Refs(words.iter().filter(|w| w.as_str() > "a"));
/// assert_eq!(pool.map(shout, long)?, ["B"]);
/// assert_eq!(pool.map(shout, words)?, ["A", "B"]); // moved
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Items of another type do not convert by themselves:
///
/// ```compile_fail,E0277
/// fn shout(text: String) -> String {
///     text.to_uppercase()
/// }
///
/// let pool = proc_pool::Pool::new(1)?;
/// // error[E0277]: `[&str; 2]` are not items for a task taking `String`
/// pool.map(shout, ["a", "b"])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` are not items for a task taking `{A}`",
    label = "not items for a task taking `{A}`",
    note = "the items of a task `fn({A}) -> R` are `{A}` values (`Vec<{A}>`, an iterator of `{A}`), or `&Vec<{A}>`, `&[{A}]`, `slice.iter()`, or `proc_pool::Refs(iterator of &{A})`",
    note = "items of another type need converting first, e.g. `.iter().map(|s| s.to_string())` for `&str` items and a task taking `String`"
)]
pub trait TaskItems<A, M>: sealed::Sealed<A, M> {
    /// One item as it is encoded: `A` or `&A`.
    type Item: Serialize;
    /// The items, one by one.
    type IntoIter: Iterator<Item = Self::Item>;
    /// The items, one by one.
    fn into_task_items(self) -> Self::IntoIter;
}

// Without `do_not_recommend`, a mismatch would be reported as the unmet `IntoIterator`
// bound of this impl, without the message of `TaskItems`.
#[diagnostic::do_not_recommend]
impl<I, A> TaskItems<A, sealed::Owned> for I
where
    I: IntoIterator<Item = A>,
    A: Serialize,
{
    type Item = A;
    type IntoIter = I::IntoIter;

    fn into_task_items(self) -> I::IntoIter {
        self.into_iter()
    }
}

impl<'a, A: Serialize> TaskItems<A, sealed::Borrowed> for &'a Vec<A> {
    type Item = &'a A;
    type IntoIter = std::slice::Iter<'a, A>;

    fn into_task_items(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, A: Serialize> TaskItems<A, sealed::Borrowed> for &'a [A] {
    type Item = &'a A;
    type IntoIter = std::slice::Iter<'a, A>;

    fn into_task_items(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, A: Serialize, const N: usize> TaskItems<A, sealed::Borrowed> for &'a [A; N] {
    type Item = &'a A;
    type IntoIter = std::slice::Iter<'a, A>;

    fn into_task_items(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, A: Serialize> TaskItems<A, sealed::Borrowed> for std::slice::Iter<'a, A> {
    type Item = &'a A;
    type IntoIter = std::slice::Iter<'a, A>;

    fn into_task_items(self) -> Self::IntoIter {
        self
    }
}

/// Items by reference from any iterator of `&A`, for a task taking `A`:
/// `pool.map(score, Refs(scores.values()))` encodes each `&A` as the `A`, without a clone.
/// (`&Vec<A>`, `&[A]` and `slice.iter()` need no wrapper; see [`TaskItems`].)
#[derive(Debug, Clone)]
pub struct Refs<I>(pub I);

impl<'a, I, A> TaskItems<A, sealed::Borrowed> for Refs<I>
where
    I: Iterator<Item = &'a A>,
    A: Serialize + 'a,
{
    type Item = &'a A;
    type IntoIter = I;

    fn into_task_items(self) -> I {
        self.0
    }
}

mod sealed {
    /// Only the forms [`TaskItems`](super::TaskItems) lists are items: what they encode to
    /// is the `A`s.
    pub trait Sealed<A, M> {}

    /// The marker of items given as values.
    #[derive(Debug)]
    pub enum Owned {}

    /// The marker of items given by reference.
    #[derive(Debug)]
    pub enum Borrowed {}

    impl<I: IntoIterator<Item = A>, A> Sealed<A, Owned> for I {}

    impl<A> Sealed<A, Borrowed> for &Vec<A> {}

    impl<A> Sealed<A, Borrowed> for &[A] {}

    impl<A, const N: usize> Sealed<A, Borrowed> for &[A; N] {}

    impl<A> Sealed<A, Borrowed> for std::slice::Iter<'_, A> {}

    impl<'a, I: Iterator<Item = &'a A>, A: 'a> Sealed<A, Borrowed> for super::Refs<I> {}
}
