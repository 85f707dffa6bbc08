//! [`Launcher`]: starting a function child through another program (`srun`, `ssh`, `docker
//! exec`), which runs this executable wherever it runs things and connects its stdin and
//! stdout to ours. The child speaks the bootstrap protocol over that byte stream instead of a
//! socket: its hello on stdout, its launch on stdin, its result on stdout.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use fork_sys::exec::CStringArray;
use fork_sys::{ChildHandle, Interest, Signal, SpawnRequest};

use crate::bootstrap::{HELLO_TIMEOUT, Hello, Launch, frame_of};
use crate::codec::FrameBuffer;
use crate::error::ProcessError;
use crate::exec_self::Role;
use crate::launcher::{LaunchRequest, StartError};
use crate::process::Process;
use crate::start_method::StartMethod;

/// A command that starts a program somewhere and connects its stdin and stdout to ours:
/// `LAUNCHER ARGS… <this executable> <marker>`. The executable must be at the same path
/// where the launcher runs it (a shared file system, as on most clusters); the child's hello
/// carries its build id, and another build is refused (`ExecutableMismatch`).
///
/// ```no_run
/// use proc_core::{Launcher, Process, StartMethod};
///
/// fn hostname(_: ()) -> String {
///     std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default()
/// }
///
/// // On a node of the Slurm allocation, as one job step:
/// let p = Process::builder()
///     .start_method(StartMethod::Spawn)
///     .launcher(Launcher::slurm().arg("--time=1"))
///     .spawn_fn(hostname, ())?;
/// println!("ran on {}", p.join()?);
/// # Ok::<(), proc_core::ProcessError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Launcher {
    kind: Kind,
    args: Vec<OsString>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `argv…` then the program.
    Command(Vec<OsString>),
    /// `ssh [args…] HOST -- 'program' 'marker'`, hosts in turn.
    Ssh {
        hosts: Arc<[String]>,
        next: Arc<AtomicUsize>,
    },
}

impl Launcher {
    /// Any launcher: `argv` (program first, looked up in `PATH`), then the extra
    /// [`arg`](Launcher::arg)s, then this executable and its marker. `Launcher::command(["env"])`
    /// runs the child right here, which is how the stream protocol is tested without a
    /// cluster; `["docker", "exec", "-i", "box"]`, `["kubectl", "exec", "-i", "pod", "--"]`.
    pub fn command<I, S>(argv: I) -> Launcher
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Launcher {
            kind: Kind::Command(argv.into_iter().map(Into::into).collect()),
            args: Vec::new(),
        }
    }

    /// Slurm: each child is one job step, `srun --nodes=1 --ntasks=1 --exact --quiet` (inside
    /// an allocation from `salloc` or `sbatch`, a step of it, and `--exact` gives the step only
    /// the CPUs it asks for, so steps run side by side instead of each taking the whole
    /// allocation and the next waiting; outside one, a job of its own). srun holds a task's
    /// output until a newline (`--unbuffered` would make stdout a terminal, which binary
    /// frames cannot cross), so every frame a launched child writes is followed by one
    /// newline, which the reader expects and drops. Add srun arguments with
    /// [`arg`](Launcher::arg): `--partition=p`, `--time=10`, `--cpus-per-task=4`,
    /// `--mem-per-cpu=2G` (where Slurm tracks memory, a step given no memory size takes all
    /// of the allocation's), `--jobid=N` (steps of an allocation made elsewhere).
    pub fn slurm() -> Launcher {
        Launcher::command(["srun", "--nodes=1", "--ntasks=1", "--exact", "--quiet"])
    }

    /// `ssh` to `hosts` in turn (one child per launch, round robin), in batch mode (no
    /// password prompt: keys or an agent). The remote command is quoted for a POSIX shell.
    pub fn ssh<I, S>(hosts: I) -> Launcher
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Launcher {
            kind: Kind::Ssh {
                hosts: hosts.into_iter().map(Into::into).collect(),
                next: Arc::new(AtomicUsize::new(0)),
            },
            args: vec![OsString::from("-o"), OsString::from("BatchMode=yes")],
        }
    }

    /// One more argument for the launcher itself (before the program it launches).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Launcher {
        self.args.push(arg.into());
        self
    }

    /// The whole command line that runs `program` with `marker`.
    fn argv(&self, program: &Path, marker: &str) -> io::Result<Vec<OsString>> {
        match &self.kind {
            Kind::Command(argv) => {
                if argv.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a launcher command needs at least a program",
                    ));
                }
                let mut all = argv.clone();
                all.extend(self.args.iter().cloned());
                all.push(program.as_os_str().to_owned());
                all.push(OsString::from(marker));
                Ok(all)
            }
            Kind::Ssh { hosts, next } => {
                if hosts.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "an ssh launcher needs at least one host",
                    ));
                }
                let host = &hosts[next.fetch_add(1, Ordering::Relaxed) % hosts.len()];
                let mut all = vec![OsString::from("ssh")];
                all.extend(self.args.iter().cloned());
                all.push(OsString::from(host));
                all.push(OsString::from("--"));
                let mut remote = shell_quote(program.as_os_str().as_bytes());
                remote.push(b' ');
                remote.extend(shell_quote(marker.as_bytes()));
                all.push(OsString::from(OsStr::from_bytes(&remote)));
                Ok(all)
            }
        }
    }
}

/// `bytes` in single quotes for a POSIX shell (`'` written as `'\''`).
fn shell_quote(bytes: &[u8]) -> Vec<u8> {
    let mut quoted = vec![b'\''];
    for &byte in bytes {
        if byte == b'\'' {
            quoted.extend_from_slice(b"'\\''");
        } else {
            quoted.push(byte);
        }
    }
    quoted.push(b'\'');
    quoted
}

/// `program` as given if it has a slash, else the first executable file of that name in
/// `PATH`.
fn find_program(program: &OsStr) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if candidate
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("launcher {:?} not found in PATH", program.to_string_lossy()),
    ))
}

/// Starts `request`'s function through `launcher` and sends it its launch over the stream.
pub(crate) fn launch_through<R>(
    request: LaunchRequest,
    launcher: &Launcher,
) -> Result<Process<R>, ProcessError> {
    let (child, input, output, request, _) = start(request, launcher, false)?;
    // The child reads nothing more: its stdin ends here.
    drop(input);
    Ok(Process::started(
        child,
        output,
        request.name,
        request.daemon,
        request.max_frame_len,
        StartMethod::Spawn,
    ))
}

/// This side's ends of a child's streams, from
/// [`spawn_fn_with_streams`](crate::FnProcessBuilder::spawn_fn_with_streams): all
/// non-blocking.
#[derive(Debug)]
pub struct LaunchedStreams {
    /// What is written here reaches the child's input stream.
    pub input: File,
    /// What the child writes to its output stream comes out here.
    pub output: File,
    /// The launcher's stderr, and so the child's (what it prints goes there too): the
    /// caller forwards it, or drops it to discard it.
    pub stderr: File,
}

/// Starts `request`'s function through `launcher`, the function taking the stream: returns
/// the process and this side's ends of it.
pub(crate) fn launch_with_streams<R>(
    request: LaunchRequest,
    launcher: &Launcher,
) -> Result<(Process<R>, LaunchedStreams), ProcessError> {
    let (child, input, output, request, stderr) = start(request, launcher, true)?;
    let Some(stderr) = stderr else {
        return Err(ProcessError::Spawn {
            name: request.name,
            source: io::Error::other("the launcher's stderr was not captured"),
        });
    };
    let name = request.name.clone();
    let io_error = |source| ProcessError::Spawn {
        name: name.clone(),
        source,
    };
    fork_sys::set_nonblocking(&input, true).map_err(io_error)?;
    fork_sys::set_nonblocking(&stderr, true).map_err(io_error)?;
    // The process has no result of its own to send: an empty pipe stands for it.
    let (no_result, _) = fork_sys::pipe().map_err(io_error)?;
    fork_sys::set_nonblocking(&no_result, true).map_err(io_error)?;
    let process = Process::started(
        child,
        File::from(no_result),
        request.name,
        request.daemon,
        request.max_frame_len,
        StartMethod::Spawn,
    );
    Ok((
        process,
        LaunchedStreams {
            input,
            output,
            stderr,
        },
    ))
}

/// What [`start`] returns: the child, our ends of its stdin and stdout (the latter
/// non-blocking), the request's remains, and with `streams`, its stderr.
type Started = (ChildHandle, File, File, LaunchRequest, Option<File>);

/// Spawns the launcher, checks the hello, sends the launch (`streams`: the function takes
/// the stream, and its stderr is captured for the caller).
fn start(
    request: LaunchRequest,
    launcher: &Launcher,
    streams: bool,
) -> Result<Started, ProcessError> {
    let name = request.name.clone();
    let spawn_error = |source| ProcessError::Spawn {
        name: name.clone(),
        source,
    };
    if !request.fds.is_empty() {
        return Err(spawn_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors cannot cross a launcher: it connects only stdin and stdout",
        )));
    }
    // A path the launched side can open: never `/proc/self/exe`, which would name the
    // launcher itself there.
    let program = match crate::start_method::chosen_executable() {
        Some(path) => path,
        None => std::env::current_exe().map_err(spawn_error)?,
    };
    let argv = launcher
        .argv(&program, Role::Launched.marker())
        .map_err(spawn_error)?;
    let launcher_program = find_program(&argv[0]).map_err(spawn_error)?;
    let c_program = CString::new(launcher_program.as_os_str().as_bytes()).map_err(|_| {
        spawn_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "launcher path has a NUL byte",
        ))
    })?;
    let c_argv = CStringArray::new(argv.iter().cloned()).map_err(spawn_error)?;
    let envp = CStringArray::from_current_env().map_err(spawn_error)?;
    let window = fork_sys::spawn_window();
    let (stdin_read, stdin_write) = fork_sys::pipe().map_err(spawn_error)?;
    let (stdout_read, stdout_write) = fork_sys::pipe().map_err(spawn_error)?;
    let stderr_pipe = if streams {
        Some(fork_sys::pipe().map_err(spawn_error)?)
    } else {
        None
    };
    let mut spawn = SpawnRequest::new(&c_program, &c_argv, &envp);
    spawn.stdio[0] = Some(stdin_read.as_fd());
    spawn.stdio[1] = Some(stdout_write.as_fd());
    spawn.stdio[2] = stderr_pipe.as_ref().map(|(_, write)| write.as_fd());
    let spawned = fork_sys::spawn_in_window(&spawn, &window);
    let stderr = stderr_pipe.map(|(read, _write)| File::from(read));
    drop((stdin_read, stdout_write));
    drop(window);
    let pid = spawned.map_err(spawn_error)?;
    let mut child = ChildHandle::new(pid);
    let mut input = File::from(stdin_write);
    let output = File::from(stdout_read);
    let started = (|| {
        read_hello(&output, &mut child, &program)?;
        let launch = Launch {
            trampoline: crate::code_offset::of(request.trampoline),
            function: crate::code_offset::of(request.function),
            name: request.name.clone(),
            // The parent may be on another machine: a launched child does not watch it.
            watch_parent: None,
            max_frame_len: request.max_frame_len as u64,
            fds: if streams {
                crate::bootstrap::STREAMS
            } else {
                0
            },
            context: None,
        };
        let mut frames = frame_of(&launch).map_err(StartError::Io)?;
        frames.extend_from_slice(&(request.args.len() as u32).to_le_bytes());
        frames.extend_from_slice(&request.args);
        input.write_all(&frames).map_err(StartError::Io)?;
        fork_sys::set_nonblocking(&output, true).map_err(StartError::Io)
    })();
    if let Err(err) = started {
        let _ = child.send_signal(Signal::KILL);
        let _ = child.wait();
        return Err(err.into_process_error(request.name));
    }
    Ok((child, input, output, request, stderr))
}

/// Reads the child's hello from its stdout and checks its build, as for `Spawn`.
fn read_hello(output: &File, child: &mut ChildHandle, program: &Path) -> Result<(), StartError> {
    let pid = child.pid();
    let no_entry = |reason: String| StartError::NoEntry {
        pid,
        program: program.to_path_buf(),
        reason,
    };
    let deadline = Instant::now() + HELLO_TIMEOUT;
    let mut frames = FrameBuffer::new(64 << 10);
    let mut hello = None;
    loop {
        if hello.is_none() {
            hello = frames.next_frame::<Hello>().map_err(|err| {
                no_entry(format!(
                    "its output is not a hello ({err}): does the launcher print anything first?"
                ))
            })?;
        }
        // The newline after the frame (see `Launcher::slurm`) is taken too: it must not be
        // left for whoever reads the output next.
        if let (Some(_), Some(&byte)) = (&hello, frames.peek().first()) {
            if byte != crate::bootstrap::FRAME_SEPARATOR {
                return Err(no_entry(format!(
                    "its hello was followed by byte {byte:#04x}, not a newline"
                )));
            }
            frames.consume(1);
            let hello = hello
                .take()
                .ok_or_else(|| no_entry("no hello".to_owned()))?;
            return crate::launcher::check_identity(hello, pid, program);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(no_entry(format!(
                "it said nothing for {} s",
                HELLO_TIMEOUT.as_secs()
            )));
        }
        let mut fds = vec![(output.as_fd(), Interest::Read)];
        if let Some(exit) = child.exit_fd() {
            fds.push((exit, Interest::Read));
        }
        let ready = fork_sys::poll(
            &fds,
            Some((deadline - now).min(std::time::Duration::from_millis(100))),
        )
        .map_err(StartError::Io)?;
        if !ready.first().is_some_and(|r| r.is_ready()) {
            continue;
        }
        let mut reader = output;
        match frames.read_from(&mut reader) {
            Ok(0) if hello.is_some() => {
                return Err(no_entry(
                    "its output ended right after its hello".to_owned(),
                ));
            }
            Ok(0) => {
                let how = match child.wait_timeout(std::time::Duration::from_millis(500)) {
                    Ok(Some(status)) => {
                        format!("the launcher {status} before the child said hello")
                    }
                    _ => "its output ended before it said hello".to_owned(),
                };
                return Err(no_entry(how));
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(StartError::Io(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_put_the_program_and_marker_last() {
        let launcher = Launcher::slurm().arg("--partition=debug");
        let argv = launcher.argv(Path::new("/opt/my app"), "--m").unwrap();
        assert_eq!(
            argv,
            [
                "srun",
                "--nodes=1",
                "--ntasks=1",
                "--exact",
                "--quiet",
                "--partition=debug",
                "/opt/my app",
                "--m"
            ]
        );
        assert!(
            Launcher::command(Vec::<String>::new())
                .argv(Path::new("/p"), "--m")
                .is_err()
        );
    }

    #[test]
    fn ssh_quotes_the_remote_command_and_takes_hosts_in_turn() {
        let launcher = Launcher::ssh(["a", "b"]);
        let first = launcher.argv(Path::new("/opt/it's"), "--m").unwrap();
        assert_eq!(
            first,
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "a",
                "--",
                "'/opt/it'\\''s' '--m'"
            ]
        );
        let second = launcher.clone().argv(Path::new("/p"), "--m").unwrap();
        assert_eq!(second[3], "b");
        assert_eq!(launcher.argv(Path::new("/p"), "--m").unwrap()[3], "a");
    }
}
