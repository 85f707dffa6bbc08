//! A fork server's child takes on the program's working directory and environment as they
//! are when it starts, not as they were when the server started: its own test binary (it
//! changes both for the whole process).

use proc_core::{Process, StartMethod};

fn where_and_what(name: String) -> (String, Option<String>, Option<String>) {
    let cwd = std::env::current_dir().map_or_else(|e| e.to_string(), |d| d.display().to_string());
    (
        cwd,
        std::env::var(&name).ok(),
        std::env::var("PROCKIT_GONE").ok(),
    )
}

#[test]
fn a_fork_server_child_sees_the_programs_cwd_and_environment_now() {
    // SAFETY: this test binary has no other test, and the variable is set before any thread
    // that could read the environment starts.
    unsafe { std::env::set_var("PROCKIT_GONE", "before") };
    // The server starts here, with the old directory and environment.
    let first = Process::builder()
        .start_method(StartMethod::ForkServer)
        .spawn_fn(where_and_what, "PROCKIT_LATE".to_string())
        .expect("spawn")
        .join()
        .expect("join");
    assert_eq!(first.2.as_deref(), Some("before"));
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_path = dir.path().canonicalize().expect("canonicalize");
    std::env::set_current_dir(&dir_path).expect("chdir");
    // SAFETY: as above; the only other threads (proc-core's reaper) do not read the
    // environment.
    unsafe {
        std::env::set_var("PROCKIT_LATE", "yes");
        std::env::remove_var("PROCKIT_GONE");
    }
    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        let (cwd, late, gone) = Process::builder()
            .start_method(method)
            .spawn_fn(where_and_what, "PROCKIT_LATE".to_string())
            .expect("spawn")
            .join()
            .expect("join");
        assert_eq!(
            cwd,
            dir_path.display().to_string(),
            "{method}: working directory"
        );
        assert_eq!(
            late.as_deref(),
            Some("yes"),
            "{method}: a variable set after the server started"
        );
        assert_eq!(
            gone, None,
            "{method}: a variable removed after the server started"
        );
    }
    std::env::set_current_dir("/").expect("chdir back");
}
