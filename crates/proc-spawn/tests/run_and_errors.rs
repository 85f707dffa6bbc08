//! `run`, `call`, `check_call`, `check_output`: exit codes, signal deaths, the environment,
//! the working directory, and typed errors that name the program or the directory (ports of
//! CPython's test_subprocess behaviours).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::os::unix::fs::PermissionsExt;

use proc_spawn::{Command, CommandPart, Error, ExitStatus, Signal, Stdio};

fn sh(script: &str) -> Command {
    Command::shell(script)
}

fn stdout_of(command: &mut Command) -> String {
    let done = command.capture_output().run().unwrap();
    assert!(done.status.success(), "{done:?}");
    done.stdout_text().unwrap().to_owned()
}

#[test]
fn exit_codes_and_signal_deaths() {
    let cases = [
        ("exit 0", ExitStatus::Exited(0), 0),
        ("exit 1", ExitStatus::Exited(1), 1),
        ("exit 47", ExitStatus::Exited(47), 47),
        (
            "kill -TERM $$",
            ExitStatus::Signaled {
                signal: Signal::TERM,
                core_dumped: false,
            },
            -15,
        ),
        (
            "kill -KILL $$",
            ExitStatus::Signaled {
                signal: Signal::KILL,
                core_dumped: false,
            },
            -9,
        ),
    ];
    for (script, status, returncode) in cases {
        let got = sh(script).call().unwrap();
        assert_eq!(got, status, "{script}");
        assert_eq!(got.code(), returncode, "{script}");
    }
    assert!(proc_spawn::call(["true"]).unwrap().success());
    assert_eq!(
        proc_spawn::run(["false"]).unwrap().status,
        ExitStatus::Exited(1)
    );
}

#[test]
fn check_turns_failure_into_called_process_error_with_the_output() {
    let err = sh("echo out; echo err >&2; exit 3")
        .capture_output()
        .check(true)
        .run()
        .unwrap_err();
    match &err {
        Error::CalledProcessError {
            args,
            status,
            stdout,
            stderr,
        } => {
            assert_eq!(args[0], "/bin/sh");
            assert_eq!(*status, ExitStatus::Exited(3));
            assert_eq!(stdout, b"out\n");
            assert_eq!(stderr, b"err\n");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("exited with code 3"), "{err}");
    assert!(matches!(
        proc_spawn::check_call(["false"]),
        Err(Error::CalledProcessError {
            status: ExitStatus::Exited(1),
            ..
        })
    ));
    assert_eq!(proc_spawn::check_output(["echo", "hi"]).unwrap(), b"hi\n");
    match proc_spawn::check_output(["sh", "-c", "echo partial; exit 2"]) {
        Err(Error::CalledProcessError { stdout, .. }) => assert_eq!(stdout, b"partial\n"),
        other => panic!("{other:?}"),
    }
}

/// Whether `env`'s output sets `name`.
fn has_var(env_output: &str, name: &str) -> bool {
    env_output
        .lines()
        .any(|line| line.split_once('=').is_some_and(|(key, _)| key == name))
}

#[test]
fn environment_empty_inherited_overridden_and_removed() {
    let inherited = std::env::var_os("PATH").unwrap();
    let env_of = |command: &mut Command| stdout_of(command.arg("-c").arg("env"));

    let empty = env_of(Command::new("/bin/sh").env_clear());
    // sh may add PWD, SHLVL or _ by itself; nothing of ours may appear.
    assert!(!has_var(&empty, "PATH"), "{empty}");

    let all = env_of(&mut Command::new("/bin/sh"));
    assert!(
        all.contains(&format!("PATH={}", inherited.to_string_lossy())),
        "{all}"
    );

    let changed = env_of(
        Command::new("/bin/sh")
            .env("PROCKIT_A", "one")
            .envs([("PROCKIT_B", "two")])
            .env("PATH", "/usr/bin:/bin")
            .env_remove("HOME"),
    );
    assert!(changed.contains("PROCKIT_A=one\n"), "{changed}");
    assert!(changed.contains("PROCKIT_B=two\n"), "{changed}");
    assert!(changed.contains("PATH=/usr/bin:/bin\n"), "{changed}");
    assert!(!has_var(&changed, "HOME"), "{changed}");

    let only = env_of(Command::new("/bin/sh").env_clear().env("ONLY", "this"));
    assert!(only.contains("ONLY=this\n"), "{only}");
    assert!(!has_var(&only, "PATH"), "{only}");
}

#[test]
fn the_programs_path_lookup_uses_the_childs_path() {
    let dir = tempfile::tempdir().unwrap();
    let tool = dir.path().join("prockit-tool");
    std::fs::write(&tool, "#!/bin/sh\necho from-tool\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", dir.path().display());
    assert_eq!(
        stdout_of(Command::new("prockit-tool").env("PATH", &path)),
        "from-tool\n"
    );
    assert!(matches!(
        Command::new("prockit-tool").call(),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn cwd_is_where_the_child_runs_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().canonicalize().unwrap();
    let pwd = stdout_of(Command::new("pwd").current_dir(&real));
    assert_eq!(pwd.trim_end(), real.to_str().unwrap());

    let missing = dir.path().join("gone");
    let err = Command::new("pwd")
        .current_dir(&missing)
        .call()
        .unwrap_err();
    match &err {
        Error::BadWorkingDirectory { program, cwd, .. } => {
            assert_eq!(program, "pwd");
            assert_eq!(cwd, &missing);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(missing.to_str().unwrap()), "{err}");
    // The same through the fork+exec path.
    let err = Command::new("pwd")
        .current_dir(&missing)
        .uid(rustix::process::getuid().as_raw())
        .call()
        .unwrap_err();
    assert!(matches!(err, Error::BadWorkingDirectory { .. }), "{err:?}");
}

#[test]
fn a_nonexistent_or_unexecutable_program_is_named() {
    for program in ["prockit-no-such-program", "/nonexistent/prockit"] {
        let err = proc_spawn::call([program]).unwrap_err();
        match &err {
            Error::NotFound { program: named } => assert_eq!(named, program),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains(program), "{err}");
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let err = proc_spawn::call([&script]).unwrap_err();
    assert!(
        matches!(&err, Error::PermissionDenied { program } if program == script.as_os_str()),
        "{err:?}"
    );
    assert!(matches!(
        proc_spawn::call([""]),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_nul_byte_is_one_clear_error_naming_the_part_before_the_path_lookup() {
    // Regression: "sh\0" was NotFound ("not found in PATH"), the others a bare
    // `Spawn { InvalidInput }` that did not say where the byte was.
    let env = |name: &str, value: &str| {
        let mut command = Command::new("true");
        command.env(name, value);
        command
    };
    let cases: [(Command, CommandPart, &str); 7] = [
        (
            Command::new("sh\0"),
            CommandPart::Program,
            "the program name contains a NUL byte",
        ),
        (
            Command::new("/bin/sh\0"),
            CommandPart::Program,
            "the program name contains a NUL byte",
        ),
        (
            Command::new("prockit-no-such-program\0"),
            CommandPart::Program,
            "the program name contains a NUL byte",
        ),
        (
            Command::new("echo").args(["ok", "a\0b"]).clone(),
            CommandPart::Argument(2),
            "argument 2 contains a NUL byte",
        ),
        (
            env("GREETING", "a\0b"),
            CommandPart::EnvValue("GREETING".into()),
            "the value of environment variable \"GREETING\" contains a NUL byte",
        ),
        (
            // Even the PATH the lookup would read: refused before it is read.
            env("PATH", "/bin\0:/usr/bin"),
            CommandPart::EnvValue("PATH".into()),
            "the value of environment variable \"PATH\"",
        ),
        (
            Command::new("true").current_dir("/tmp\0").clone(),
            CommandPart::CurrentDir,
            "the working directory contains a NUL byte",
        ),
    ];
    for (command, part, message) in cases {
        for result in [command.spawn().map(drop), command.run().map(drop)] {
            let err = result.unwrap_err();
            match &err {
                Error::NulByte { program, part: got } => {
                    assert_eq!(program, command.get_args()[0].as_os_str());
                    assert_eq!(got, &part);
                }
                other => panic!("{command:?}: {other:?}"),
            }
            assert!(err.to_string().contains(message), "{err}");
            let io: std::io::Error = err.into();
            assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
        }
    }
    let err = env("A\0B", "x").call().unwrap_err();
    assert!(
        matches!(&err, Error::NulByte { part: CommandPart::EnvName(name), .. } if name == "A\0B"),
        "{err:?}"
    );
    // A pipeline stage is checked the same way, and nothing is left running.
    let err = (Command::new("sleep").arg("5") | Command::new("cat").arg("x\0"))
        .run()
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NulByte {
                part: CommandPart::Argument(1),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn the_shell_runs_only_when_asked_for() {
    // Without `shell`, metacharacters are plain arguments.
    let out = stdout_of(Command::new("echo").arg("$HOME; echo injected"));
    assert_eq!(out, "$HOME; echo injected\n");
    let out = stdout_of(&mut Command::shell("echo one; echo two"));
    assert_eq!(out, "one\ntwo\n");
}

#[test]
fn text_decoding_names_the_stream() {
    let done = Command::new("printf")
        .arg("ok\\377")
        .capture_output()
        .run()
        .unwrap();
    match done.stdout_text() {
        Err(Error::NotUtf8 {
            stream,
            valid_up_to,
            ..
        }) => {
            assert_eq!((stream, valid_up_to), ("stdout", 2));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(done.stderr_text().unwrap(), "");
}

#[test]
fn umask_uid_and_gid_reach_the_child() {
    let out = stdout_of(Command::shell("umask").umask(0o027));
    assert_eq!(out.trim_end(), "0027");
    let am_root = stdout_of(Command::new("id").arg("-u")) == "0\n";
    let result = Command::new("id")
        .args(["-u", "-r"])
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::piped())
        .capture_output()
        .run();
    if am_root {
        assert_eq!(result.unwrap().stdout, b"65534\n");
    } else {
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::Spawn { .. } | Error::PermissionDenied { .. }),
            "{err:?}"
        );
    }
}
