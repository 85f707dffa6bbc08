//! `Command`: the builder, in std's style, with Python's `run` options on it.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fork_sys::ExitStatus;

use crate::{Child, CompletedProcess, Error, Input, Stdio};

/// A program to run, with its arguments, environment, working directory, standard streams,
/// and (for [`run`](Command::run)) Python's `run` options.
///
/// Builder methods take and return `&mut Command`, as std's do. A `Command` can be spawned
/// any number of times, and cloned (fds given with `Stdio::from` are shared, not copied).
///
/// By default the child inherits stdin, stdout, stderr, the environment and the working
/// directory, and sees **no other fd** of the parent's (`close_fds`, as in Python).
#[derive(Debug, Clone)]
pub struct Command {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: EnvChanges,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdin: Option<Stdio>,
    pub(crate) stdout: Option<Stdio>,
    pub(crate) stderr: Option<Stdio>,
    pub(crate) close_fds: bool,
    pub(crate) pass_fds: Vec<Arc<OwnedFd>>,
    pub(crate) new_session: bool,
    pub(crate) process_group: Option<i32>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) umask: Option<u32>,
    pub(crate) kill_on_drop: bool,
    pub(crate) run: RunOptions,
}

/// The environment the child gets: the parent's (unless cleared), with overrides and removals.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvChanges {
    pub(crate) clear: bool,
    /// `Some(value)`: set; `None`: removed.
    pub(crate) vars: BTreeMap<OsString, Option<OsString>>,
}

impl EnvChanges {
    /// True when the child gets exactly the parent's environment.
    pub(crate) fn is_unchanged(&self) -> bool {
        !self.clear && self.vars.is_empty()
    }

    /// The value `key` has in the child, if the changes decide it: `Some(Some(v))` set,
    /// `Some(None)` removed or cleared, `None` inherited.
    pub(crate) fn decided(&self, key: &OsStr) -> Option<Option<&OsStr>> {
        match self.vars.get(key) {
            Some(value) => Some(value.as_deref()),
            None if self.clear => Some(None),
            None => None,
        }
    }
}

/// Python's `run` options, used by [`Command::run`] and the functions built on it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunOptions {
    pub(crate) capture_output: bool,
    pub(crate) input: Option<Input>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) check: bool,
    /// `kill_tree_on_timeout(false)`: a timeout kills the child alone, in our group.
    pub(crate) keep_tree_on_timeout: bool,
}

impl Command {
    /// A command running `program`: a path, or a name looked up in `PATH` (the child's `PATH`
    /// when [`env`](Command::env) sets one, as `execvp` would).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: EnvChanges::default(),
            cwd: None,
            stdin: None,
            stdout: None,
            stderr: None,
            close_fds: true,
            pass_fds: Vec::new(),
            new_session: false,
            process_group: None,
            uid: None,
            gid: None,
            umask: None,
            kill_on_drop: false,
            run: RunOptions::default(),
        }
    }

    /// `/bin/sh -c script`: the only way this crate runs a shell, and only when asked by name.
    /// Quote anything that comes from outside; prefer [`Command::new`] with
    /// [`args`](Command::args) when there is no shell syntax to interpret.
    pub fn shell(script: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(script);
        command
    }

    /// Appends one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.env
            .vars
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Sets several environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, value) in vars {
            self.env(key, value);
        }
        self
    }

    /// Removes one variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.vars.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Starts the child with an empty environment (plus what [`env`](Command::env) sets after).
    pub fn env_clear(&mut self) -> &mut Command {
        self.env.clear = true;
        self.env.vars.clear();
        self
    }

    /// The child's working directory. A relative program path (`./tool`) is then relative to
    /// it, as with Python's `cwd`. When it does not exist, spawning fails with
    /// [`Error::BadWorkingDirectory`] naming it.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The child's stdin.
    pub fn stdin(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stdin = Some(stdio.into());
        self
    }

    /// The child's stdout.
    pub fn stdout(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stdout = Some(stdio.into());
        self
    }

    /// The child's stderr; [`Stdio::stdout`] merges it into stdout.
    pub fn stderr(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stderr = Some(stdio.into());
        self
    }

    /// Whether the child sees only fds 0, 1, 2 and [`pass_fd`](Command::pass_fd)'s
    /// (`true`, the default, as in Python) or every inheritable fd of the parent's.
    pub fn close_fds(&mut self, close: bool) -> &mut Command {
        self.close_fds = close;
        self
    }

    /// Keeps `fd` open in the child at the same number (Python's `pass_fds`). The `Command`
    /// owns it from now on and closes it when dropped.
    pub fn pass_fd(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.pass_fds.push(Arc::new(fd.into()));
        self
    }

    /// Starts the child in a new session (`setsid`): no controlling terminal, its own process
    /// group, so a timeout in [`run`](Command::run) kills the whole group.
    pub fn new_session(&mut self, new_session: bool) -> &mut Command {
        self.new_session = new_session;
        self
    }

    /// Puts the child in process group `pgid`; `0` makes a new group led by the child (std's
    /// `CommandExt::process_group`). With a new group, a timeout in [`run`](Command::run)
    /// kills the whole group, grandchildren included.
    pub fn process_group(&mut self, pgid: i32) -> &mut Command {
        self.process_group = Some(pgid);
        self
    }

    /// Runs the child as user `uid` (where this process may; uses the fork+exec path).
    pub fn uid(&mut self, uid: u32) -> &mut Command {
        self.uid = Some(uid);
        self
    }

    /// Runs the child as group `gid` (where this process may; uses the fork+exec path).
    pub fn gid(&mut self, gid: u32) -> &mut Command {
        self.gid = Some(gid);
        self
    }

    /// The child's file mode creation mask.
    pub fn umask(&mut self, mask: u32) -> &mut Command {
        self.umask = Some(mask);
        self
    }

    /// Kills the child (its group, when it has its own) when its [`Child`] is dropped while
    /// still running, instead of reaping it in the background.
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// For [`run`](Command::run): capture stdout and stderr (Python's `capture_output=True`)
    /// unless they were set explicitly.
    pub fn capture_output(&mut self) -> &mut Command {
        self.run.capture_output = true;
        self
    }

    /// For [`run`](Command::run): bytes to write to the child's stdin (a pipe, unless stdin
    /// was set explicitly), which is then closed. Set on a pipeline stage it is an error: use
    /// [`Pipeline::input`](crate::Pipeline::input).
    ///
    /// Takes the bytes without copying them: a `Vec<u8>` or `String` moves in, a literal is
    /// borrowed, an `Arc<[u8]>` is shared (see [`Input`]). Borrowed bytes that are not
    /// `'static` are refused at compile time; `bytes.to_vec()` makes the copy visible.
    pub fn input(&mut self, input: impl Into<Input>) -> &mut Command {
        self.run.input = Some(input.into());
        self
    }

    /// For [`run`](Command::run) and the functions built on it: give up after `timeout`,
    /// kill the child and everything it started (see
    /// [`kill_tree_on_timeout`](Command::kill_tree_on_timeout)) and return
    /// [`Error::TimeoutExpired`] with the output read so far. Set on a pipeline stage it is an
    /// error: use [`Pipeline::timeout`](crate::Pipeline::timeout).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Command {
        self.run.timeout = Some(timeout);
        self
    }

    /// For [`run`](Command::run) with a [`timeout`](Command::timeout), and for this stage of
    /// a [`Pipeline`](crate::Pipeline) with one: whether a timeout kills the child's whole
    /// tree (`true`, the default) or the child alone (`false`, Python's behaviour).
    ///
    /// With `true`, unless the command chose a [`process_group`](Command::process_group) or
    /// a [`new_session`](Command::new_session) itself:
    ///
    /// - the child starts in a **process group of its own**, except while this process is in
    ///   the foreground of its controlling terminal: there the child stays in our group, so a
    ///   Ctrl-C (or Ctrl-Z) typed in the terminal reaches it and everything it started;
    /// - on the timeout its group is killed, and (Linux) every descendant still attached to
    ///   its tree, found in `/proc` and stopped before the kill so none slips away.
    ///
    /// So a timed-out `sh -c "sleep 100 & sleep 100"` leaves no `sleep` behind. What escapes:
    /// a process that left both the group and the tree before the timeout (a daemon that
    /// forked twice and called `setsid`), and, in the terminal's foreground, one that was
    /// re-parented away from the tree (its parent exited) without leaving our group.
    pub fn kill_tree_on_timeout(&mut self, kill_tree: bool) -> &mut Command {
        self.run.keep_tree_on_timeout = !kill_tree;
        self
    }

    /// For [`run`](Command::run): turn an unsuccessful exit into
    /// [`Error::CalledProcessError`]. `check(true)` on a pipeline stage is an error: use
    /// [`Pipeline::check`](crate::Pipeline::check).
    pub fn check(&mut self, check: bool) -> &mut Command {
        self.run.check = check;
        self
    }

    /// The command line, program first, as it appears in errors.
    pub fn get_args(&self) -> Vec<OsString> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// Starts the child and returns at once (Python's `Popen`).
    pub fn spawn(&self) -> Result<Child, Error> {
        crate::spawn::spawn(self)
    }

    /// Runs the child to completion with the `run` options (Python's `subprocess.run`).
    pub fn run(&self) -> Result<CompletedProcess, Error> {
        crate::run::run(self)
    }

    /// Runs the child and returns how it ended (Python's `subprocess.call`).
    pub fn call(&self) -> Result<ExitStatus, Error> {
        Ok(self.run()?.status)
    }

    /// Runs the child; an unsuccessful exit is [`Error::CalledProcessError`]
    /// (Python's `subprocess.check_call`).
    pub fn check_call(&self) -> Result<ExitStatus, Error> {
        Ok(self.checked().run()?.status)
    }

    /// Runs the child, capturing stdout; an unsuccessful exit is
    /// [`Error::CalledProcessError`] (Python's `subprocess.check_output`). stderr is
    /// inherited unless set.
    pub fn check_output(&self) -> Result<Vec<u8>, Error> {
        Ok(self.checked_with_stdout().run()?.stdout)
    }

    /// This command with `check` on: what `check_call` (and its async twin) runs.
    pub(crate) fn checked(&self) -> Command {
        let mut command = self.clone();
        command.check(true);
        command
    }

    /// This command with `check` on and stdout piped unless set: what `check_output` (and
    /// its async twin) runs.
    pub(crate) fn checked_with_stdout(&self) -> Command {
        let mut command = self.checked();
        if command.stdout.is_none() {
            command.stdout(Stdio::piped());
        }
        command
    }
}
