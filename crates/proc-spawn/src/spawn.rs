//! From a `Command` to a running `Child`: the program looked up in `PATH`, argv, envp and the
//! working directory turned into C strings, the streams opened, then one call of
//! `fork_sys::spawn_child_in_window` (the clone child on Linux, or fork+exec when an option
//! needs it). Everything is built here, in the parent, before any process starts.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use fork_sys::exec::CStringArray;
use fork_sys::{Pid, ProcessGroup, SpawnRequest, SpawnStep};

use crate::stdio::{self, Kind, PreparedStream, Stream};
use crate::{Child, Command, CommandPart, Error, Stdio};

/// `PATH` when neither the child's nor the parent's environment has one (glibc's `execvp`).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Starts `command` with its own stream settings.
pub(crate) fn spawn(command: &Command) -> Result<Child, Error> {
    spawn_with_streams(
        command,
        [&command.stdin, &command.stdout, &command.stderr].map(|s| s.clone().unwrap_or_default()),
        false,
    )
}

/// Starts `command` with `streams` for stdin, stdout and stderr (`run` and pipelines
/// substitute pipes where the command left them unset); with `new_group`, in a process group
/// of its own unless the command chose a group or a session itself (`run` with a timeout).
pub(crate) fn spawn_with_streams(
    command: &Command,
    streams: [Stdio; 3],
    new_group: bool,
) -> Result<Child, Error> {
    let program_name = &command.program;
    let spawn_error = |source: io::Error| Error::Spawn {
        program: program_name.clone(),
        source,
    };
    reject_nul_bytes(command)?;
    let program = resolve_program(command)?;
    let program = c_string(program.as_os_str()).map_err(spawn_error)?;
    let argv = CStringArray::new(std::iter::once(program_name).chain(&command.args))
        .map_err(spawn_error)?;
    let envp = environment(command).map_err(spawn_error)?;
    let cwd = command
        .cwd
        .as_deref()
        .map(|dir| c_string(dir.as_os_str()))
        .transpose()
        .map_err(spawn_error)?;

    let [stdin, stdout, stderr] = &streams;
    // From the first pipe to the closing of the child-side ends, no thread forks through
    // fork-sys (a `Process`): its child would keep copies of those ends, and our reads would
    // see end-of-file only when it exits. Declared before the ends, so it outlives them on
    // every early return.
    let window = fork_sys::spawn_window();
    let stdin_end = stdio::prepare(stdin, Stream::Stdin).map_err(spawn_error)?;
    let stdout_end = stdio::prepare(stdout, Stream::Stdout).map_err(spawn_error)?;
    let merge_stderr = matches!(stderr.0, Kind::Stdout);
    let stderr_end = if merge_stderr {
        PreparedStream::default()
    } else {
        stdio::prepare(stderr, Stream::Stderr).map_err(spawn_error)?
    };
    let stdout_fd = stdout_end.child_fd();
    let parent_stdout = io::stdout();
    let stderr_fd = if merge_stderr {
        // Where stdout goes: its new fd, or the parent's own stdout when inherited.
        Some(stdout_fd.unwrap_or_else(|| parent_stdout.as_fd()))
    } else {
        stderr_end.child_fd()
    };

    let pass_fds: Vec<BorrowedFd<'_>> = command.pass_fds.iter().map(|fd| fd.as_fd()).collect();
    let mut request = SpawnRequest::new(&program, &argv, &envp);
    request.stdio = [stdin_end.child_fd(), stdout_fd, stderr_fd];
    request.cwd = cwd.as_deref();
    request.close_fds = command.close_fds;
    request.pass_fds = &pass_fds;
    request.new_session = command.new_session;
    let new_group = new_group && command.process_group.is_none() && !command.new_session;
    request.process_group = match command.process_group {
        None if new_group => Some(ProcessGroup::New),
        None => None,
        Some(0) => Some(ProcessGroup::New),
        Some(pgid) => Some(ProcessGroup::Join(Pid::from_raw(pgid).ok_or_else(
            || {
                spawn_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("process group {pgid} is not a valid process group id"),
                ))
            },
        )?)),
    };
    request.uid = command.uid;
    request.gid = command.gid;
    request.umask = command.umask;

    let handle = fork_sys::spawn_child_in_window(&request, &window)
        .map_err(|err| spawn_failure(command, err))?;
    let own_group = command.new_session || command.process_group == Some(0) || new_group;
    // The child-side ends (pipe ends, /dev/null) close here, as the streams drop: the child
    // has its copies, and our readers see end-of-file when it closes them.
    let parent_ends = [stdin_end, stdout_end, stderr_end].map(|end| end.parent_end);
    drop(window);
    Ok(Child::new(
        handle,
        command.get_args(),
        parent_ends,
        own_group,
        command.kill_on_drop,
    ))
}

/// The typed error for a failed spawn, from the step fork-sys says failed: the working
/// directory named for `chdir`, the program for `exec`, the step itself for anything else
/// (`setuid: operation not permitted`).
fn spawn_failure(command: &Command, err: io::Error) -> Error {
    let program = command.program.clone();
    let failure = fork_sys::SpawnFailure::of(&err);
    match (failure.map(|f| f.step), &command.cwd) {
        (Some(SpawnStep::Chdir), Some(cwd)) => {
            return Error::BadWorkingDirectory {
                program,
                cwd: cwd.clone(),
                source: failure.map_or(err, |f| f.os_error()),
            };
        }
        (Some(SpawnStep::Exec), _) => {}
        // Another step, or not from the child's set-up at all (out of processes before one
        // started): say what the system said, the step included.
        _ => {
            return Error::Spawn {
                program,
                source: err,
            };
        }
    }
    match err.kind() {
        io::ErrorKind::NotFound => Error::NotFound { program },
        io::ErrorKind::PermissionDenied => Error::PermissionDenied { program },
        _ => Error::Spawn {
            program,
            source: err,
        },
    }
}

/// [`Error::NulByte`] naming the first part of `command` that holds a NUL byte: checked before
/// the `PATH` lookup (a NUL in the name must not read as "not found") and before any C string
/// is built, so every such command fails the same way.
fn reject_nul_bytes(command: &Command) -> Result<(), Error> {
    let has_nul = |s: &OsStr| s.as_bytes().contains(&0);
    let env_part = || {
        command.env.vars.iter().find_map(|(name, value)| {
            let value = value.as_deref()?; // a removal passes nothing to exec
            if has_nul(name) {
                Some(CommandPart::EnvName(name.clone()))
            } else {
                has_nul(value).then(|| CommandPart::EnvValue(name.clone()))
            }
        })
    };
    let part = has_nul(&command.program)
        .then_some(CommandPart::Program)
        .or_else(|| {
            let i = command.args.iter().position(|arg| has_nul(arg))?;
            Some(CommandPart::Argument(i + 1))
        })
        .or_else(env_part)
        .or_else(|| {
            let cwd = command.cwd.as_deref()?;
            has_nul(cwd.as_os_str()).then_some(CommandPart::CurrentDir)
        });
    match part {
        None => Ok(()),
        Some(part) => Err(Error::NulByte {
            program: command.program.clone(),
            part,
        }),
    }
}

fn c_string(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s:?} contains a NUL byte and cannot be passed to exec"),
        )
    })
}

/// The program's path: as given when it contains a `/`, else the first file of that name in
/// `PATH` (the child's `PATH` when the command sets one) that we may execute, as `execvp`
/// searches: a candidate we may not execute (no `x` bit for us, a directory) is passed over,
/// and `PermissionDenied` only when no executable one was found but such a candidate was.
/// Relative entries (`.`, an empty entry, `bin`) are relative to the directory the child
/// execs in: the command's `current_dir` when it sets one.
///
/// Looking up here, before the spawn, keeps the lookup's allocations out of the child and
/// turns "not found" into an error that needs no process.
fn resolve_program(command: &Command) -> Result<PathBuf, Error> {
    let program = &command.program;
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    if program.is_empty() {
        return Err(Error::NotFound {
            program: program.clone(),
        });
    }
    let path: OsString = match command.env.decided(OsStr::new("PATH")) {
        Some(Some(path)) => path.to_owned(),
        Some(None) => DEFAULT_PATH.into(),
        None => std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    };
    let mut found_unexecutable = false;
    for dir in path.as_bytes().split(|&b| b == b':') {
        // An empty entry means the current directory, as in execvp.
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(program);
        // Exec'd as `candidate` in the child's working directory; checked here from ours.
        let on_disk = match &command.cwd {
            Some(cwd) if candidate.is_relative() => cwd.join(&candidate),
            _ => candidate.clone(),
        };
        match std::fs::metadata(&on_disk) {
            Ok(meta) if meta.is_file() => match fork_sys::check_executable(&on_disk) {
                Ok(()) => return Ok(candidate),
                Err(_) => found_unexecutable = true,
            },
            // A directory: execve says EACCES, and execvp goes on to the next entry.
            Ok(_) => found_unexecutable = true,
            Err(_) => {}
        }
    }
    let program = program.clone();
    Err(if found_unexecutable {
        Error::PermissionDenied { program }
    } else {
        Error::NotFound { program }
    })
}

/// envp for the child: the parent's environment (read under std's lock) with the command's
/// changes applied.
fn environment(command: &Command) -> io::Result<CStringArray> {
    let changes = &command.env;
    if changes.is_unchanged() {
        return CStringArray::from_current_env();
    }
    let mut vars: Vec<(OsString, OsString)> = if changes.clear {
        Vec::new()
    } else {
        std::env::vars_os()
            .filter(|(key, _)| !changes.vars.contains_key(key))
            .collect()
    };
    vars.extend(
        changes
            .vars
            .iter()
            .filter_map(|(key, value)| Some((key.clone(), value.clone()?))),
    );
    for (key, _) in &vars {
        if key.is_empty() || key.as_bytes().contains(&b'=') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("environment variable name {key:?} is empty or contains '='"),
            ));
        }
    }
    CStringArray::new(vars.into_iter().map(|(mut key, value)| {
        key.push("=");
        key.push(value);
        key
    }))
}
