//! The `multiprocessing.Queue` seed:
//!
//! ```python
//! from multiprocessing import Process, Queue
//! import os, time, random
//!
//! def write(q):
//!     print('Process to write: %s' % os.getpid())
//!     for value in ['A', 'B', 'C']:
//!         print('Put %s to queue...' % value)
//!         q.put(value)
//!         time.sleep(random.random())
//!
//! def read(q):
//!     print('Process to read: %s' % os.getpid())
//!     while True:
//!         value = q.get(True)
//!         print('Get %s from queue.' % value)
//!
//! if __name__=='__main__':
//!     q = Queue()
//!     pw = Process(target=write, args=(q,))
//!     pr = Process(target=read, args=(q,))
//!     pw.start()
//!     pr.start()
//!     pw.join()
//!     pr.terminate()
//! ```
//!
//! The lines come from two processes. Python's version can terminate the reader before it
//! prints the last item; here the queue is a `JoinableQueue`, the reader marks each value
//! done once printed, and the parent `join`s the queue before terminating the reader, so
//! all six lines are always there. `PROCDEMO_QUEUE_MAX_SLEEP` (seconds, default 1) shortens
//! the writer's sleeps, for tests.

use std::time::Duration;

use proc_core::Process;
use proc_sync::JoinableQueue;

use crate::pool_demo::{max_sleep, random_fraction};

fn write(q: &JoinableQueue<String>, max_sleep: f64) -> Result<(), String> {
    println!("Process to write: {}", fork_sys::getpid());
    for value in ["A", "B", "C"] {
        println!("Put {value} to queue...");
        q.put(value.to_string()).map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_secs_f64(random_fraction() * max_sleep));
    }
    Ok(())
}

fn read(q: &JoinableQueue<String>) -> Result<(), String> {
    println!("Process to read: {}", fork_sys::getpid());
    loop {
        let value = q.get().map_err(|e| e.to_string())?;
        println!("Get {value} from queue.");
        q.task_done().map_err(|e| e.to_string())?;
    }
}

pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let max_sleep = max_sleep("PROCDEMO_QUEUE_MAX_SLEEP", 1.0)?;
    let q = JoinableQueue::<String>::new()?;
    let pw = {
        let q = q.clone();
        Process::builder()
            .name("write")
            .spawn(move || write(&q, max_sleep))?
    };
    let pr = {
        let q = q.clone();
        Process::builder().name("read").spawn(move || read(&q))?
    };
    pw.join()??;
    // Every value put has been printed by the reader; then it can go.
    q.join()?;
    pr.terminate()?;
    match pr.join() {
        Err(proc_core::ProcessError::Signaled { .. }) => Ok(()),
        Err(err) => Err(err.into()),
        Ok(Err(message)) => Err(format!("the reader failed: {message}").into()),
        Ok(Ok(())) => Err("the reader returned from its endless loop".into()),
    }
}
