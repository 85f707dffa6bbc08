//! A failed spawn blames the step that failed: a working directory we may not enter is named
//! even when it can be listed, a missing program is named even when its directory cannot be
//! listed, and another step (`setuid`) is named as that step. Both spawn methods; run as `nobody` when the tests run as root (root may enter
//! any directory).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use proc_spawn::{Command, Error};

mod common;

#[test]
fn the_failed_step_is_blamed() {
    if common::reran_as_nobody("the_failed_step_is_blamed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Listable but not enterable, and enterable but not listable.
    let no_search = dir.path().join("no-search");
    let no_read = dir.path().join("no-read");
    for (path, mode) in [(&no_search, 0o644), (&no_read, 0o311)] {
        fs::create_dir(path).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }
    // The clone child, then fork+exec (a uid, even our own, forces it).
    for fork_exec in [false, true] {
        let with_method = |mut command: Command| {
            if fork_exec {
                command.uid(rustix::process::getuid().as_raw());
            }
            command
        };
        let err = with_method(Command::new("ls"))
            .current_dir(&no_search)
            .call()
            .unwrap_err();
        match &err {
            Error::BadWorkingDirectory { cwd, source, .. } => {
                assert_eq!(cwd, &no_search);
                assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
            }
            other => panic!("fork_exec {fork_exec}: {other:?}"),
        }
        let err = with_method(Command::new("./missing"))
            .current_dir(&no_read)
            .call()
            .unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { program } if program == "./missing"),
            "fork_exec {fork_exec}: {err:?}"
        );
    }
    // Another step of the set-up (fork+exec path) is named as such, not blamed on `true`.
    let err = Command::new("true").uid(0).call().unwrap_err();
    assert!(matches!(&err, Error::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("user and group ids"), "{err}");
    common::report_uid();
}
