//! The `ssh` leg of `cargo xtask test`: the crates' `ssh_` tests, which run work through a real
//! `ssh` into a private `sshd`.
//!
//! The leg starts no daemon and needs no root: each test starts its own sshd on a loopback port
//! with keys in a temporary directory (through a test-support helper) and stops it again. All
//! the leg checks is that the OpenSSH programs are installed; without them it is skipped and
//! says why, and it never fails a run for what the machine lacks.

use crate::cluster::{LegEnd, find_program};
use crate::error::Error;
use crate::workspace::{CargoInvocation, Workspace};

/// Set to `1` for the crates' `ssh_` tests: the OpenSSH programs are installed, so a test may
/// start its own sshd and connect to it.
pub(crate) const SSH_ENV: &str = "PROCKIT_SSH";

/// The substring that selects a test for this leg (the test legs run it too, without
/// [`SSH_ENV`], where it should return early).
pub(crate) const TEST_FILTER: &str = "ssh_";

/// The programs the tests run: the daemon, the client, and the key generator for the host and
/// user keys made afresh per test.
const PROGRAMS: [&str; 3] = ["sshd", "ssh", "ssh-keygen"];

/// What the leg does, for the line printed before it runs.
pub(crate) fn leg_description(tests: &CargoInvocation) -> String {
    format!("check for {}; {tests}", PROGRAMS.join(", "))
}

/// Runs the leg; `tests` is the cargo command that runs the crates' `ssh_` tests.
pub(crate) fn run_leg(workspace: &Workspace, tests: &CargoInvocation) -> Result<LegEnd, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = PROGRAMS
        .into_iter()
        .filter(|name| find_program(name, &path).is_none())
        .collect();
    if let Some(reason) = skip_reason(&missing) {
        println!("ssh: SKIPPED: {reason}");
        return Ok(LegEnd::Skipped(reason));
    }
    println!("ssh: {tests}");
    workspace.run(tests)?;
    Ok(LegEnd::Ran)
}

/// Why the leg cannot run here (`missing` are the programs not found), or `None` when it can.
fn skip_reason(missing: &[&str]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "OpenSSH not installed (no {}); `.ci/run` installs it as root on Debian/Ubuntu: \
         apt-get install openssh-server openssh-client",
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_without_the_programs_and_says_how_to_get_them() {
        let cases: [(&[&str], Option<&str>); 3] = [
            (&[], None),
            (&["sshd"], Some("OpenSSH not installed (no sshd); ")),
            (
                &["sshd", "ssh", "ssh-keygen"],
                Some("OpenSSH not installed (no sshd, ssh, ssh-keygen); "),
            ),
        ];
        for (missing, expected_start) in cases {
            let reason = skip_reason(missing);
            match expected_start {
                None => assert_eq!(reason, None, "missing: {missing:?}"),
                Some(start) => assert!(
                    reason
                        .as_deref()
                        .is_some_and(|reason| reason.starts_with(start)
                            && reason.contains(".ci/run")
                            && reason.ends_with("apt-get install openssh-server openssh-client")),
                    "missing: {missing:?}, reason: {reason:?}"
                ),
            }
        }
    }
}
