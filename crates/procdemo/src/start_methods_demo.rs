//! `procdemo start-methods`: one function run as a `Process` and one as a pool task under
//! each start method, with the pids that show where each ran:
//!
//! ```text
//! Parent process 4100.
//! fork: Process 4101 (parent 4100), Pool worker 4102 (parent 4100)
//! forkserver: Process 4105 (parent 4104, the fork server), Pool worker 4106 (parent 4104, the fork server)
//! spawn: Process 4107 (parent 4100), Pool worker 4108 (parent 4100)
//! ```
//!
//! `fork` children are copies of this process made at the call; `forkserver` children are
//! forked by a small server process of this executable (started on first use); `spawn`
//! children are fresh runs of this executable. `main` calls `proc_core::init()` first, which
//! is where those fresh runs start.

use proc_core::{Process, StartMethod};
use proc_pool::Pool;

/// Where the function ran: its pid and its parent's.
fn whereami(_: ()) -> (i32, i32) {
    let parent = fork_sys::getppid().map_or(0, |p| p.as_raw());
    (fork_sys::getpid().as_raw(), parent)
}

pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let me = fork_sys::getpid().as_raw();
    println!("Parent process {me}.");
    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        let process = Process::builder()
            .start_method(method)
            .spawn_fn(whereami, ())?
            .join()?;
        let pool = Pool::builder().start_method(method).workers(1).build()?;
        let task = pool.apply(whereami, ())?;
        pool.close();
        pool.join()?;
        let server = proc_core::fork_server_pid().map(|p| p.as_raw());
        let describe = |(pid, parent): (i32, i32)| {
            if Some(parent) == server && parent != me {
                format!("{pid} (parent {parent}, the fork server)")
            } else {
                format!("{pid} (parent {parent})")
            }
        };
        println!(
            "{method}: Process {}, Pool worker {}",
            describe(process),
            describe(task)
        );
    }
    Ok(())
}
