//! [`Queue`]: `multiprocessing.Queue`, a FIFO of serde values between processes, and the
//! [`QueueBuilder`] of it and of [`JoinableQueue`](crate::JoinableQueue).

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::SyncError;
use crate::item_codec;
use crate::item_ring::{Deadline, Flavor, ItemRing};
use crate::shared_object::{Handle, type_tag};

/// The ring size of a queue made without [`QueueBuilder::capacity`]: 1 MiB.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// A first-in, first-out queue of `T`s shared by processes: `multiprocessing.Queue`.
///
/// Any number of producers and consumers, in this process (threads), in the children it forks
/// afterwards (they share the queue as it is: clone it into the child's closure), and in
/// processes started otherwise, which [`attach`](Self::attach) its [`handle`](Self::handle).
/// Items are any serde type; each crosses as its bincode encoding (proc-core's codec) and
/// arrives whole, exactly once, and in the order its producer put it.
///
/// The queue lives in a ring of shared memory ([`DEFAULT_CAPACITY`] bytes unless
/// [`QueueBuilder::capacity`] says otherwise). A small item costs a few atomic operations on
/// each side and no system call while the queue is not empty; a waiting `get` or `put` sleeps
/// on a futex, and a timeout is a sleep in the kernel, not a spin. Items larger than a
/// quarter of the ring stream through it in chunks, so an item of any size up to 1 GiB
/// passes, the producer and the consumer copying at the same time.
///
/// # Bounds
///
/// [`Queue::new`] is Python's `Queue()`: no limit on the number of items. Python's `put` never
/// blocks there (a feeder thread buffers items in the producer's memory); ours writes into
/// the shared ring directly, so it waits when the ring's bytes are full, until a consumer
/// takes something: an unbounded queue holds at most its capacity in encoded bytes, however
/// many items that is. [`Queue::bounded`] (`Queue(maxsize)`) also limits the items.
///
/// # Processes that die
///
/// Unlike Python's queue, whose lock a killed process can leave held for ever:
/// - a producer killed in the middle of a `put` never corrupts the queue nor loses another
///   producer's item: its own item is either delivered whole or not at all;
/// - a consumer killed in the middle of a `get` loses at most the item it was taking;
/// - either way the others go on, within about 50 ms of the death.
///
/// ```
/// use proc_core::Process;
/// use proc_sync::Queue;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let queue = Queue::<String>::bounded(16)?;
/// let producer = {
///     let queue = queue.clone();
///     Process::spawn(move || {
///         for word in ["to", "be", "or", "not"] {
///             queue.put(word.to_string()).map_err(|e| e.to_string())?;
///         }
///         Ok::<(), String>(())
///     })?
/// };
/// let words: Vec<String> = (0..4).map(|_| queue.get()).collect::<Result<_, _>>()?;
/// assert_eq!(words, ["to", "be", "or", "not"]);
/// producer.join()??;
/// assert!(queue.empty());
/// # Ok(())
/// # }
/// ```
pub struct Queue<T> {
    ring: Arc<ItemRing>,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            ring: Arc::clone(&self.ring),
            _items: PhantomData,
        }
    }
}

/// Options for a [`Queue`] or a [`JoinableQueue`](crate::JoinableQueue):
/// `Queue::<T>::builder().maxsize(100).capacity(64 << 10).build()?`.
pub struct QueueBuilder<Q> {
    maxsize: usize,
    capacity: usize,
    _queue: PhantomData<fn() -> Q>,
}

impl<Q> QueueBuilder<Q> {
    pub(crate) fn new() -> QueueBuilder<Q> {
        QueueBuilder {
            maxsize: 0,
            capacity: DEFAULT_CAPACITY,
            _queue: PhantomData,
        }
    }

    /// At most `maxsize` items in the queue (Python's `maxsize`); 0, the default, is no
    /// limit on the count (the ring's bytes still are one).
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = maxsize;
        self
    }

    /// The shared ring's size in bytes, rounded up to a power of two, at least 4 KiB and at
    /// most 4 GiB; default [`DEFAULT_CAPACITY`]. Items larger than a quarter of it stream
    /// through in chunks; a larger ring lets producers run further ahead of consumers.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    pub(crate) fn make_ring<T>(&self, flavor: Flavor) -> Result<Arc<ItemRing>, SyncError> {
        let ring = ItemRing::create(flavor, item_tag::<T>(), self.capacity, self.maxsize)?;
        Ok(Arc::new(ring))
    }
}

impl<T: Serialize + DeserializeOwned + 'static> QueueBuilder<Queue<T>> {
    /// Makes the queue.
    pub fn build(self) -> Result<Queue<T>, SyncError> {
        Ok(Queue::from_ring(self.make_ring::<T>(Flavor::Queue)?))
    }
}

/// The type tag of a queue of `T`s, checked at attach.
pub(crate) fn item_tag<T>() -> u64 {
    type_tag::<T>(size_of::<T>())
}

impl<T: Serialize + DeserializeOwned + 'static> Queue<T> {
    /// A queue with no limit on the number of items, of [`DEFAULT_CAPACITY`] bytes.
    pub fn new() -> Result<Queue<T>, SyncError> {
        Self::builder().build()
    }

    /// A queue of at most `maxsize` items (0: no limit), of [`DEFAULT_CAPACITY`] bytes.
    pub fn bounded(maxsize: usize) -> Result<Queue<T>, SyncError> {
        Self::builder().maxsize(maxsize).build()
    }

    /// Options: `maxsize`, `capacity`.
    pub fn builder() -> QueueBuilder<Queue<T>> {
        QueueBuilder::new()
    }

    pub(crate) fn from_ring(ring: Arc<ItemRing>) -> Queue<T> {
        Queue {
            ring,
            _items: PhantomData,
        }
    }

    /// The queue a [`handle`](Self::handle) names, made in another process. A handle of a
    /// queue of another item type, or of another kind of object, is
    /// [`SyncError::BadHandle`] saying so. A [`JoinableQueue`](crate::JoinableQueue)'s
    /// handle attaches too (puts still count unfinished tasks).
    pub fn attach(handle: &Handle) -> Result<Queue<T>, SyncError> {
        let ring = ItemRing::attach(
            handle,
            item_tag::<T>(),
            Flavor::Queue,
            &[Flavor::Queue, Flavor::Joinable],
        )?;
        Ok(Queue::from_ring(Arc::new(ring)))
    }

    /// A handle another process can [`attach`](Self::attach) to: an argument for a
    /// `Spawn` or `ForkServer` child (see [`Handle`]).
    pub fn handle(&self) -> Result<Handle, SyncError> {
        self.ring.handle()
    }

    /// Puts `item` (or `&item`) at the end of the queue, waiting while it is full.
    /// `Closed` after [`close`](Self::close); `TooLarge` for an item whose encoding is over
    /// 1 GiB; `Codec` when it cannot be encoded.
    pub fn put(&self, item: impl Borrow<T>) -> Result<(), SyncError> {
        item_codec::put(&self.ring, item.borrow(), &Deadline::forever(), false)
    }

    /// [`put`](Self::put), waiting at most `timeout` for room: `Timeout` then, and the item
    /// was not put. (An item streamed in chunks whose time runs out part-way is dropped by
    /// the consumers, whole.)
    pub fn put_timeout(&self, item: impl Borrow<T>, timeout: Duration) -> Result<(), SyncError> {
        item_codec::put(&self.ring, item.borrow(), &Deadline::after(timeout), false)
    }

    /// [`put`](Self::put) without waiting for room: `Full` when the queue holds `maxsize`
    /// items or the ring has no room for this one. (It waits a few milliseconds at most
    /// for another producer in the middle of a `put`.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use proc_sync::{Queue, SyncError};
    ///
    /// # fn main() -> Result<(), SyncError> {
    /// let queue = Queue::<u32>::bounded(1)?;
    /// queue.try_put(1)?;
    /// assert!(matches!(queue.try_put(2), Err(SyncError::Full { maxsize: 1 })));
    /// let err = queue.put_timeout(2, Duration::from_millis(10)).unwrap_err();
    /// assert!(matches!(err, SyncError::Timeout { .. }));
    /// assert_eq!(queue.get()?, 1);
    /// assert!(matches!(queue.try_get(), Err(SyncError::Empty)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_put(&self, item: impl Borrow<T>) -> Result<(), SyncError> {
        item_codec::put(&self.ring, item.borrow(), &Deadline::forever(), true)
    }

    /// Takes the item at the front, waiting while the queue is empty. `Closed` after
    /// [`close`](Self::close); `Codec` when the bytes are not a `T` (the item is taken).
    pub fn get(&self) -> Result<T, SyncError> {
        item_codec::get(&self.ring, &Deadline::forever(), false)
    }

    /// [`get`](Self::get), waiting at most `timeout` for an item to arrive: `Timeout` then.
    /// Once the first part of an item streamed in chunks is taken, the rest is waited for as
    /// long as its producer streams it.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, SyncError> {
        item_codec::get(&self.ring, &Deadline::after(timeout), false)
    }

    /// [`get`](Self::get) without waiting: `Empty` when no item is there. (It waits a few
    /// milliseconds at most for another consumer in the middle of a `get`.)
    pub fn try_get(&self) -> Result<T, SyncError> {
        item_codec::get(&self.ring, &Deadline::forever(), true)
    }

    /// The number of items in the queue: approximate, as in Python, since other processes
    /// put and get meanwhile.
    pub fn qsize(&self) -> usize {
        self.ring.qsize()
    }

    /// Whether the queue is empty (approximate, as in Python).
    pub fn empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Whether a `put` would wait now: `maxsize` items are in the queue, or its ring is out
    /// of room (approximate, as in Python).
    pub fn full(&self) -> bool {
        self.ring.is_full()
    }

    /// The item bound given at creation; 0 for none.
    pub fn maxsize(&self) -> usize {
        self.ring.maxsize()
    }

    /// The ring's size in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Python's `close`: this process puts and gets nothing more through this queue (or
    /// its clones here): both fail with `Closed`. Other processes, forked children
    /// included once forked, are not affected, and items already put stay for them.
    pub fn close(&self) {
        self.ring.close();
    }

    /// Whether [`close`](Self::close) was called in this process.
    pub fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }
}

impl<T> Queue<T> {
    pub(crate) fn ring(&self) -> &ItemRing {
        &self.ring
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("item", &std::any::type_name::<T>())
            .field("qsize", &self.ring.qsize())
            .field("maxsize", &self.ring.maxsize())
            .field("capacity", &self.ring.capacity())
            .finish_non_exhaustive()
    }
}

impl<Q> fmt::Debug for QueueBuilder<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("maxsize", &self.maxsize)
            .field("capacity", &self.capacity)
            .finish()
    }
}
