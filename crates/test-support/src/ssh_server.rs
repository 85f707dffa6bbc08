//! A private `sshd` on a loopback port, for tests of launchers that go through `ssh`: its own
//! host key, one client key it accepts, everything in a temporary directory, stopped when
//! dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `sshd` may take to listen.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A running `sshd` that accepts this user with a key of its own on `127.0.0.1`. The server
/// runs as whoever runs the test: as root it lets root in; otherwise only the same user.
#[derive(Debug)]
pub struct SshServer {
    daemon: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SshServer {
    /// Starts one. `Err` says why it cannot be (no `sshd` or `ssh-keygen` installed, a
    /// configuration it refused, no free port): the caller decides whether that is a skip or
    /// a failure.
    pub fn start() -> Result<SshServer, String> {
        let sshd = find_program("sshd").ok_or("no sshd (apt-get install openssh-server)")?;
        let keygen =
            find_program("ssh-keygen").ok_or("no ssh-keygen (apt-get install openssh-client)")?;
        let dir = tempfile::tempdir().map_err(|err| format!("temporary directory: {err}"))?;
        for key in ["host_key", "client_key"] {
            let path = dir.path().join(key);
            let made = Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&path)
                .stdin(Stdio::null())
                .output()
                .map_err(|err| format!("{}: {err}", keygen.display()))?;
            if !made.status.success() {
                return Err(format!(
                    "ssh-keygen for {key}: {}: {}",
                    made.status,
                    String::from_utf8_lossy(&made.stderr)
                ));
            }
        }
        let public = dir.path().join("client_key.pub");
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(&public, &authorized).map_err(|err| format!("authorized_keys: {err}"))?;
        // Privilege separation, when run as root, needs this empty directory (the packaged
        // service makes it; without systemd nobody does).
        if rustix::process::geteuid().is_root() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        // A port free a moment ago; another process may take it meanwhile: try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            match start_daemon(&sshd, dir.path(), port) {
                Ok(daemon) => return Ok(SshServer { daemon, port, dir }),
                Err(err) => last_error = err,
            }
        }
        Err(last_error)
    }

    /// For a test named `test`: `None` (the test prints that it was skipped and should
    /// return) unless `PROCKIT_SSH=1`, which the `ssh` leg of `cargo xtask test` sets where
    /// OpenSSH is installed; with it, a server that cannot start panics, failing the test.
    pub fn for_test(test: &str) -> Option<SshServer> {
        if std::env::var_os("PROCKIT_SSH").is_none_or(|v| v != "1") {
            eprintln!("{test}: skipped: no sshd for it (run `cargo xtask test --leg ssh`)");
            return None;
        }
        match SshServer::start() {
            Ok(server) => Some(server),
            Err(err) => panic!("{test}: starting sshd: {err}"),
        }
    }

    /// The host to give `ssh`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The `ssh` options that reach this server without a prompt: its port, the client key,
    /// and no known-hosts file (the host key is new each time).
    pub fn client_args(&self) -> Vec<String> {
        let key = self.dir.path().join("client_key");
        [
            "-p".to_owned(),
            self.port.to_string(),
            "-i".to_owned(),
            key.display().to_string(),
        ]
        .into_iter()
        .chain(
            [
                "IdentitiesOnly=yes",
                "StrictHostKeyChecking=no",
                "UserKnownHostsFile=/dev/null",
                "LogLevel=ERROR",
            ]
            .into_iter()
            .flat_map(|option| ["-o".to_owned(), option.to_owned()]),
        )
        .collect()
    }

    /// What the server logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Starts `sshd -D` on `port` with a configuration in `dir` and waits until it listens.
fn start_daemon(sshd: &Path, dir: &Path, port: u16) -> Result<Child, String> {
    let config = dir.join("sshd_config");
    let text = format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {dir}/host_key\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         PidFile {dir}/sshd.pid\n\
         StrictModes no\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         LogLevel ERROR\n",
        dir = dir.display()
    );
    std::fs::write(&config, text).map_err(|err| format!("sshd_config: {err}"))?;
    let log = std::fs::File::create(dir.join("sshd.log")).map_err(|err| format!("log: {err}"))?;
    let mut daemon = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|err| format!("{}: {err}", sshd.display()))?;
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(daemon);
        }
        if let Ok(Some(status)) = daemon.try_wait() {
            let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
            return Err(format!("sshd exited ({status}): {log}"));
        }
        if Instant::now() >= deadline {
            let _ = daemon.kill();
            let _ = daemon.wait();
            return Err(format!(
                "sshd not listening on port {port} after {START_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A loopback port nobody listened on a moment ago.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|err| format!("no free loopback port: {err}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|err| format!("no free loopback port: {err}"))
}

/// `name` in `PATH` or the system's sbin directories (where `sshd` lives, often outside a
/// user's `PATH`).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
