//! Function children: `spawn_fn(f, arg)` with `f: fn(A) -> R`, under any start method. This
//! module holds the conversion of a launched child's code offset back into a typed `fn`, one of
//! proc-core's two `unsafe` places besides the `fork` calls.
//!
//! # The invariant
//!
//! A launch names two functions by their offsets from a base in this crate
//! ([`crate::code_offset`]): a *trampoline*, `trampoline_plain::<A, R>` or
//! `trampoline_with_fds::<A, R>` (monomorphised, so it knows the argument and result types),
//! and the user's function. Both offsets are only ever made by [`FnProcessBuilder`], from a
//! function of exactly the types the trampoline was instantiated with; they travel only on the
//! private socket pair between a parent and the child it started; and the child's hello proves
//! it runs the same executable as the parent (its build id), before the launch is sent. So
//! the addresses a child computes are those of real functions of those types in its own image.

use std::os::fd::OwnedFd;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bootstrap::Trampoline;
use crate::child_side::{self, ChildSetup};
use crate::codec;
use crate::command_launcher::{self, LaunchedStreams, Launcher};
use crate::error::ProcessError;
use crate::launcher::{self, LaunchRequest};
use crate::process::{Process, ProcessBuilder};
use crate::start_method::StartMethod;

/// A [`ProcessBuilder`] with a start method chosen: it starts function children
/// ([`spawn_fn`](FnProcessBuilder::spawn_fn)), never closures, since only `Fork` can give a
/// child a closure's captured state. `Process::builder().start_method(m).spawn(|| ..)` does
/// not compile:
///
/// ```compile_fail
/// use proc_core::{Process, StartMethod};
/// let p = Process::builder().start_method(StartMethod::Spawn).spawn(|| 1)?;
/// # Ok::<(), proc_core::ProcessError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FnProcessBuilder {
    builder: ProcessBuilder,
    method: StartMethod,
    launcher: Option<Launcher>,
}

impl ProcessBuilder {
    /// Chooses how the child starts; the builder then takes functions, not closures.
    ///
    /// ```
    /// use proc_core::{Process, StartMethod};
    ///
    /// fn parse(text: String) -> usize {
    ///     text.split_whitespace().count()
    /// }
    ///
    /// let p = Process::builder().start_method(StartMethod::ForkServer).spawn_fn(parse, "a b c".into())?;
    /// assert_eq!(p.join()?, 3);
    /// # Ok::<(), proc_core::ProcessError>(())
    /// ```
    pub fn start_method(self, method: StartMethod) -> FnProcessBuilder {
        FnProcessBuilder {
            builder: self,
            method,
            launcher: None,
        }
    }

    /// Starts a child that runs `function(arg)`, by the [default start
    /// method](crate::default_start_method) (`ForkServer` once [`crate::init`] has run, `Fork`
    /// otherwise). `arg` crosses to the child as a bincode frame (under `Fork` it is moved).
    pub fn spawn_fn<A, R>(self, function: fn(A) -> R, arg: A) -> Result<Process<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.start_method(crate::default_start_method())
            .spawn_fn(function, arg)
    }
}

impl FnProcessBuilder {
    /// The method children of this builder start by.
    pub fn method(&self) -> StartMethod {
        self.method
    }

    /// See [`ProcessBuilder::name`].
    pub fn name(mut self, name: impl Into<String>) -> FnProcessBuilder {
        self.builder = self.builder.name(name);
        self
    }

    /// See [`ProcessBuilder::daemon`]. Under every method a daemon dies when this *process*
    /// exits, whichever thread started it.
    pub fn daemon(mut self, daemon: bool) -> FnProcessBuilder {
        self.builder = self.builder.daemon(daemon);
        self
    }

    /// See [`ProcessBuilder::max_result_len`].
    pub fn max_result_len(mut self, bytes: usize) -> FnProcessBuilder {
        self.builder = self.builder.max_result_len(bytes);
        self
    }

    /// See [`ProcessBuilder::kill_group_on_exit`].
    pub fn kill_group_on_exit(mut self, kill: bool) -> FnProcessBuilder {
        self.builder = self.builder.kill_group_on_exit(kill);
        self
    }

    /// Changes the start method.
    pub fn start_method(mut self, method: StartMethod) -> FnProcessBuilder {
        self.method = method;
        self
    }

    /// Starts the child through `launcher` (`srun`, `ssh`, any command that runs a program
    /// and connects its stdin and stdout to ours), whatever the start method: the child is
    /// this executable, run wherever the launcher runs things, checked by its build id, and
    /// told what to run over that stream. What it prints goes to the launcher's stderr. It
    /// takes no descriptors (`spawn_fn_with_fds` is refused), and it does not watch for this
    /// process's exit (it may run on another machine): a daemon child is ended by killing
    /// the launcher, which forwards the signal (srun, ssh) or not.
    pub fn launcher(mut self, launcher: Launcher) -> FnProcessBuilder {
        self.launcher = Some(launcher);
        self
    }

    /// Starts a child that runs `function(arg)`; [`Process::join`] returns what it returned,
    /// with the same errors as a closure's child.
    pub fn spawn_fn<A, R>(self, function: fn(A) -> R, arg: A) -> Result<Process<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        if self.method == StartMethod::Fork && self.launcher.is_none() {
            return self.builder.spawn(move || function(arg));
        }
        let trampoline = trampoline_plain::<A, R> as Trampoline as usize;
        self.launch(trampoline, function as usize, &arg, Vec::new())
    }

    /// Like [`spawn_fn`](FnProcessBuilder::spawn_fn), and the child also gets `fds` (in the
    /// same order, at numbers of its own): pipes, sockets, files to work on. Under `Fork` the
    /// child has them at the same numbers; under the other methods they cross by
    /// `SCM_RIGHTS`. The parent's copies are closed once sent.
    pub fn spawn_fn_with_fds<A, R>(
        self,
        function: fn(A, Vec<OwnedFd>) -> R,
        arg: A,
        fds: Vec<OwnedFd>,
    ) -> Result<Process<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        if self.method == StartMethod::Fork && self.launcher.is_none() {
            return self.builder.spawn(move || function(arg, fds));
        }
        let trampoline = trampoline_with_fds::<A, R> as Trampoline as usize;
        self.launch(trampoline, function as usize, &arg, fds)
    }

    /// Through a [`launcher`](FnProcessBuilder::launcher) only: starts `function(arg, fds)`
    /// where `fds` are the child's ends of the launcher's byte stream, `[input, output]`, and
    /// returns the process with this side's ends ([`LaunchedStreams`]: what is written to
    /// `input` reaches the child's, what the child writes to its `output` comes out of ours,
    /// and the launcher's stderr, for the caller to forward). The function's own value is
    /// discarded (the stream is the caller's): `join` reports only how the launcher ended. A
    /// protocol of the caller's own over a launcher: proc-pool's workers on a cluster.
    pub fn spawn_fn_with_streams<A, R>(
        self,
        function: fn(A, Vec<OwnedFd>) -> R,
        arg: A,
    ) -> Result<(Process<R>, LaunchedStreams), ProcessError>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let parts = self.builder.into_parts();
        let Some(launcher) = self.launcher else {
            return Err(ProcessError::Spawn {
                name: parts.name,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "spawn_fn_with_streams needs a launcher: its streams are the launcher's",
                ),
            });
        };
        let trampoline = trampoline_with_fds::<A, R> as Trampoline as usize;
        let request = Self::request(parts, self.method, trampoline, function as usize, &arg)?;
        command_launcher::launch_with_streams(request, &launcher)
    }

    /// The launch request for `function` (checked to be nameable) and its encoded `arg`.
    fn request<A: Serialize>(
        parts: crate::process::BuilderParts,
        method: StartMethod,
        trampoline: usize,
        function: usize,
        arg: &A,
    ) -> Result<LaunchRequest, ProcessError> {
        if let Err(err) =
            crate::code_offset::check(function).and_then(|()| crate::code_offset::check(trampoline))
        {
            return Err(ProcessError::Spawn {
                name: parts.name,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, err),
            });
        }
        let mut args = Vec::new();
        if let Err(err) = codec::encode_value(arg, &mut args) {
            return Err(ProcessError::Spawn {
                name: parts.name,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, err),
            });
        }
        Ok(LaunchRequest {
            method,
            trampoline,
            function,
            args,
            fds: Vec::new(),
            name: parts.name,
            daemon: parts.daemon,
            max_frame_len: parts.max_frame_len,
            kill_group_on_exit: parts.kill_group_on_exit,
        })
    }

    fn launch<A: Serialize, R>(
        self,
        trampoline: usize,
        function: usize,
        arg: &A,
        fds: Vec<OwnedFd>,
    ) -> Result<Process<R>, ProcessError> {
        let parts = self.builder.into_parts();
        // Offsets name the same code in the child only within proc-core's own image.
        let mut request = Self::request(parts, self.method, trampoline, function, arg)?;
        request.fds = fds;
        match &self.launcher {
            Some(launcher) => command_launcher::launch_through(request, launcher),
            None => launcher::launch(request),
        }
    }
}

/// The trampoline at `offset` in this executable.
pub(crate) fn trampoline_at(offset: u64) -> Trampoline {
    let address = crate::code_offset::address(offset);
    #[allow(unsafe_code)]
    // SAFETY: `offset` came in a launch from a parent running this same executable (its hello
    // was checked), which took it from `trampoline_plain::<A, R>` or `trampoline_with_fds`,
    // both of exactly the type `Trampoline` (see the module docs).
    unsafe {
        std::mem::transmute::<usize, Trampoline>(address)
    }
}

/// Runs `fn(A) -> R` at `function` on the decoded argument. Never returns.
fn trampoline_plain<A, R>(
    function: usize,
    args: Vec<u8>,
    fds: Vec<OwnedFd>,
    result_pipe: OwnedFd,
    setup: ChildSetup<'_>,
) -> !
where
    A: DeserializeOwned,
    R: Serialize,
{
    #[allow(unsafe_code)]
    // SAFETY: `function` was paired with this trampoline by `FnProcessBuilder::spawn_fn::<A,
    // R>`, from a `fn(A) -> R` in a parent running this executable (see the module docs).
    let function = unsafe { std::mem::transmute::<usize, fn(A) -> R>(function) };
    drop(fds);
    child_side::run_child(setup, result_pipe.into(), move || {
        function(decode_arg::<A>(&args))
    })
}

/// Runs `fn(A, Vec<OwnedFd>) -> R` at `function`. Never returns.
fn trampoline_with_fds<A, R>(
    function: usize,
    args: Vec<u8>,
    fds: Vec<OwnedFd>,
    result_pipe: OwnedFd,
    setup: ChildSetup<'_>,
) -> !
where
    A: DeserializeOwned,
    R: Serialize,
{
    #[allow(unsafe_code)]
    // SAFETY: as in `trampoline_plain`, from `spawn_fn_with_fds::<A, R>`'s
    // `fn(A, Vec<OwnedFd>) -> R`.
    let function = unsafe { std::mem::transmute::<usize, fn(A, Vec<OwnedFd>) -> R>(function) };
    child_side::run_child(setup, result_pipe.into(), move || {
        function(decode_arg::<A>(&args), fds)
    })
}

/// The argument, which the parent encoded from an `A`: a failure here is a `Deserialize` that
/// does not read what its `Serialize` wrote, reported as the child's panic.
fn decode_arg<A: DeserializeOwned>(bytes: &[u8]) -> A {
    match codec::decode_value::<A>(bytes) {
        Ok((arg, used)) if used == bytes.len() => arg,
        Ok((_, used)) => panic!(
            "the argument ({}) left {} bytes over after decoding",
            std::any::type_name::<A>(),
            bytes.len() - used
        ),
        Err(err) => panic!("the argument did not decode: {err}"),
    }
}
