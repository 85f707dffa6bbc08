//! `fork_sys::spawn`: both methods (posix_spawn and fork+exec) start the program with the
//! requested stdio, cwd, fds and groups, and report exec failure as the child's errno.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use fork_sys::exec::CStringArray;
use fork_sys::{ExitStatus, ProcessGroup, SpawnMethod, SpawnRequest};

/// What a test asks for beyond running the script with stdout on a pipe.
#[derive(Default)]
struct Extras<'e> {
    cwd: Option<&'e CStr>,
    new_group: bool,
    stderr_to_stdout: bool,
    pass_fds: &'e [BorrowedFd<'e>],
}

/// Runs `sh -c script` with `extras`, once through each method this platform offers; returns
/// (method, status, stdout) per run.
fn run_sh(script: &str, extras: &Extras<'_>) -> Vec<(SpawnMethod, ExitStatus, String)> {
    let program = CString::new("/bin/sh").unwrap();
    let argv = CStringArray::new(["sh", "-c", script]).unwrap();
    let envp = CStringArray::from_current_env().unwrap();
    // A umask forces fork+exec without changing what these scripts observe.
    [None, Some(0o022)]
        .into_iter()
        .map(|umask| {
            let (read, write) = fork_sys::pipe().unwrap();
            let mut request = SpawnRequest::new(&program, &argv, &envp);
            request.stdio[1] = Some(write.as_fd());
            request.umask = umask;
            request.cwd = extras.cwd;
            request.pass_fds = extras.pass_fds;
            if extras.new_group {
                request.process_group = Some(ProcessGroup::New);
            }
            if extras.stderr_to_stdout {
                request.stdio[2] = request.stdio[1];
            }
            let method = request.method();
            let pid = fork_sys::spawn(&request).unwrap();
            drop(write);
            let mut out = String::new();
            File::from(read).read_to_string(&mut out).unwrap();
            (method, fork_sys::wait(pid).unwrap(), out)
        })
        .collect()
}

#[test]
fn both_methods_run_the_program_with_its_exit_code_and_stdout() {
    let runs = run_sh("echo hello; exit 3", &Extras::default());
    assert_eq!(runs[1].0, SpawnMethod::ForkExec);
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        assert_eq!(runs[0].0, SpawnMethod::PosixSpawn);
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
    // Without pass_fds, posix_spawn closes both.
    for (method, _, out) in run_sh(&script, &Extras::default()) {
        assert_eq!(out, "", "{method:?}");
    }
    drop(also_open);
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
        for umask in [None, Some(0o022)] {
            let mut request = SpawnRequest::new(program, &argv, &envp);
            request.cwd = cwd.map(|c| c.as_c_str());
            request.umask = umask;
            let err = fork_sys::spawn(&request).unwrap_err();
            assert_eq!(
                err.kind(),
                kind,
                "{program:?} cwd {cwd:?} umask {umask:?}: {err}"
            );
        }
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
    assert_eq!(request.method(), SpawnMethod::PosixSpawn);
}
