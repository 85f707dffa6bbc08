//! Only its own program can reach the fork server: its own test binary, since it lists the
//! server's descriptors (other tests' requests would add transient ones).

#![cfg(target_os = "linux")]

use proc_core::{Process, StartMethod};

fn square(x: u64) -> u64 {
    x * x
}

/// Only its own program can reach the fork server: it listens on no name (every socket it
/// holds is unnamed), a process of the same uid cannot open its socket through /proc, and
/// another uid cannot even list its descriptors.
#[cfg(target_os = "linux")]
#[test]
fn the_fork_server_answers_only_its_program() {
    let p = Process::builder()
        .start_method(StartMethod::ForkServer)
        .spawn_fn(square, 2)
        .expect("spawn");
    assert_eq!(p.join().expect("join"), 4);
    let server = proc_core::fork_server_pid().expect("a fork server runs");
    let unix = std::fs::read_to_string("/proc/net/unix").expect("/proc/net/unix");
    let mut sockets = 0;
    for entry in std::fs::read_dir(format!("/proc/{server}/fd")).expect("list the server's fds") {
        let path = entry.expect("entry").path();
        let target = std::fs::read_link(&path).expect("readlink");
        let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
        else {
            continue;
        };
        sockets += 1;
        // Columns: Num RefCount Protocol Flags Type St Inode [Path].
        let line = unix
            .lines()
            .find(|line| line.split_whitespace().nth(6) == Some(inode))
            .unwrap_or_else(|| panic!("socket {inode} not in /proc/net/unix"));
        assert_eq!(
            line.split_whitespace().count(),
            7,
            "the server's socket has a name: {line}"
        );
        let err = std::fs::File::open(&path).expect_err("a socket cannot be opened through /proc");
        assert_eq!(err.raw_os_error(), Some(6), "ENXIO expected: {err}");
    }
    // Its control socket, and the socket of the spare child it keeps forked ahead.
    assert!(
        (1..=2).contains(&sockets),
        "the server holds {sockets} sockets"
    );
    if rustix_free_getuid() == 0 {
        // As nobody: `ls /proc/<server>/fd` is refused.
        let argv =
            fork_sys::exec::CStringArray::new(["ls", &format!("/proc/{server}/fd")]).expect("argv");
        let envp = fork_sys::exec::CStringArray::new(Vec::<String>::new()).expect("envp");
        let mut request = fork_sys::SpawnRequest::new(c"/bin/ls", &argv, &envp);
        request.uid = Some(65534);
        request.gid = Some(65534);
        let pid = fork_sys::spawn(&request).expect("spawn ls as nobody");
        let status = fork_sys::wait(pid).expect("wait");
        assert!(
            !status.success(),
            "another uid listed the fork server's descriptors"
        );
    }
}

/// The real uid, from /proc (proc-core's tests use no libc).
fn rustix_free_getuid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().and_then(|u| u.parse().ok()))
        })
        .unwrap_or(u32::MAX)
}
