//! The bootstrap channel between a parent and a child it started with `ForkServer` or
//! `Spawn`: a Unix stream socket pair, one end in each.
//!
//! The child speaks first, a [`Hello`] naming its pid and its executable's identity; the
//! parent checks the identity (a child of another build is refused before it is told
//! anything), then sends one [`Launch`] frame with the child's descriptors attached
//! (`SCM_RIGHTS`: its result pipe first, then the caller's), followed by the argument bytes as one more frame. The child runs the function
//! the launch names and exits; the socket is not used again.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use fork_sys::Interest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::child_side::ChildSetup;
use crate::codec::{self, FrameBuffer};

/// The child's first frame.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) pid: i32,
    /// [`crate::identity::current`] in the child, or why it cannot serve.
    pub(crate) identity: Result<String, String>,
}

/// What the child is to run, sent once the hello checked out.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Launch {
    /// Offsets (see `code_offset`) of the typed trampoline and of the user's function.
    pub(crate) trampoline: u64,
    pub(crate) function: u64,
    pub(crate) name: Option<String>,
    /// Die when this process (the parent, by pid) exits: a daemon started by exec.
    pub(crate) watch_parent: Option<i32>,
    pub(crate) max_frame_len: u64,
    /// How many fds are attached.
    pub(crate) fds: u32,
    /// For a fork server's child, which is a copy of the server as it was when the program
    /// started it: the program's working directory and environment *now*, to take on.
    pub(crate) context: Option<Context>,
}

/// The parts of the program's state a `Spawn` child gets from `exec` and a fork server's
/// child must be sent: the working directory and the environment (as bytes: neither need be
/// UTF-8).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Context {
    cwd: Option<Vec<u8>>,
    env: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Context {
    /// This process's working directory and environment.
    pub(crate) fn current() -> Context {
        use std::os::unix::ffi::OsStrExt;
        Context {
            cwd: std::env::current_dir()
                .ok()
                .map(|dir| dir.as_os_str().as_bytes().to_vec()),
            env: std::env::vars_os()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// Takes them on, in a fork server's child: only while it has one thread (before any
    /// user code), which is what makes changing the environment sound.
    fn apply(self) {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        if let Some(cwd) = &self.cwd {
            // A directory removed since: the child stays where the server is.
            let _ = std::env::set_current_dir(OsStr::from_bytes(cwd));
        }
        let wanted: std::collections::HashMap<&[u8], &[u8]> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let stale: Vec<_> = std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| !wanted.contains_key(k.as_bytes()))
            .collect();
        for key in stale {
            #[allow(unsafe_code)]
            // SAFETY: this is a fork server's child before it runs any user code: it has one
            // thread, so nothing can read the environment concurrently.
            unsafe {
                std::env::remove_var(key);
            }
        }
        for (key, value) in &self.env {
            let (key, value) = (OsStr::from_bytes(key), OsStr::from_bytes(value));
            if std::env::var_os(key).as_deref() != Some(value) {
                #[allow(unsafe_code)]
                // SAFETY: as above, one thread.
                unsafe {
                    std::env::set_var(key, value);
                }
            }
        }
    }
}

/// Raw frames up to this size are copied into one send with their length.
const SMALL_FRAME: usize = 4096;

/// The most descriptors one launch may carry (the kernel's `SCM_MAX_FD` is 253).
pub(crate) const MAX_FDS: usize = 250;

/// The frames of a bootstrap or fork-server control socket are small, except the argument
/// frame, which may be as large as a `u32` length says.
const MAX_MESSAGE: usize = u32::MAX as usize;

/// One end of a bootstrap (or fork-server control) socket: frames in both directions, with
/// descriptors attached.
#[derive(Debug)]
pub(crate) struct Channel {
    socket: OwnedFd,
    frames: FrameBuffer,
    /// Descriptors received and not taken yet, in arrival order.
    fds: Vec<OwnedFd>,
    /// A read filled [`SMALL_READ`]: something large is arriving.
    bulk: bool,
}

/// The first reads of a channel go through a buffer this big on the stack.
const SMALL_READ: usize = 4096;

/// Why a receive produced nothing.
#[derive(Debug)]
pub(crate) enum RecvError {
    /// The peer closed its end (or `watch` became readable first: the peer is gone).
    Closed,
    TimedOut,
    Io(io::Error),
    Codec(codec::CodecError),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Closed => f.write_str("the other process closed the channel"),
            RecvError::TimedOut => f.write_str("no answer in time"),
            RecvError::Io(err) => err.fmt(f),
            RecvError::Codec(err) => err.fmt(f),
        }
    }
}

impl From<RecvError> for io::Error {
    fn from(err: RecvError) -> io::Error {
        match err {
            RecvError::Io(err) => err,
            RecvError::Closed => io::Error::new(io::ErrorKind::UnexpectedEof, err.to_string()),
            RecvError::TimedOut => io::Error::new(io::ErrorKind::TimedOut, err.to_string()),
            RecvError::Codec(err) => io::Error::new(io::ErrorKind::InvalidData, err),
        }
    }
}

/// `value` as one frame.
pub(crate) fn frame_of<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut frame = Vec::new();
    codec::encode_frame(value, &mut frame, MAX_MESSAGE)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    Ok(frame)
}

/// `recv_with_fds` as an `io::Read`, keeping the descriptors that come along.
struct CollectingReader<'a> {
    socket: BorrowedFd<'a>,
    fds: &'a mut Vec<OwnedFd>,
}

impl io::Read for CollectingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (n, fds) = fork_sys::recv_with_fds(self.socket, buf, MAX_FDS)?;
        self.fds.extend(fds);
        Ok(n)
    }
}

impl Channel {
    pub(crate) fn new(socket: OwnedFd) -> Channel {
        Channel {
            socket,
            frames: FrameBuffer::new(MAX_MESSAGE),
            fds: Vec::new(),
            bulk: false,
        }
    }

    pub(crate) fn socket(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Sends `value` as one frame, with `fds` attached.
    pub(crate) fn send<T: Serialize>(&self, value: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        self.send_frame(&frame_of(value)?, fds)
    }

    /// Sends a frame made by [`frame_of`], with `fds` attached.
    pub(crate) fn send_frame(&self, frame: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        fork_sys::send_with_fds(self.socket.as_fd(), frame, fds)
    }

    /// Sends `bytes` as one raw frame (a length, then the bytes, not copied).
    pub(crate) fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} bytes of arguments are over the 4 GiB frame limit",
                    bytes.len()
                ),
            )
        })?;
        if bytes.len() <= SMALL_FRAME {
            // One send: the length and the bytes together.
            let mut frame = Vec::with_capacity(4 + bytes.len());
            frame.extend_from_slice(&len.to_le_bytes());
            frame.extend_from_slice(bytes);
            return fork_sys::send_with_fds(self.socket.as_fd(), &frame, &[]);
        }
        fork_sys::send_with_fds(self.socket.as_fd(), &len.to_le_bytes(), &[])?;
        fork_sys::send_with_fds(self.socket.as_fd(), bytes, &[])
    }

    /// Receives the next frame as a `T`. With a `deadline`, gives up then; with `watch`, gives
    /// up as `Closed` when that fd becomes readable first (the peer's exit fd).
    pub(crate) fn recv<T: DeserializeOwned>(
        &mut self,
        deadline: Option<Instant>,
        watch: Option<BorrowedFd<'_>>,
    ) -> Result<T, RecvError> {
        loop {
            if let Some(value) = self.frames.next_frame::<T>().map_err(RecvError::Codec)? {
                return Ok(value);
            }
            self.fill(deadline, watch)?;
        }
    }

    /// The next frame, if a whole one is buffered already; never reads.
    pub(crate) fn try_recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, RecvError> {
        self.frames.next_frame::<T>().map_err(RecvError::Codec)
    }

    /// Whether bytes of a next frame are buffered already.
    pub(crate) fn has_buffered(&self) -> bool {
        self.frames.pending() > 0
    }

    /// One read (blocking, unless the caller knows the socket is readable).
    pub(crate) fn fill_once(&mut self) -> Result<(), RecvError> {
        self.fill(None, None)
    }

    /// Receives the next frame's bytes undecoded.
    pub(crate) fn recv_raw(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, RecvError> {
        loop {
            if let Some(payload) = self.frames.next_payload().map_err(RecvError::Codec)? {
                return Ok(payload.to_vec());
            }
            self.fill(deadline, None)?;
        }
    }

    /// One read, after waiting (within `deadline`) for the socket to be readable.
    fn fill(
        &mut self,
        deadline: Option<Instant>,
        watch: Option<BorrowedFd<'_>>,
    ) -> Result<(), RecvError> {
        if deadline.is_some() || watch.is_some() {
            let mut fds = vec![(self.socket.as_fd(), Interest::Read)];
            if let Some(watch) = watch {
                fds.push((watch, Interest::Read));
            }
            let timeout = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(RecvError::TimedOut);
                    }
                    Some(deadline - now)
                }
                None => None,
            };
            let ready = fork_sys::poll(&fds, timeout).map_err(RecvError::Io)?;
            let socket_ready = ready.first().is_some_and(|r| r.is_ready());
            if !socket_ready {
                if ready.get(1).is_some_and(|r| r.is_ready()) {
                    return Err(RecvError::Closed);
                }
                return Ok(()); // Timed out or woke early: the caller's loop looks again.
            }
        }
        let mut reader = CollectingReader {
            socket: self.socket.as_fd(),
            fds: &mut self.fds,
        };
        // Messages here are small: a read into the stack first, so a freshly forked child does
        // not fault in (and zero) the frame buffer's 64 KiB read room for a 50-byte launch.
        // Once a read fills it, a large frame is streaming: read straight into the buffer.
        let read = if self.bulk {
            self.frames.read_from(&mut reader)
        } else {
            let mut small = [0u8; SMALL_READ];
            io::Read::read(&mut reader, &mut small).inspect(|&n| {
                self.frames.extend(&small[..n]);
                self.bulk = n == SMALL_READ;
            })
        };
        match read {
            Ok(0) => Err(RecvError::Closed),
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(err) => Err(RecvError::Io(err)),
        }
    }

    /// The descriptors received so far, in order; the channel keeps none.
    pub(crate) fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.fds)
    }
}

/// How long a parent waits for a new child's hello before giving up on it: generous, since a
/// large executable on a slow disk takes a while to load, and a child that dies first is
/// noticed at once anyway.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(60);

/// The type-erased shape of every trampoline: the user's function (an address), the argument
/// bytes, the caller's fds, the result pipe, the set-up. Never returns.
pub(crate) type Trampoline = fn(usize, Vec<u8>, Vec<OwnedFd>, OwnedFd, ChildSetup<'_>) -> !;

/// The child's side, in a process started by `exec` (`Spawn`: it says hello first, so the
/// parent can check its build) or forked by the fork server (whose build was checked when it
/// started: no hello): takes the launch, runs it. Never returns.
pub(crate) fn run_launched_child(socket: OwnedFd, say_hello: bool) -> ! {
    let mut channel = Channel::new(socket);
    if say_hello {
        let hello = Hello {
            pid: fork_sys::getpid().as_raw(),
            identity: crate::identity::current().map(str::to_owned),
        };
        if channel.send(&hello, &[]).is_err() {
            fork_sys::exit_immediately(EXIT_NO_LAUNCH);
        }
    }
    let Ok(launch) = channel.recv::<Launch>(None, None) else {
        // The parent refused us (another build) or went away: nothing to run.
        fork_sys::exit_immediately(EXIT_NO_LAUNCH);
    };
    let Ok(args) = channel.recv_raw(None) else {
        fork_sys::exit_immediately(EXIT_NO_LAUNCH);
    };
    let mut fds = channel.take_fds().into_iter();
    drop(channel);
    let Some(result_pipe) = fds.next() else {
        fork_sys::exit_immediately(EXIT_NO_LAUNCH);
    };
    let fds: Vec<OwnedFd> = fds.collect();
    if fds.len() + 1 != launch.fds as usize {
        fork_sys::exit_immediately(EXIT_NO_LAUNCH);
    }
    if let Some(context) = launch.context {
        context.apply();
    }
    let watch_parent = launch.watch_parent.and_then(fork_sys::Pid::from_raw);
    let stdout = std::io::stdout();
    let setup = ChildSetup {
        name: launch.name.as_deref(),
        watch_parent,
        max_frame_len: usize::try_from(launch.max_frame_len).unwrap_or(usize::MAX),
        doorbell: None,
        stdout: &stdout,
    };
    let trampoline = crate::spawn_fn::trampoline_at(launch.trampoline);
    trampoline(
        crate::code_offset::address(launch.function),
        args,
        fds,
        result_pipe,
        setup,
    )
}

/// The child's side of a [`crate::Launcher`] launch: the same hello and launch as
/// [`run_launched_child`], over a byte stream (`input` from the parent, `output` to it), no
/// descriptors attached: the result goes back on `output`. Never returns.
pub(crate) fn run_streamed_child(input: OwnedFd, output: OwnedFd) -> ! {
    use std::io::Write;
    let hello = Hello {
        pid: fork_sys::getpid().as_raw(),
        identity: crate::identity::current().map(str::to_owned),
    };
    let mut writer = std::fs::File::from(output);
    // With the newline that makes srun forward it (see `Launcher::slurm`).
    let sent = frame_of(&hello).and_then(|mut frame| {
        frame.push(FRAME_SEPARATOR);
        writer.write_all(&frame)
    });
    if sent.is_err() {
        fork_sys::exit_immediately(EXIT_NO_LAUNCH);
    }
    let mut reader = std::fs::File::from(input);
    // Exactly the launch and the argument frames, not a byte more: with
    // `spawn_fn_with_streams`, what follows is the function's to read.
    let mut next = || -> Option<Vec<u8>> {
        use std::io::Read;
        let mut len = [0u8; codec::HEADER_LEN];
        reader.read_exact(&mut len).ok()?;
        let len = usize::try_from(u32::from_le_bytes(len)).ok()?;
        let mut payload = Vec::new();
        payload.try_reserve_exact(len).ok()?;
        payload.resize(len, 0);
        reader.read_exact(&mut payload).ok()?;
        Some(payload)
    };
    let Some(launch) = next() else {
        fork_sys::exit_immediately(EXIT_NO_LAUNCH);
    };
    let Ok((launch, _)) = codec::decode_value::<Launch>(&launch) else {
        fork_sys::exit_immediately(EXIT_NO_LAUNCH);
    };
    let Some(args) = next() else {
        fork_sys::exit_immediately(EXIT_NO_LAUNCH);
    };
    end_when_abandoned(&writer);
    let stdout = std::io::stdout();
    let setup = ChildSetup {
        name: launch.name.as_deref(),
        watch_parent: None,
        max_frame_len: usize::try_from(launch.max_frame_len).unwrap_or(usize::MAX),
        doorbell: None,
        stdout: &stdout,
    };
    let trampoline = crate::spawn_fn::trampoline_at(launch.trampoline);
    let function = crate::code_offset::address(launch.function);
    if launch.fds == STREAMS {
        // The function takes the stream; its own value goes nowhere.
        let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
            fork_sys::exit_immediately(EXIT_NO_LAUNCH);
        };
        let streams = vec![OwnedFd::from(reader), OwnedFd::from(writer)];
        trampoline(function, args, streams, OwnedFd::from(null), setup)
    }
    drop(reader);
    trampoline(function, args, Vec::new(), OwnedFd::from(writer), setup)
}

/// Ends this launched child as soon as nobody reads `output` any more: its launcher was
/// killed (`Process::kill`, a pool's task timeout or `terminate`) or the connection dropped.
/// The remote side of an `ssh` gets no signal when the client dies, only its pipes closed:
/// without this a child busy in a long function would run on, alone, until it next wrote.
/// (Slurm kills a step's processes itself.) A parent that wants the child's output keeps
/// reading it until the child exits, so this never cuts a wanted child short. Best effort:
/// without a thread, the child ends at its next write instead.
fn end_when_abandoned(output: &std::fs::File) {
    let Ok(watched) = output.try_clone() else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("launch-watch".into())
        .spawn(move || {
            loop {
                match fork_sys::poll(&[(watched.as_fd(), Interest::HangUp)], None) {
                    Ok(ready) if ready[0].hung_up => fork_sys::exit_immediately(EXIT_ABANDONED),
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
}

/// The exit code of a launched child that ended because nobody read its output any more
/// (nobody is left to see it; it tells a node's logs why).
pub(crate) const EXIT_ABANDONED: i32 = 124;

/// The byte a launched child writes after each frame of its own on its output (its hello,
/// a pool worker's result frames): srun forwards a task's output a line at a time.
pub(crate) const FRAME_SEPARATOR: u8 = b'\n';

/// A launch's `fds` for a child started through a launcher whose function takes the stream
/// itself (`spawn_fn_with_streams`): its input and output as its two descriptors.
pub(crate) const STREAMS: u32 = u32::MAX;

/// The exit code of a started child that never got to run anything (refused, or its parent
/// went away before sending the launch).
pub(crate) const EXIT_NO_LAUNCH: i32 = 125;
