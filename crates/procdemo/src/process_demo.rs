//! The `multiprocessing.Process` seed:
//!
//! ```python
//! from multiprocessing import Process
//! import os
//!
//! def run_proc(name):
//!     print('Run child process %s (%s)...' % (name, os.getpid()))
//!
//! if __name__ == '__main__':
//!     print('Parent process %s.' % os.getpid())
//!     p = Process(target=run_proc, args=('test',))
//!     print('Child process will start.')
//!     p.start()
//!     p.join()
//!     print('Child process end.')
//! ```
//!
//! The child also hands back its own pid and its parent's, typed, through `join`; the demo
//! checks them, so a child that ran somewhere unexpected is an error, not a silent success.

use proc_core::Process;

fn run_proc(name: &str) -> (i32, Option<i32>) {
    let pid = fork_sys::getpid();
    println!("Run child process {name} ({pid})...");
    (pid.as_raw(), fork_sys::getppid().map(|p| p.as_raw()))
}

pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let parent = fork_sys::getpid();
    println!("Parent process {parent}.");
    println!("Child process will start.");
    let p = Process::builder()
        .name("run_proc")
        .spawn(move || run_proc("test"))?;
    let child = p.pid();
    let (reported_pid, reported_parent) = p.join()?;
    if reported_pid != child.as_raw() || reported_parent != Some(parent.as_raw()) {
        return Err(format!(
            "child reported pid {reported_pid} and parent {reported_parent:?}; expected {child} and {parent}"
        )
        .into());
    }
    println!("Child process end.");
    Ok(())
}
