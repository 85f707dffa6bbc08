//! Bound values, the role of Python's `functools.partial`: tasks cannot capture, so a value
//! every task of a call needs (a configuration, a model, a lookup table) is *bound* instead:
//! encoded once, sent to each worker once, decoded there once, and lent to the task function
//! as its first argument, `fn(&C, A) -> R`.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::TaskError;
use crate::imap::Imap;
use crate::pool::Pool;
use crate::protocol;
use crate::results::AsyncResult;
use crate::task_arg::{TaskArg, TaskItems};
use crate::task_fn::TaskFn;

/// A bound value as the manager sends it: its id and its whole bound value frame.
#[derive(Debug)]
pub(crate) struct BoundValue {
    pub(crate) id: u64,
    pub(crate) frame: Vec<u8>,
}

/// What a task frame names: the function, and the bound value it takes first, if any.
#[derive(Debug, Clone)]
pub(crate) struct TaskCall {
    pub(crate) function: TaskFn,
    pub(crate) bound: Option<Arc<BoundValue>>,
}

impl From<TaskFn> for TaskCall {
    fn from(function: TaskFn) -> TaskCall {
        TaskCall {
            function,
            bound: None,
        }
    }
}

impl TaskCall {
    /// The bound value's id, as a task frame carries it (0 for none).
    pub(crate) fn bound_id(&self) -> u64 {
        self.bound.as_ref().map_or(0, |bound| bound.id)
    }
}

/// A value bound to a pool's tasks, made by [`Pool::bind`]: its calls run functions of type
/// `fn(&C, A) -> R`, each given the value first. The value is encoded once, when bound; each
/// worker receives it with the first task that needs it and decodes it then, once, however
/// many calls and tasks use it afterwards (a worker that replaces a dead one receives it
/// again). A worker keeps the last 8 values bound on the pool; one it forgot is sent again
/// when needed.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Scale {
///     factor: u64,
///     offset: u64,
/// }
///
/// fn apply_scale(scale: &Scale, x: u64) -> u64 {
///     x * scale.factor + scale.offset
/// }
///
/// let pool = proc_pool::Pool::new(2)?;
/// let scale = pool.bind(&Scale { factor: 10, offset: 1 })?;
/// assert_eq!(scale.map(apply_scale, 1..=3)?, [11, 21, 31]);
/// assert_eq!(scale.apply(apply_scale, 5)?, 51);
/// // Or in one call, for one map:
/// assert_eq!(pool.map_with(apply_scale, &Scale { factor: 2, offset: 0 }, [4])?, [8]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Bound<'pool, C> {
    pool: &'pool Pool,
    value: Arc<BoundValue>,
    kind: PhantomData<fn(&C)>,
}

impl<C> std::fmt::Debug for Bound<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("id", &self.value.id)
            .field("encoded_len", &self.value.frame.len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Binds `value` to this pool's tasks, for functions of type `fn(&C, A) -> R`: see
    /// [`Bound`]. Encodes it now (an error to encode it, or an encoding over the frame limit,
    /// is returned here).
    pub fn bind<C>(&self, value: &C) -> Result<Bound<'_, C>, TaskError>
    where
        C: Serialize + DeserializeOwned + 'static,
    {
        let id = self.next_task_id();
        let mut frame = Vec::new();
        protocol::encode_bound_value(&mut frame, id, value, self.max_frame_len())
            .map_err(|err| TaskError::codec(None, err))?;
        Ok(Bound {
            pool: self,
            value: Arc::new(BoundValue { id, frame }),
            kind: PhantomData,
        })
    }

    /// [`map`](Pool::map) of a function that takes `value` first: `function(&value, item)`
    /// for each item, `value` sent to each worker once ([`Pool::bind`] for more than one
    /// call).
    pub fn map_with<C, A, R, M>(
        &self,
        function: fn(&C, A) -> R,
        value: &C,
        items: impl TaskItems<A, M>,
    ) -> Result<Vec<R>, TaskError>
    where
        C: Serialize + DeserializeOwned + 'static,
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.bind(value)?.map(function, items)
    }
}

impl<C> Bound<'_, C>
where
    C: Serialize + DeserializeOwned + 'static,
{
    fn call<A, R>(&self, function: fn(&C, A) -> R) -> TaskCall
    where
        A: TaskArg,
        R: Serialize + 'static,
    {
        TaskCall {
            function: TaskFn::bound(function),
            bound: Some(self.value.clone()),
        }
    }

    /// [`Pool::map`], each task given the bound value first.
    pub fn map<A, R, M>(
        &self,
        function: fn(&C, A) -> R,
        items: impl TaskItems<A, M>,
    ) -> Result<Vec<R>, TaskError>
    where
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.pool.map_call(self.call(function), items)
    }

    /// [`Pool::apply`], the task given the bound value first.
    pub fn apply<A, R>(&self, function: fn(&C, A) -> R, arg: A) -> Result<R, TaskError>
    where
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(function, arg)?.get()
    }

    /// [`Pool::apply_async`], the task given the bound value first.
    pub fn apply_async<A, R>(
        &self,
        function: fn(&C, A) -> R,
        arg: A,
    ) -> Result<AsyncResult<R>, TaskError>
    where
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.pool.apply_call(self.call(function), arg)
    }

    /// [`Pool::imap`], each task given the bound value first.
    pub fn imap<A, R, I, M>(&self, function: fn(&C, A) -> R, items: I) -> Imap<'_, I::IntoIter, R>
    where
        I: TaskItems<A, M>,
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        Imap::new(
            self.pool,
            self.call(function),
            items.into_task_items(),
            true,
        )
    }

    /// [`Pool::imap_unordered`], each task given the bound value first.
    pub fn imap_unordered<A, R, I, M>(
        &self,
        function: fn(&C, A) -> R,
        items: I,
    ) -> Imap<'_, I::IntoIter, R>
    where
        I: TaskItems<A, M>,
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        Imap::new(
            self.pool,
            self.call(function),
            items.into_task_items(),
            false,
        )
    }
}
