//! The `subprocess` seed:
//!
//! ```python
//! import subprocess
//!
//! print('$ nslookup www.python.org')
//! r = subprocess.call(['nslookup', 'www.python.org'])
//! print('Exit code:', r)
//! ```
//!
//! `procdemo subprocess -- CMD ARGS…` runs any command instead. As in Python, the command's
//! exit code is printed, not passed on: the demo succeeds whatever it is.
//!
//! A program that does not exist (no `nslookup` on this machine, say) is where the two modes
//! differ. Run alone, the demo fails with a message naming the program and exits non-zero, as
//! Python's `FileNotFoundError` would, minus the traceback. Under `procdemo all`, the message
//! is printed and the other demos still run, so the run's success does not depend on what is
//! installed here.

use std::io::Write;

use proc_spawn::Error;

/// The seed's command.
const SEED: [&str; 2] = ["nslookup", "www.python.org"];

/// `procdemo subprocess` arguments: the command after `--`, if any, and whether this demo was
/// asked for by name (rather than as part of `procdemo all`).
fn invocation() -> (Vec<String>, bool) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let alone = args.first().is_some_and(|name| name == "subprocess");
    let command = match args.iter().position(|arg| arg == "--") {
        Some(dashes) if alone => args[dashes + 1..].to_vec(),
        _ => Vec::new(),
    };
    (command, alone)
}

pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut command, alone) = invocation();
    if command.is_empty() {
        command = SEED.map(String::from).to_vec();
    }
    println!("$ {}", command.join(" "));
    std::io::stdout().flush()?;
    match proc_spawn::call(&command) {
        Ok(status) => {
            println!("Exit code: {}", status.code());
            Ok(())
        }
        Err(err @ (Error::NotFound { .. } | Error::PermissionDenied { .. })) if !alone => {
            println!("({err}; run `procdemo subprocess -- CMD ARGS…` to try another command)");
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}
