//! What a child is given, and nothing more: no fd of the parent's unless passed (on both spawn
//! paths, from the main process, from a forked `Process` and from a pool task, even with
//! `close_fds(false)` for the pool's own pipes), exactly the environment asked for, and no
//! shell unless one is asked for.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use proc_core::Process;
use proc_pool::Pool;
use proc_spawn::{Command, Error, Stdio};

use crate::outcome::{Baseline, Outcome};
use crate::scenarios::Config;

const NAME: &str = "security";

/// The environment variable the driver sets for this scenario (see `driver::run_one`).
pub(crate) const SECRET_VAR: &str = "SOAK_SECRET";

/// The fds the child shell has open, from its `/proc/<pid>/fd`, sorted.
fn child_fds(command: &mut Command) -> Result<Vec<i32>, String> {
    let done = command
        .args(["-c", "ls /proc/$$/fd"])
        .capture_output()
        .run()
        .map_err(|e| e.to_string())?;
    let text = done.stdout_text().map_err(|e| e.to_string())?;
    let mut fds: Vec<i32> = text
        .lines()
        .map(|line| line.parse().map_err(|_| format!("not an fd: {line:?}")))
        .collect::<Result<_, _>>()?;
    fds.sort_unstable();
    Ok(fds)
}

/// A pool task: the fds a program it runs sees, with `close_fds(false)`, so only
/// close-on-exec keeps the pool's pipes out.
fn fds_seen_from_a_task(_: u8) -> Result<Vec<i32>, String> {
    child_fds(Command::new("/bin/sh").close_fds(false))
}

/// The fds of this process without close-on-exec (what a program started with `close_fds`
/// off inherits), from `/proc/self/fdinfo`. fds 0-2 and, when the suite's own caller left some
/// open without the flag, those too.
fn inheritable_fds() -> Result<Vec<i32>, String> {
    /// `O_CLOEXEC` as `/proc/<pid>/fdinfo` prints it: octal, in the `flags:` line.
    const CLOEXEC: u32 = 0o2_000_000;
    let mut fds = Vec::new();
    let entries = std::fs::read_dir("/proc/self/fdinfo").map_err(|e| e.to_string())?;
    for entry in entries.filter_map(Result::ok) {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // The listing's own directory fd is gone by the time we read it: skip what vanished.
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let flags = info
            .lines()
            .find_map(|line| line.strip_prefix("flags:"))
            .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
            .ok_or_else(|| format!("no flags for fd {fd}"))?;
        if flags & CLOEXEC == 0 {
            fds.push(fd);
        }
    }
    fds.sort_unstable();
    Ok(fds)
}

/// An fd without `FD_CLOEXEC`, as a careless library might leave one.
fn inheritable(fd: OwnedFd) -> Result<OwnedFd, String> {
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).map_err(|e| e.to_string())?;
    Ok(fd)
}

fn expect_fds(outcome: &mut Outcome, case: &str, got: Result<Vec<i32>, String>, want: &[i32]) {
    match got {
        Ok(fds) if fds == want => outcome.operations += 1,
        Ok(fds) => outcome.violation(
            NAME,
            format!("{case}: the child had fds {fds:?}, not {want:?}"),
        ),
        Err(err) => outcome.violation(NAME, format!("{case}: {err}")),
    }
}

/// `env`'s output as a set of `KEY=value` lines.
fn env_of(command: &mut Command) -> Result<BTreeSet<String>, String> {
    let done = command.capture_output().run().map_err(|e| e.to_string())?;
    let text = done.stdout_text().map_err(|e| e.to_string())?;
    Ok(text.lines().map(str::to_owned).collect())
}

fn parent_env() -> BTreeSet<String> {
    std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect()
}

fn expect_env(
    outcome: &mut Outcome,
    case: &str,
    got: Result<BTreeSet<String>, String>,
    want: &BTreeSet<String>,
) {
    match got {
        Ok(env) if env == *want => outcome.operations += 1,
        Ok(env) => outcome.violation(
            NAME,
            format!(
                "{case}: extra {:?}, missing {:?}",
                env.difference(want).collect::<Vec<_>>(),
                want.difference(&env).collect::<Vec<_>>()
            ),
        ),
        Err(err) => outcome.violation(NAME, format!("{case}: {err}")),
    }
}

fn fd_checks(outcome: &mut Outcome) -> Result<(), String> {
    // The pool first, before we open inheritable fds of our own: a task's program, even
    // with close_fds off, must see exactly what this process had without close-on-exec
    // (0-2, and whatever our caller passed down), none of the pool's pipes.
    let inherited = inheritable_fds()?;
    let pool = Pool::new(2).map_err(|e| e.to_string())?;
    for task in 0..4 {
        let seen = pool
            .apply(fds_seen_from_a_task, task)
            .map_err(|e| e.to_string())?;
        expect_fds(
            outcome,
            "a pool task's program (close_fds off)",
            seen,
            &inherited,
        );
    }
    drop(pool);

    // Now leave fds open without close-on-exec: a file, both ends of a pipe, a socket.
    let file = inheritable(File::open("/dev/null").map_err(|e| e.to_string())?.into())?;
    let (read_end, write_end) = fork_sys::pipe().map_err(|e| e.to_string())?;
    let (read_end, write_end) = (inheritable(read_end)?, inheritable(write_end)?);
    let (socket, _peer) = fork_sys::socketpair().map_err(|e| e.to_string())?;
    let socket = inheritable(socket)?;
    outcome.faults += 4;
    let stray: Vec<i32> = [&file, &read_end, &write_end, &socket]
        .iter()
        .map(|fd| fd.as_raw_fd())
        .collect();

    for round in 0..3 {
        expect_fds(
            outcome,
            "clone child",
            child_fds(&mut Command::new("/bin/sh")),
            &[0, 1, 2],
        );
        expect_fds(
            outcome,
            "fork+exec",
            child_fds(Command::new("/bin/sh").uid(rustix::process::getuid().as_raw())),
            &[0, 1, 2],
        );
        expect_fds(
            outcome,
            "stdin piped",
            child_fds(Command::new("/bin/sh").stdin(Stdio::piped())),
            &[0, 1, 2],
        );
        let passed: OwnedFd = File::open("/dev/null").map_err(|e| e.to_string())?.into();
        let passed_raw = passed.as_raw_fd();
        let mut want = vec![0, 1, 2, passed_raw];
        want.sort_unstable();
        expect_fds(
            outcome,
            "pass_fd",
            child_fds(Command::new("/bin/sh").pass_fd(passed)),
            &want,
        );
        // From a forked Process, which holds copies of every fd of ours.
        let from_fork = Process::spawn(|| child_fds(&mut Command::new("/bin/sh")))
            .and_then(Process::join)
            .map_err(|e| e.to_string())
            .and_then(|inner| inner);
        expect_fds(outcome, "from a Process", from_fork, &[0, 1, 2]);
        // The control: with close_fds off, the stray fds do arrive, so the checks can fail.
        if round == 0 {
            match child_fds(Command::new("/bin/sh").close_fds(false)) {
                Ok(fds) if stray.iter().all(|fd| fds.contains(fd)) => outcome.operations += 1,
                other => outcome.violation(
                    NAME,
                    format!("control: with close_fds off the stray fds {stray:?} should show, got {other:?}"),
                ),
            }
        }
    }
    Ok(())
}

fn env_checks(outcome: &mut Outcome) {
    let inherited = parent_env();
    if !inherited.iter().any(|line| line.starts_with(SECRET_VAR)) {
        outcome.violation(NAME, format!("the driver did not set {SECRET_VAR}"));
    }
    for fork_exec in [false, true] {
        let env = || {
            let mut command = Command::new("/usr/bin/env");
            if fork_exec {
                command.uid(rustix::process::getuid().as_raw());
            }
            command
        };
        let path = if fork_exec {
            "fork+exec"
        } else {
            "clone child"
        };
        expect_env(
            outcome,
            &format!("{path}: inherited"),
            env_of(&mut env()),
            &inherited,
        );
        let want: BTreeSet<String> = ["A=1", "B=two words", "C="].map(str::to_owned).into();
        expect_env(
            outcome,
            &format!("{path}: env_clear"),
            env_of(
                env()
                    .env_clear()
                    .env("A", "1")
                    .env("B", "two words")
                    .env("C", ""),
            ),
            &want,
        );
        let mut removed = inherited.clone();
        removed.retain(|line| !line.starts_with(&format!("{SECRET_VAR}=")));
        expect_env(
            outcome,
            &format!("{path}: env_remove"),
            env_of(env().env_remove(SECRET_VAR)),
            &removed,
        );
        let mut changed = removed.clone();
        changed.insert(format!("{SECRET_VAR}=changed"));
        expect_env(
            outcome,
            &format!("{path}: env override"),
            env_of(env().env(SECRET_VAR, "changed")),
            &changed,
        );
    }
}

fn shell_checks(outcome: &mut Outcome) {
    // Metacharacters in an argument reach the program untouched.
    let hostile = "$HOME; `id` $(id) | cat > /tmp/soak-pwned && * \"'\\";
    match Command::new("/bin/echo")
        .arg(hostile)
        .capture_output()
        .run()
    {
        Ok(done) if done.stdout == format!("{hostile}\n").into_bytes() => outcome.operations += 1,
        other => outcome.violation(NAME, format!("echo of metacharacters: {other:?}")),
    }
    if std::path::Path::new("/tmp/soak-pwned").exists() {
        outcome.violation(NAME, "a shell ran: /tmp/soak-pwned exists");
    }
    // A program name with metacharacters is looked up as a name, not run by a shell.
    match Command::new("true; echo pwned").capture_output().run() {
        Err(Error::NotFound { .. }) => outcome.operations += 1,
        other => outcome.violation(NAME, format!("`true; echo pwned` as a name: {other:?}")),
    }
    // The child is the program itself, our direct child: no shell in between.
    match Command::new("/bin/sleep").arg("10").spawn() {
        Ok(mut child) => {
            let pid = child.pid().as_raw();
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let is_sleep = exe
                .as_ref()
                .is_ok_and(|p| p.file_name().is_some_and(|n| n == "sleep"));
            if !cfg!(target_os = "linux") || (is_sleep && ppid == Some(std::process::id())) {
                outcome.operations += 1;
            } else {
                outcome.violation(NAME, format!("the child is {exe:?} with parent {ppid:?}"));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(err) => outcome.violation(NAME, format!("spawning sleep: {err}")),
    }
    // And a shell when asked for one.
    match Command::shell("echo a | tr a b").capture_output().run() {
        Ok(done) if done.stdout == b"b\n" => outcome.operations += 1,
        other => outcome.violation(NAME, format!("Command::shell: {other:?}")),
    }
}

/// The scenario; see the module docs.
pub(crate) fn checks(config: &Config) -> Outcome {
    let mut outcome = Outcome::default();
    let _ = Command::new("/bin/true").call();
    let baseline = Baseline::take();
    for _ in 0..config.size(3, 1) {
        env_checks(&mut outcome);
        shell_checks(&mut outcome);
    }
    if cfg!(target_os = "linux") {
        if let Err(err) = fd_checks(&mut outcome) {
            outcome.violation(NAME, err);
        }
    }
    baseline.check(&mut outcome);
    outcome
}
