//! [`SimpleQueue`]: `multiprocessing.SimpleQueue`, the queue with only `put`, `get` and
//! `empty`.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::SyncError;
use crate::item_codec;
use crate::item_ring::{Deadline, Flavor, ItemRing};
use crate::queue::{DEFAULT_CAPACITY, item_tag};
use crate::shared_object::Handle;

/// A first-in, first-out queue of `T`s between processes with nothing but `put`, `get` and
/// `empty`: `multiprocessing.SimpleQueue`. It is the same ring as a [`Queue`](crate::Queue)
/// without a bound on the count of items (a `put` waits only while the ring's bytes are
/// full), and survives the death of its producers and consumers the same way.
///
/// ```
/// use proc_core::Process;
/// use proc_sync::SimpleQueue;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let results = SimpleQueue::<(u32, u64)>::new()?;
/// let children: Vec<_> = (0..3)
///     .map(|n| {
///         let results = results.clone();
///         Process::spawn(move || results.put((n, u64::from(n).pow(2))).map_err(|e| e.to_string()))
///     })
///     .collect::<Result<_, _>>()?;
/// let mut got: Vec<(u32, u64)> = (0..3).map(|_| results.get()).collect::<Result<_, _>>()?;
/// got.sort();
/// assert_eq!(got, [(0, 0), (1, 1), (2, 4)]);
/// for child in children {
///     child.join()??;
/// }
/// # Ok(())
/// # }
/// ```
pub struct SimpleQueue<T> {
    ring: Arc<ItemRing>,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue {
            ring: Arc::clone(&self.ring),
            _items: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned + 'static> SimpleQueue<T> {
    /// An empty queue of [`DEFAULT_CAPACITY`] bytes.
    pub fn new() -> Result<SimpleQueue<T>, SyncError> {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// An empty queue whose ring holds `bytes` (see [`QueueBuilder::capacity`](crate::QueueBuilder::capacity)).
    pub fn with_capacity(bytes: usize) -> Result<SimpleQueue<T>, SyncError> {
        let ring = ItemRing::create(Flavor::Simple, item_tag::<T>(), bytes, 0)?;
        Ok(SimpleQueue {
            ring: Arc::new(ring),
            _items: PhantomData,
        })
    }

    /// The queue a [`handle`](Self::handle) names, made in another process.
    pub fn attach(handle: &Handle) -> Result<SimpleQueue<T>, SyncError> {
        let ring = ItemRing::attach(handle, item_tag::<T>(), Flavor::Simple, &[Flavor::Simple])?;
        Ok(SimpleQueue {
            ring: Arc::new(ring),
            _items: PhantomData,
        })
    }

    /// A handle another process can [`attach`](Self::attach) to.
    pub fn handle(&self) -> Result<Handle, SyncError> {
        self.ring.handle()
    }

    /// Puts `item` (or `&item`) at the end, waiting while the ring is full.
    pub fn put(&self, item: impl Borrow<T>) -> Result<(), SyncError> {
        item_codec::put(&self.ring, item.borrow(), &Deadline::forever(), false)
    }

    /// Takes the item at the front, waiting while the queue is empty.
    pub fn get(&self) -> Result<T, SyncError> {
        item_codec::get(&self.ring, &Deadline::forever(), false)
    }

    /// Whether the queue is empty (a snapshot).
    pub fn empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// This process puts and gets nothing more through this queue: both fail with
    /// `Closed` (see [`Queue::close`](crate::Queue::close)).
    pub fn close(&self) {
        self.ring.close();
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("item", &std::any::type_name::<T>())
            .field("empty", &self.ring.is_empty())
            .finish_non_exhaustive()
    }
}
