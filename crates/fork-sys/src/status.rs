//! How a process ended.

use std::fmt;

use crate::Signal;

/// How a child process ended, as reported by `waitpid`.
///
/// `Display` reads like a sentence fragment: `exited with code 3`, `killed by SIGKILL`,
/// `killed by SIGSEGV (core dumped)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The process called `exit` (or returned from `main`) with this code, `0..=255`.
    Exited(i32),
    /// A signal ended the process.
    Signaled {
        /// The signal that ended it.
        signal: Signal,
        /// Whether the kernel wrote a core dump.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// Decodes a raw `wait` status; `None` for a "stopped" or "continued" report, which is not
    /// an ending.
    pub fn from_raw(raw: i32) -> Option<ExitStatus> {
        if libc::WIFEXITED(raw) {
            Some(ExitStatus::Exited(libc::WEXITSTATUS(raw)))
        } else if libc::WIFSIGNALED(raw) {
            let signal = Signal::from_kernel(libc::WTERMSIG(raw))?;
            let core_dumped = libc::WCOREDUMP(raw);
            Some(ExitStatus::Signaled {
                signal,
                core_dumped,
            })
        } else {
            None
        }
    }

    /// The raw `wait` status this was decoded from (as `std`'s `ExitStatusExt::into_raw` gives).
    pub fn into_raw(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => (code & 0xff) << 8,
            ExitStatus::Signaled {
                signal,
                core_dumped,
            } => signal.as_raw() | if core_dumped { 0x80 } else { 0 },
        }
    }

    /// True when the process exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// Python's `returncode`: the exit code, or minus the signal number when a signal ended the
    /// process (`-9` for SIGKILL).
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled { signal, .. } => -signal.as_raw(),
        }
    }

    /// The exit code when the process exited normally (what `std`'s `ExitStatus::code` returns).
    pub fn exit_code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Signaled { .. } => None,
        }
    }

    /// The signal that ended the process, if one did.
    pub fn signal(self) -> Option<Signal> {
        match self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled { signal, .. } => Some(signal),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(0) => f.write_str("exited successfully"),
            ExitStatus::Exited(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signaled {
                signal,
                core_dumped,
            } => {
                write!(f, "killed by {signal}")?;
                if core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

impl From<ExitStatus> for std::process::ExitStatus {
    fn from(status: ExitStatus) -> std::process::ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        std::process::ExitStatus::from_raw(status.into_raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_like_a_sentence() {
        let cases = [
            (ExitStatus::Exited(0), "exited successfully"),
            (ExitStatus::Exited(3), "exited with code 3"),
            (
                ExitStatus::Signaled {
                    signal: Signal::KILL,
                    core_dumped: false,
                },
                "killed by SIGKILL",
            ),
            (
                ExitStatus::Signaled {
                    signal: Signal::SEGV,
                    core_dumped: true,
                },
                "killed by SIGSEGV (core dumped)",
            ),
        ];
        for (status, text) in cases {
            assert_eq!(status.to_string(), text);
        }
    }

    #[test]
    fn raw_round_trips_and_agrees_with_std() {
        use std::os::unix::process::ExitStatusExt;
        let statuses = [
            ExitStatus::Exited(0),
            ExitStatus::Exited(255),
            ExitStatus::Signaled {
                signal: Signal::TERM,
                core_dumped: false,
            },
            ExitStatus::Signaled {
                signal: Signal::ABRT,
                core_dumped: true,
            },
        ];
        for status in statuses {
            assert_eq!(ExitStatus::from_raw(status.into_raw()), Some(status));
            let std_status = std::process::ExitStatus::from(status);
            assert_eq!(std_status.code(), status.exit_code());
            assert_eq!(std_status.signal(), status.signal().map(Signal::as_raw));
            assert_eq!(
                std_status.core_dumped(),
                matches!(
                    status,
                    ExitStatus::Signaled {
                        core_dumped: true,
                        ..
                    }
                )
            );
        }
    }

    #[test]
    fn python_style_code_is_negative_for_signals() {
        let killed = ExitStatus::Signaled {
            signal: Signal::KILL,
            core_dumped: false,
        };
        assert_eq!(killed.code(), -9);
        assert_eq!(ExitStatus::Exited(7).code(), 7);
        assert!(!killed.success());
        assert!(ExitStatus::Exited(0).success());
    }
}
