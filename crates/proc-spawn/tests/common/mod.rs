//! Shared by the tests that check permissions: root may enter any directory and run any file
//! with an `x` bit, so as root such a test runs itself again as `nobody`.

use proc_spawn::Command;

const AS_NOBODY: &str = "PROC_SPAWN_TEST_AS_NOBODY";

/// When this test process runs as root, runs the test `name` of this binary again as `nobody`
/// (through proc-spawn's own `uid`/`gid`), checks that it passed having printed
/// [`report_uid`]'s line, and returns true: the caller is done. Returns false when the caller
/// should run its checks itself (not root, or already the re-run).
pub(crate) fn reran_as_nobody(name: &str) -> bool {
    let uid = Command::new("id").arg("-u").capture_output().run().unwrap();
    if uid.stdout != b"0\n" || std::env::var_os(AS_NOBODY).is_some() {
        return false;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture"])
        .env(AS_NOBODY, "1")
        .uid(65534)
        .gid(65534)
        .current_dir("/")
        .capture_output()
        .run()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("checked as uid"),
        "{out:?}\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// The line a re-run prints at the end of its checks, so that the parent run knows they ran.
pub(crate) fn report_uid() {
    let uid = Command::new("id").arg("-u").capture_output().run().unwrap();
    println!(
        "checked as uid {}",
        String::from_utf8_lossy(&uid.stdout).trim()
    );
}
