//! `fork_sys::spawn`: every method this platform has (the clone child, posix_spawn and
//! fork+exec) starts the program with the requested stdio, cwd, fds and groups, and reports
//! exec failure as the child's errno with the step that failed.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use fork_sys::exec::CStringArray;
use fork_sys::{ExitStatus, ProcessGroup, SpawnFailure, SpawnMethod, SpawnRequest, SpawnStep};

/// What a test asks for beyond running the script with stdout on a pipe.
#[derive(Default)]
struct Extras<'e> {
    cwd: Option<&'e CStr>,
    new_group: bool,
    stderr_to_stdout: bool,
    pass_fds: &'e [BorrowedFd<'e>],
}

/// Every method, in the order `method()` prefers them.
const METHODS: [SpawnMethod; 3] = [
    SpawnMethod::CloneVfork,
    SpawnMethod::PosixSpawn,
    SpawnMethod::ForkExec,
];

/// Runs `sh -c script` with `extras`, once through each method this platform offers for it;
/// returns (method, status, stdout) per run.
fn run_sh(script: &str, extras: &Extras<'_>) -> Vec<(SpawnMethod, ExitStatus, String)> {
    run_program("/bin/sh", &["sh", "-c", script], extras)
}

/// [`run_sh`] for any program.
fn run_program(
    path: &str,
    args: &[&str],
    extras: &Extras<'_>,
) -> Vec<(SpawnMethod, ExitStatus, String)> {
    let program = CString::new(path).unwrap();
    let argv = CStringArray::new(args).unwrap();
    let envp = CStringArray::from_current_env().unwrap();
    METHODS
        .into_iter()
        .filter_map(|method| {
            let (read, write) = fork_sys::pipe().unwrap();
            let mut request = SpawnRequest::new(&program, &argv, &envp);
            request.stdio[1] = Some(write.as_fd());
            request.cwd = extras.cwd;
            request.pass_fds = extras.pass_fds;
            if extras.new_group {
                request.process_group = Some(ProcessGroup::New);
            }
            if extras.stderr_to_stdout {
                request.stdio[2] = request.stdio[1];
            }
            if !request.can_use(method) {
                return None;
            }
            let pid = fork_sys::spawn_by(&request, method).unwrap();
            drop(write);
            let mut out = String::new();
            File::from(read).read_to_string(&mut out).unwrap();
            Some((method, fork_sys::wait(pid).unwrap(), out))
        })
        .collect()
}

#[test]
fn every_method_runs_the_program_with_its_exit_code_and_stdout() {
    let runs = run_sh("echo hello; exit 3", &Extras::default());
    let methods: Vec<SpawnMethod> = runs.iter().map(|run| run.0).collect();
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert_eq!(methods, METHODS);
    } else if cfg!(target_os = "linux") {
        assert_eq!(methods, [SpawnMethod::CloneVfork, SpawnMethod::ForkExec]);
    } else {
        assert_eq!(methods, [SpawnMethod::ForkExec]);
    }
    for (method, status, out) in runs {
        assert_eq!(status, ExitStatus::Exited(3), "{method:?}");
        assert_eq!(out, "hello\n", "{method:?}");
    }
}

#[test]
fn cwd_new_group_and_stderr_onto_the_stdout_pipe() {
    let cwd = CString::new("/tmp").unwrap();
    let extras = Extras {
        cwd: Some(&cwd),
        new_group: true,
        stderr_to_stdout: true,
        ..Extras::default()
    };
    // The shell leads its own group: its pgid is its pid.
    let runs = run_sh(
        "pwd; [ \"$(ps -o pgid= -p $$ | tr -d ' ')\" = $$ ] && echo err >&2",
        &extras,
    );
    for (method, status, out) in runs {
        assert_eq!(status, ExitStatus::Exited(0), "{method:?}");
        assert_eq!(out, "/tmp\nerr\n", "{method:?}");
    }
}

#[test]
fn the_child_sees_only_stdio_and_the_passed_fds() {
    let passed = File::open("/dev/null").unwrap();
    let also_open = File::open("/dev/null").unwrap();
    if !cfg!(target_os = "linux") {
        return; // /proc/self/fd is Linux's.
    }
    // Inheritable, as an fd opened by other code may be: close_fds must still keep it out.
    rustix::io::fcntl_setfd(&also_open, rustix::io::FdFlags::empty()).unwrap();
    rustix::io::fcntl_setfd(&passed, rustix::io::FdFlags::empty()).unwrap();
    let script = format!(
        "[ -e /proc/self/fd/{} ] && echo leaked; [ -e /proc/self/fd/{} ] && echo passed",
        also_open.as_raw_fd(),
        passed.as_raw_fd()
    );
    let passed_fds = [passed.as_fd()];
    let extras = Extras {
        pass_fds: &passed_fds,
        ..Extras::default()
    };
    for (method, status, out) in run_sh(&script, &extras) {
        assert_eq!(status, ExitStatus::Exited(0), "{method:?}");
        assert_eq!(out, "passed\n", "{method:?}");
    }
    // Without pass_fds, every method keeps both out.
    for (method, _, out) in run_sh(&script, &Extras::default()) {
        assert_eq!(out, "", "{method:?}");
    }
    // The parent's flags are its own: the child's marking or clearing did not touch them.
    for fd in [&passed, &also_open] {
        assert!(!fork_sys::is_cloexec(fd).unwrap());
    }
    drop(also_open);
}

/// The program starts with no signal blocked and `SIGPIPE` at its default, whatever the
/// parent blocks or ignores; and the parent's own mask is as it was (the clone child blocks
/// every signal in the parent across `clone`).
#[test]
fn the_child_starts_with_an_empty_signal_mask_and_sigpipe_default() {
    if !cfg!(target_os = "linux") {
        return; // /proc/self/status is Linux's.
    }
    fork_sys::ignore_signal(fork_sys::Signal::PIPE).unwrap();
    let before = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let runs = run_program(
        "/bin/grep",
        &["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"],
        &Extras::default(),
    );
    let after = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let blocked = |status: &str| {
        status
            .lines()
            .find(|line| line.starts_with("SigBlk:"))
            .map(str::to_owned)
    };
    assert_eq!(
        blocked(&before),
        blocked(&after),
        "the parent's mask changed"
    );
    for (method, status, out) in runs {
        assert_eq!(status, ExitStatus::Exited(0), "{method:?}");
        let field = |name: &str| {
            let line = out.lines().find(|line| line.starts_with(name)).unwrap();
            u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
        };
        assert_eq!(field("SigBlk:"), 0, "{method:?}: {out}");
        let sigpipe_bit = 1u64 << (libc::SIGPIPE - 1);
        assert_eq!(field("SigIgn:") & sigpipe_bit, 0, "{method:?}: {out}");
    }
}

#[test]
fn exec_failure_is_the_childs_errno() {
    let envp = CStringArray::from_current_env().unwrap();
    let argv = CStringArray::new(["nope"]).unwrap();
    let missing = CString::new("/nonexistent/program").unwrap();
    let not_executable = CString::new("/tmp").unwrap();
    let bad_cwd = CString::new("/nonexistent/dir").unwrap();
    let sh = CString::new("/bin/sh").unwrap();
    let cases = [
        (&missing, None, ErrorKind::NotFound),
        (&not_executable, None, ErrorKind::PermissionDenied),
        (&sh, Some(&bad_cwd), ErrorKind::NotFound),
    ];
    for (program, cwd, kind) in cases {
        for method in METHODS {
            let mut request = SpawnRequest::new(program, &argv, &envp);
            request.cwd = cwd.map(|c| c.as_c_str());
            if !request.can_use(method) {
                continue;
            }
            let err = fork_sys::spawn_by(&request, method).unwrap_err();
            assert_eq!(
                err.kind(),
                kind,
                "{program:?} cwd {cwd:?} {method:?}: {err}"
            );
            let failure = SpawnFailure::of(&err).unwrap();
            let (step, errno) = match kind {
                _ if cwd.is_some() => (SpawnStep::Chdir, libc::ENOENT),
                ErrorKind::NotFound => (SpawnStep::Exec, libc::ENOENT),
                _ => (SpawnStep::Exec, libc::EACCES),
            };
            assert_eq!(
                failure,
                SpawnFailure { step, errno },
                "{program:?} cwd {cwd:?} {method:?}: {err}"
            );
        }
    }
}

/// Our children that are zombies and never exec'd (their name is still this test binary's):
/// what a failed spawn that did not reap its child would leave. Other tests' children exec.
fn unexec_zombies() -> usize {
    let me = std::process::id().to_string();
    let own_name = std::fs::read_to_string("/proc/self/comm").unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let comm = head.split_once(" (").map_or("", |(_, comm)| comm);
            let mut fields = rest.split(' ');
            fields.next() == Some("Z") && fields.next() == Some(&me) && comm == own_name.trim()
        })
        .count()
}

/// A failed exec leaves no child behind, whichever method: each failure reaps its child.
#[test]
fn failed_execs_leave_no_child_behind() {
    if !cfg!(target_os = "linux") {
        return; // /proc is Linux's.
    }
    let envp = CStringArray::from_current_env().unwrap();
    let argv = CStringArray::new(["nope"]).unwrap();
    let missing = CString::new("/nonexistent/program").unwrap();
    for method in METHODS {
        let request = SpawnRequest::new(&missing, &argv, &envp);
        if !request.can_use(method) {
            continue;
        }
        for _ in 0..300 {
            let err = fork_sys::spawn_by(&request, method).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{method:?}");
        }
        assert_eq!(unexec_zombies(), 0, "{method:?} left zombies");
    }
}

/// glibc's `posix_spawn_file_actions_addchdir_np` (2.29) and `addclosefrom_np` (2.34) are looked
/// up at run time: a hard (non-weak) reference in the dynamic symbol table would keep any
/// program using fork-sys from starting on an older glibc. Checked on this test binary, which
/// links `spawn`; std's own weak reference to `addchdir_np` is allowed.
#[test]
fn newer_glibc_spawn_extensions_are_not_hard_references() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let me = std::env::current_exe().unwrap();
    let Ok(dump) = std::process::Command::new("objdump")
        .arg("-T")
        .arg(&me)
        .output()
    else {
        eprintln!("skipped: no objdump");
        return;
    };
    let symbols = String::from_utf8_lossy(&dump.stdout);
    assert!(
        symbols.contains("posix_spawn"),
        "objdump -T saw no posix_spawn:\n{symbols}"
    );
    for name in [
        "posix_spawn_file_actions_addchdir_np",
        "posix_spawn_file_actions_addclosefrom_np",
    ] {
        assert!(
            !symbols.lines().any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // std's own weak reference (flag `w`) does not stop a program from loading.
                fields.last() == Some(&name) && !fields.contains(&"w")
            }),
            "{name} is a hard dynamic reference:\n{symbols}"
        );
    }
    // Present on this glibc, so both options still go through posix_spawn.
    let program = CString::new("/bin/true").unwrap();
    let argv = CStringArray::new(["true"]).unwrap();
    let envp = CStringArray::from_current_env().unwrap();
    let root = CString::new("/").unwrap();
    let mut request = SpawnRequest::new(&program, &argv, &envp);
    request.cwd = Some(&root);
    assert!(request.can_use(SpawnMethod::PosixSpawn));
}
