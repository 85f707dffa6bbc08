//! The `os.fork` seed:
//!
//! ```python
//! import os
//! print('Process (%s) start...' % os.getpid())
//! pid = os.fork()
//! if pid == 0:
//!     print('I am child process (%s) and my parent is %s.' % (os.getpid(), os.getppid()))
//! else:
//!     print('I (%s) just created a child process (%s).' % (os.getpid(), pid))
//! ```
//!
//! Unlike the Python original, the parent waits for its child, so no zombie is left behind and
//! a child that fails is reported.

use std::io::Write;

use fork_sys::Fork;

pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "Process ({}) start...", fork_sys::getpid())?;
    // Anything still buffered would be printed by both processes.
    stdout.flush()?;
    #[allow(unsafe_code)] // The os.fork seed is about calling fork itself.
    // SAFETY: procdemo is single-threaded, so no other thread can hold a lock the child needs;
    // the child writes one line and leaves through `exit_immediately`, never returning into
    // main's stack.
    let forked = unsafe { fork_sys::fork()? };
    match forked {
        Fork::Child => {
            let parent = fork_sys::getppid().map_or(0, |pid| pid.as_raw());
            let line = format!(
                "I am child process ({}) and my parent is {parent}.\n",
                fork_sys::getpid()
            );
            let ok = stdout
                .write_all(line.as_bytes())
                .and_then(|()| stdout.flush());
            fork_sys::exit_immediately(if ok.is_ok() { 0 } else { 1 });
        }
        Fork::Parent(child) => {
            writeln!(
                stdout,
                "I ({}) just created a child process ({child}).",
                fork_sys::getpid()
            )?;
            let status = fork_sys::wait(child)?;
            if !status.success() {
                return Err(format!("child process {child} {status}").into());
            }
            Ok(())
        }
    }
}
