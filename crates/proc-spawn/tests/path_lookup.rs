//! The `PATH` lookup searches as `execvp` does: a candidate this process may not execute is
//! passed over for a later one, and relative entries are relative to the directory the child
//! runs in.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proc_spawn::{Command, Error};

mod common;

fn write_script(path: &Path, text: &str, mode: u32) {
    fs::write(path, format!("#!/bin/sh\necho {text}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn stdout_of(command: &mut Command) -> Result<String, Error> {
    let done = command.capture_output().run()?;
    assert!(done.status.success(), "{done:?}");
    Ok(String::from_utf8(done.stdout).unwrap())
}

#[test]
fn relative_path_entries_are_relative_to_the_childs_cwd() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("bin")).unwrap();
    write_script(&dir.path().join("bin/prockit-rel"), "rel", 0o755);
    write_script(&dir.path().join("prockit-dot"), "dot", 0o755);
    // Our cwd has neither `bin/prockit-rel` nor `prockit-dot`; the child's has both.
    for (program, path, expected) in [
        ("prockit-rel", "bin", "rel\n"),
        ("prockit-dot", "/nonexistent:", "dot\n"),
        ("prockit-dot", ".", "dot\n"),
    ] {
        // The clone child, then fork+exec (a uid, even our own, forces it).
        for fork_exec in [false, true] {
            let mut command = Command::new(program);
            command.env("PATH", path).current_dir(dir.path());
            if fork_exec {
                command.uid(rustix::process::getuid().as_raw());
            }
            assert_eq!(stdout_of(&mut command).unwrap(), expected, "PATH={path}");
        }
    }
    // And not looked up in our cwd when the child runs elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let err = Command::new("prockit-rel")
        .env("PATH", "bin")
        .current_dir(elsewhere.path())
        .call()
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// Root may execute any file with an `x` bit, so as root the test runs itself again as
/// `nobody` (through proc-spawn's own `uid`/`gid`).
#[test]
fn candidates_we_may_not_execute_are_passed_over() {
    if common::reran_as_nobody("candidates_we_may_not_execute_are_passed_over") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let [d1, d2, d3] = ["d1", "d2", "d3"].map(|d| dir.path().join(d));
    for d in [&d1, &d2, &d3] {
        fs::create_dir(d).unwrap();
    }
    // A directory, a file with `x` for group and others but not for us (its owner), then the
    // real program.
    fs::create_dir(d1.join("prockit-prog")).unwrap();
    write_script(&d2.join("prockit-prog"), "d2", 0o677);
    write_script(&d3.join("prockit-prog"), "d3", 0o755);
    let path = |dirs: &[&Path]| {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    };
    for fork_exec in [false, true] {
        let mut command = Command::new("prockit-prog");
        command.env("PATH", path(&[&d1, &d2, &d3]));
        if fork_exec {
            command.uid(rustix::process::getuid().as_raw());
        }
        assert_eq!(stdout_of(&mut command).unwrap(), "d3\n");
    }
    let err = Command::new("prockit-prog")
        .env("PATH", path(&[&d1, &d2]))
        .call()
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    common::report_uid();
}
