//! The fork server: a single-threaded process of this executable, started (by `Spawn`) the
//! first time a `ForkServer` child is asked for, that forks children on request.
//!
//! It owns no user state, so its forks are cheap (it is a few MiB, whatever the program's
//! size) and inherit no lock another thread held and no descriptor of the program's. Its
//! invariants (docs/ARCHITECTURE.md lists them too):
//!
//! - **Only its program can ask it for anything.** It listens on one end of a socket pair it
//!   inherited as stdin, never on a name: no other process can connect, whatever its uid.
//! - **It dies with its program.** The program tells it its pid, and the server sleeps on a
//!   pidfd of it (fork-sys's `process_exit_fd`) besides the control socket: when the program
//!   exits, so does the server. Daemon children die with the server (`PR_SET_PDEATHSIG`, which
//!   is sound here: the server has one thread, so "the thread that forked" is the server).
//! - **It reaps every child and reports how each ended**, as a 4-byte raw wait status on a
//!   pipe the program gave with the request, then closes it; a child whose request asked for
//!   it takes its process group with it when it exits (killed before the reap, so the group id
//!   cannot have been reused). The program holds a pidfd of each child (opened here before the
//!   child could be reaped), so it signals it with no pid-reuse race.
//! - **One request at a time, in order**: a request carries the child's bootstrap socket and
//!   status pipe (`SCM_RIGHTS`); the answer carries the pid and the pidfd. The child's function
//!   and argument never pass through here: the program queues them on the bootstrap socket,
//!   where the child finds them (it says no hello: it is a fork of the server, whose build was
//!   checked when it started).
//! - **A spare child is forked ahead**, between requests, and waits on a socket of its own; a
//!   request hands it the bootstrap socket (and whether it is a daemon) instead of forking, so
//!   the program does not wait for the fork itself. The spare holds nothing of later requests
//!   (it was forked before they came) and exits when its socket closes (the server gone).
//! - Ctrl-C in a terminal reaches the whole foreground group, the server included; it ignores
//!   SIGINT (as Python's does) and restores the default in each child.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use fork_sys::{ChildHandle, Fork, Interest, Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::bootstrap::{self, Channel, Hello, RecvError};
use crate::exec_self::{self, Role};
use crate::launcher::StartError;

/// The program's messages to the server.
#[derive(Debug, Serialize, Deserialize)]
enum ToServer {
    /// The program's pid: the server exits when that process does. Sent once, right after
    /// the hello.
    Watch { program: i32 },
    /// Two fds attached: the child's bootstrap socket, the write end of its status pipe.
    Fork {
        daemon: bool,
        kill_group_on_exit: bool,
    },
}

/// The server's answers to `Fork`, in request order.
#[derive(Debug, Serialize, Deserialize)]
enum FromServer {
    /// With `pidfd`, one fd attached: a pidfd of the child.
    Forked {
        pid: i32,
        pidfd: bool,
    },
    Failed(String),
}

/// Where the platform has no exit fd for a child, the server looks at its children this often.
const EXIT_SLICE: Duration = Duration::from_millis(50);

/// A child of the server's.
struct Served {
    handle: ChildHandle,
    status: File,
    kill_group_on_exit: bool,
}

/// A child forked ahead of the next request, waiting on its own socket to be told what to be:
/// the fork (page tables copied, the child's first faults) happens between requests rather
/// than while the program waits.
struct Spare {
    handle: ChildHandle,
    socket: OwnedFd,
}

/// What the server tells its spare when a request comes: the request's kind, and (attached)
/// the bootstrap socket of the program's new child.
#[derive(Debug, Serialize, Deserialize)]
struct Assign {
    daemon: bool,
}

/// The server's main loop, in the process `exec_self` started with [`Role::ForkServer`].
/// Never returns.
pub(crate) fn serve(control: OwnedFd) -> ! {
    let mut channel = Channel::new(control);
    // Forking is only safe from one thread. A constructor of the program that ran before
    // proc-core's (and started a thread) would break that: refuse to serve, and say why.
    let identity = match fork_sys::thread_count() {
        Some(threads) if threads > 1 => Err(format!(
            "the fork server has {threads} threads (a constructor of the program started \
             them before proc-core's entry ran), so it cannot fork safely; use \
             StartMethod::Spawn"
        )),
        _ => crate::identity::current().map(str::to_owned),
    };
    let hello = Hello {
        pid: fork_sys::getpid().as_raw(),
        identity,
    };
    if channel.send(&hello, &[]).is_err() {
        fork_sys::exit_immediately(0);
    }
    let _ = fork_sys::ignore_signal(Signal::INT);
    let _ = fork_sys::set_thread_name("prockit-forksrv");
    // Its children are copies of this thread: they inherit the answer.
    fork_sys::prepare_stack_overflow_report();
    let server = fork_sys::getpid();
    let mut program_watch: Option<ProgramWatch> = None;
    let mut children: Vec<Served> = Vec::new();
    let mut spare: Option<Spare> = None;
    loop {
        // Requests already buffered are served before anything else.
        loop {
            match channel.try_recv::<ToServer>() {
                Ok(Some(ToServer::Watch { program })) => {
                    program_watch = Pid::from_raw(program).map(watch_program);
                }
                Ok(Some(ToServer::Fork {
                    daemon,
                    kill_group_on_exit,
                })) => {
                    let fds = channel.take_fds();
                    let Ok([bootstrap_end, status]) = <[OwnedFd; 2]>::try_from(fds) else {
                        fork_sys::exit_immediately(0); // Not our program speaking.
                    };
                    // The spare, if there is one and it takes the job; a fresh fork otherwise.
                    let assigned = spare.take().and_then(|spare| {
                        let job = Assign { daemon };
                        let attached = [bootstrap_end.as_fd()];
                        let sent = bootstrap::frame_of(&job).and_then(|frame| {
                            fork_sys::send_with_fds(spare.socket.as_fd(), &frame, &attached)
                        });
                        match sent {
                            Ok(()) => Some(spare.handle),
                            Err(_) => {
                                // It died: reap it, fork instead.
                                let mut handle = spare.handle;
                                let _ = handle.send_signal(Signal::KILL);
                                let _ = handle.wait();
                                None
                            }
                        }
                    });
                    let handle = match assigned {
                        Some(handle) => Ok(handle),
                        None => match fork_in_server() {
                            Ok(Fork::Child) => {
                                // Close what is the server's: the control socket, the
                                // program's pidfd, the spare's socket, the other children's
                                // status pipes (a sibling holding one would hide the server's
                                // death from the program).
                                drop(channel);
                                drop(program_watch);
                                drop(children);
                                drop(spare);
                                drop(status);
                                become_child(server, daemon, bootstrap_end)
                            }
                            Ok(Fork::Parent(pid)) => Ok(ChildHandle::new(pid)),
                            Err(err) => Err(err),
                        },
                    };
                    drop(bootstrap_end);
                    let (answer, pidfd) = match handle {
                        Ok(handle) => {
                            let pidfd = handle
                                .exit_fd()
                                .filter(|_| cfg!(target_os = "linux"))
                                .and_then(|fd| fd.try_clone_to_owned().ok());
                            let answer = FromServer::Forked {
                                pid: handle.pid().as_raw(),
                                pidfd: pidfd.is_some(),
                            };
                            children.push(Served {
                                handle,
                                status: File::from(status),
                                kill_group_on_exit,
                            });
                            (answer, pidfd)
                        }
                        Err(err) => (FromServer::Failed(format!("fork failed: {err}")), None),
                    };
                    let attached: Vec<_> = pidfd.iter().map(|fd| fd.as_fd()).collect();
                    if channel.send(&answer, &attached).is_err() {
                        fork_sys::exit_immediately(0);
                    }
                }
                Ok(None) => break,
                Err(_) => fork_sys::exit_immediately(0),
            }
        }
        // Between requests: have a spare ready for the next one (once the program is known,
        // so the server is fully set up).
        if spare.is_none() && program_watch.is_some() && !channel.has_buffered() {
            if let Ok((ours, theirs)) = fork_sys::socketpair() {
                match fork_in_server() {
                    Ok(Fork::Child) => {
                        drop(channel);
                        drop(program_watch);
                        drop(children);
                        drop(ours);
                        run_spare(server, theirs)
                    }
                    Ok(Fork::Parent(pid)) => {
                        spare = Some(Spare {
                            handle: ChildHandle::new(pid),
                            socket: ours,
                        });
                    }
                    // No spare this time (a process limit): requests fork directly.
                    Err(_) => {}
                }
            }
        }
        let mut fds = vec![(channel.socket(), Interest::Read)];
        let mut slices = false;
        match &program_watch {
            Some(ProgramWatch::ExitFd(fd)) => fds.push((fd.as_fd(), Interest::Read)),
            Some(ProgramWatch::Parent(_)) => slices = true,
            None => {}
        }
        let spare_exit = spare.as_ref().and_then(|spare| spare.handle.exit_fd());
        if let Some(fd) = spare_exit {
            fds.push((fd, Interest::Read));
        }
        for child in &children {
            match child.handle.exit_fd() {
                Some(fd) => fds.push((fd, Interest::Read)),
                None => slices = true,
            }
        }
        let ready = match fork_sys::poll(&fds, slices.then_some(EXIT_SLICE)) {
            Ok(ready) => ready,
            Err(_) => fork_sys::exit_immediately(0),
        };
        let mut ready = ready.into_iter();
        let control_ready = ready.next().is_some_and(|r| r.is_ready());
        let program_gone = match &program_watch {
            Some(ProgramWatch::ExitFd(_)) => ready.next().is_some_and(|r| r.is_ready()),
            Some(ProgramWatch::Parent(program)) => fork_sys::getppid() != Some(*program),
            None => false,
        };
        if program_gone {
            // The program has exited. Daemon children follow through their parent-death
            // signal; the spare sees its socket close.
            fork_sys::exit_immediately(0);
        }
        if spare_exit.is_some() && ready.next().is_some_and(|r| r.is_ready()) {
            // The spare died (killed by someone): reap it; a new one is made next turn.
            if let Some(mut dead) = spare.take() {
                let _ = dead.handle.wait();
            }
        }
        let mut exited = Vec::new();
        for (index, child) in children.iter().enumerate() {
            let has_fd = child.handle.exit_fd().is_some();
            if !has_fd || ready.next().is_some_and(|r| r.is_ready()) {
                exited.push(index);
            }
        }
        for index in exited.into_iter().rev() {
            if settle(&mut children[index]) {
                children.swap_remove(index);
            }
        }
        if control_ready {
            match channel.fill_once() {
                Ok(()) => {}
                // The program closed its end: it is gone, or gave up on us.
                Err(_) => fork_sys::exit_immediately(0),
            }
        }
    }
}

/// A spare child: waits for its job, then becomes the program's child. Exits when its socket
/// closes first (the server is gone). Never returns.
fn run_spare(server: Pid, socket: OwnedFd) -> ! {
    let mut channel = Channel::new(socket);
    let Ok(job) = channel.recv::<Assign>(None, None) else {
        fork_sys::exit_immediately(0);
    };
    let Some(bootstrap_end) = channel.take_fds().into_iter().next() else {
        fork_sys::exit_immediately(bootstrap::EXIT_NO_LAUNCH);
    };
    drop(channel);
    become_child(server, job.daemon, bootstrap_end)
}

/// In a child of the server, once it knows its job: a daemon dies with the server (the
/// parent-death signal, sound in a one-thread server); then it runs its launch. Never returns.
fn become_child(server: Pid, daemon: bool, bootstrap_end: OwnedFd) -> ! {
    if daemon {
        match fork_sys::exec::set_parent_death_signal(Some(Signal::KILL)) {
            Ok(()) => {
                if fork_sys::getppid() != Some(server) {
                    // The server died before we asked: the signal will never come.
                    fork_sys::exit_immediately(bootstrap::EXIT_NO_LAUNCH);
                }
            }
            // No parent-death signal here (macOS, the BSDs): a watching thread instead.
            Err(_) => {
                if fork_sys::die_with_parent_process(server).is_err() {
                    fork_sys::exit_immediately(bootstrap::EXIT_NO_LAUNCH);
                }
            }
        }
    }
    bootstrap::run_launched_child(bootstrap_end, false)
}

/// How the server learns that its program has exited.
enum ProgramWatch {
    /// An fd that becomes readable then (a pidfd of the program).
    ExitFd(OwnedFd),
    /// No such fd on this platform: the server's parent changes then.
    Parent(Pid),
}

/// Starts watching `program`, the server's parent. If it is gone already, exits.
fn watch_program(program: Pid) -> ProgramWatch {
    let exit_fd = fork_sys::process_exit_fd(program);
    // After opening: if the program is not our parent any more, it is gone (and the pid may
    // name a stranger).
    if fork_sys::getppid() != Some(program) {
        fork_sys::exit_immediately(0);
    }
    match exit_fd {
        Ok(fd) => ProgramWatch::ExitFd(fd),
        Err(_) => ProgramWatch::Parent(program),
    }
}

/// Forks, in the server; in the child, SIGINT goes back to its default.
fn fork_in_server() -> io::Result<Fork> {
    #[allow(unsafe_code)]
    // SAFETY: the server has exactly one thread, so no lock can be held by a thread the fork
    // leaves behind; the child closes the server's descriptors and runs the launched child's
    // code, which leaves through `_exit`.
    let forked = unsafe { fork_sys::fork() }?;
    if forked == Fork::Child {
        let _ = fork_sys::restore_default_action(Signal::INT);
    }
    Ok(forked)
}

/// If `child` has exited: kills its group when asked, reaps it, reports its status. True once
/// it is settled.
fn settle(child: &mut Served) -> bool {
    let pid = child.handle.pid();
    if child.kill_group_on_exit && child.handle.exit_fd().is_some() {
        // The exit fd says it exited; it is not reaped yet, so its pid (its group's id) is
        // still its own.
        let _ = fork_sys::kill_group(pid, Signal::KILL);
    }
    match child.handle.try_wait() {
        Ok(Some(status)) => {
            if child.kill_group_on_exit && child.handle.exit_fd().is_none() {
                let _ = fork_sys::kill_group(pid, Signal::KILL);
            }
            // EPIPE: the program dropped its handle; nobody wants the status.
            let _ = child.status.write_all(&status.into_raw().to_le_bytes());
            true
        }
        Ok(None) => false,
        // Not ours any more (cannot happen: the server reaps nothing else); drop it, which
        // closes the status pipe and tells the program the status is lost.
        Err(_) => true,
    }
}

/// The program's side: its fork server, started on first use.
pub(crate) struct Client {
    server: ChildHandle,
    channel: Channel,
    /// The process that started the server: a forked copy of the program has this client in
    /// its memory but must start a server of its own.
    owner: Pid,
}

static CLIENT: Mutex<Option<Client>> = Mutex::new(None);

/// How long the program waits for the server's answer to one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Locks the program's side of the fork server. `Process::spawn` holds it across a `Fork`,
/// like stdout's lock, so a forked child never inherits it held by another thread (the
/// child's first `ForkServer` request would wait for ever); it is held only while a request
/// is sent and answered.
pub(crate) fn lock_client() -> MutexGuard<'static, Option<Client>> {
    CLIENT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Asks the fork server (starting it if needed) to fork a child. `queue` is given our end of
/// the child's bootstrap socket before the request goes out (the launch waits there for the
/// child). Returns the child's handle (its exit status arrives from the server) and that end.
///
/// The socket pair and the status pipe are made inside a spawn window (the fork lock's shared
/// side) and the child's ends closed before it is left, so no `Fork` child of another thread
/// ever holds a copy of them.
pub(crate) fn fork_child(
    daemon: bool,
    kill_group_on_exit: bool,
    queue: impl FnOnce(&Channel) -> io::Result<()>,
) -> Result<(ChildHandle, Channel), StartError> {
    let mut guard = lock_client();
    let usable = guard.as_mut().is_some_and(|client| {
        client.owner == fork_sys::getpid() && matches!(client.server.try_wait(), Ok(None))
    });
    if !usable {
        if let Some(old) = guard.take() {
            // A forked copy's server is not ours to touch; our own dead one is reaped.
            if old.owner == fork_sys::getpid() {
                retire(guard, old.server);
                guard = lock_client();
            }
            // (A forked copy's handle and socket are only our copies: dropping closes them.)
        }
        if guard.is_none() {
            *guard = Some(start()?);
        }
    }
    let Some(client) = guard.as_mut() else {
        return Err(StartError::Io(io::Error::other("no fork server")));
    };
    let window = fork_sys::spawn_window();
    let (ours, theirs) = fork_sys::socketpair().map_err(StartError::Io)?;
    let ours = Channel::new(ours);
    queue(&ours).map_err(StartError::Io)?;
    let (status_read, status_write) = fork_sys::pipe().map_err(StartError::Io)?;
    let request = ToServer::Fork {
        daemon,
        kill_group_on_exit,
    };
    let sent = client
        .channel
        .send(&request, &[theirs.as_fd(), status_write.as_fd()]);
    drop(status_write);
    drop(theirs);
    drop(window);
    let answer = sent.map_err(RecvError::Io).and_then(|()| {
        client.channel.recv::<FromServer>(
            Some(Instant::now() + ANSWER_TIMEOUT),
            client.server.exit_fd(),
        )
    });
    let server = client.server.pid();
    match answer {
        Ok(FromServer::Forked { pid, pidfd }) => {
            let fds = client.channel.take_fds();
            let pid = Pid::from_raw(pid)
                .ok_or_else(|| StartError::Io(io::Error::other("the fork server sent pid 0")))?;
            let pidfd = if pidfd { fds.into_iter().next() } else { None };
            Ok((ChildHandle::served(pid, pidfd, status_read), ours))
        }
        Ok(FromServer::Failed(reason)) => Err(StartError::Io(io::Error::other(format!(
            "the fork server (pid {server}) could not fork: {reason}"
        )))),
        Err(err) => {
            // Gone, or wedged (stopped?): the next request starts a new server. A wedged one
            // is not killed (its daemon children, other pools' workers, would die with it);
            // the reaper thread reaps it whenever it ends.
            if let Some(old) = guard.take() {
                retire(guard, old.server);
            }
            Err(StartError::Io(io::Error::other(format!(
                "the fork server (pid {server}) did not answer ({err}); a new one starts on the next request"
            ))))
        }
    }
}

/// Gives up on a server: releases the client lock first (the reaper's lock is taken after
/// it elsewhere), then has the reaper thread reap the server whenever it ends.
fn retire(guard: MutexGuard<'static, Option<Client>>, server: ChildHandle) {
    drop(guard);
    fork_sys::reap_in_background(server);
}

/// The pid of this process's fork server, if one is running (it starts with the first
/// [`StartMethod::ForkServer`](crate::StartMethod::ForkServer) child). For monitoring and
/// tests; killing it fails the children it is starting, and the next request starts another.
pub fn fork_server_pid() -> Option<Pid> {
    lock_client()
        .as_ref()
        .filter(|c| c.owner == fork_sys::getpid())
        .map(|c| c.server.pid())
}

/// Starts the server: `Spawn` it, check its hello, tell it whose exit to watch.
fn start() -> Result<Client, StartError> {
    let window = fork_sys::spawn_window();
    let (ours, theirs) = fork_sys::socketpair().map_err(StartError::Io)?;
    let spawned = exec_self::spawn_self(Role::ForkServer, theirs.as_fd(), &window);
    drop(theirs);
    drop(window);
    let (pid, program) = spawned.map_err(StartError::Io)?;
    let mut server = ChildHandle::new(pid);
    let mut channel = Channel::new(ours);
    let checked = crate::launcher::check_hello(&mut channel, &mut server, &program);
    if let Err(err) = checked {
        let _ = server.send_signal(Signal::KILL);
        let _ = server.wait();
        return Err(err);
    }
    let watch = ToServer::Watch {
        program: fork_sys::getpid().as_raw(),
    };
    if let Err(err) = channel.send(&watch, &[]) {
        let _ = server.send_signal(Signal::KILL);
        let _ = server.wait();
        return Err(StartError::Io(err));
    }
    Ok(Client {
        server,
        channel,
        owner: fork_sys::getpid(),
    })
}
