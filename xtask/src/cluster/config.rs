//! What `cargo xtask cluster up` writes: the state directory and its layout, the facts about
//! this host that go into `/etc/slurm/slurm.conf`, that file's text, and the munge key.
//!
//! The text generation is pure (host facts and a layout in, a `String` out) so it is unit-tested
//! without a cluster; only the `write_*` and `prepare` functions touch the file system.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::daemons::Daemon;
use crate::error::Error;

/// Where every file the cluster writes lives, except the two that must sit in `/etc`.
///
/// A fixed path rather than `$XDG_RUNTIME_DIR`: the cluster needs root, and `status`, the test
/// leg and the tests in the crates must all find it whatever their environment says.
pub(crate) const STATE_DIR: &str = "/tmp/prockit-slurm";

/// The configuration file srun, sinfo and the daemons read when nothing else is said.
pub(crate) const SLURM_CONF: &str = "/etc/slurm/slurm.conf";

/// The shared secret munged signs credentials with.
pub(crate) const MUNGE_KEY: &str = "/etc/munge/munge.key";

/// The directory of munged's socket; the socket path is the one every munge client defaults to.
pub(crate) const MUNGE_RUN_DIR: &str = "/run/munge";

/// munged's socket, where Slurm's `auth/munge` looks for it.
pub(crate) const MUNGE_SOCKET: &str = "/run/munge/munge.socket.2";

/// The line that marks a `slurm.conf` as ours. `up` rewrites a file that has it and refuses to
/// touch one that does not (so deleting the line is how to keep hand edits).
pub(crate) const MARKER: &str = "# prockit: written by `cargo xtask cluster up`";

/// The cluster's name in `slurm.conf`, and the name of its one partition.
pub(crate) const CLUSTER_NAME: &str = "prockit";

/// Size of the munge key `up` creates when there is none, as the issue that introduced the
/// cluster specifies (munge itself accepts anything from 32 bytes up).
const MUNGE_KEY_BYTES: usize = 1024;

/// The account munged runs as, from `/etc/passwd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl Account {
    /// Looks `name` up in `/etc/passwd`.
    pub(crate) fn lookup(name: &str) -> Result<Self, Error> {
        let path = Path::new("/etc/passwd");
        let text = read_to_string(path)?;
        parse_passwd(&text, name).ok_or_else(|| {
            Error::Cluster(format!(
                "cluster up: no user `{name}` in {} (the munge package creates it: \
                 apt-get install munge)",
                path.display()
            ))
        })
    }
}

/// The uid and gid of `name` in passwd-format `text`.
fn parse_passwd(text: &str, name: &str) -> Option<Account> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(Account { uid, gid })
    })
}

/// The facts about this machine that `slurm.conf` states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostFacts {
    /// `hostname -s`: slurmctld and slurmd find their own lines in `slurm.conf` by it.
    pub(crate) short_name: String,
    /// `nproc`: the CPUs this process may use.
    pub(crate) cpus: usize,
    /// `MemTotal` in MiB, the way `slurmd -C` computes `RealMemory`.
    pub(crate) memory_mib: u64,
}

impl HostFacts {
    /// Reads the host name and memory from `/proc`, the CPU count from the scheduler.
    pub(crate) fn read() -> Result<Self, Error> {
        let hostname_path = Path::new("/proc/sys/kernel/hostname");
        let short_name = short_hostname(&read_to_string(hostname_path)?).ok_or_else(|| {
            Error::Cluster(format!(
                "cluster up: {} holds no host name",
                hostname_path.display()
            ))
        })?;
        let meminfo_path = Path::new("/proc/meminfo");
        let memory_mib = mem_total_mib(&read_to_string(meminfo_path)?).ok_or_else(|| {
            Error::Cluster(format!(
                "cluster up: no `MemTotal: <n> kB` line in {}",
                meminfo_path.display()
            ))
        })?;
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(Self {
            short_name,
            cpus,
            memory_mib,
        })
    }
}

/// `hostname -s`: the host name up to its first dot, or `None` when there is none.
fn short_hostname(hostname: &str) -> Option<String> {
    let short = hostname.trim().split('.').next()?;
    (!short.is_empty()).then(|| short.to_owned())
}

/// `MemTotal` from `/proc/meminfo` text, in MiB rounded down.
fn mem_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib / 1024)
}

/// The files and directories under [`STATE_DIR`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Default for Layout {
    fn default() -> Self {
        Self::at(STATE_DIR)
    }
}

impl Layout {
    /// The layout rooted at `root` (tests use another root; the commands use [`STATE_DIR`]).
    pub(crate) fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The state directory itself.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Which daemons `up` started: see [`super::daemons::PidFile`].
    pub(crate) fn pid_file(&self) -> PathBuf {
        self.root.join("pids")
    }

    /// slurmctld's `StateSaveLocation`.
    fn state_save(&self) -> PathBuf {
        self.root.join("state")
    }

    /// slurmd's `SlurmdSpoolDir`.
    fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }

    /// munged's own directory (its pid and seed files), owned by the munge user.
    fn munge_dir(&self) -> PathBuf {
        self.root.join("munge")
    }

    /// The daemon's log. For the Slurm daemons it is the log file `slurm.conf` names; munged
    /// in the foreground logs to stderr only, so its log is its captured output.
    pub(crate) fn log(&self, daemon: Daemon) -> PathBuf {
        self.root.join(format!("{}.log", daemon.name()))
    }

    /// Where the daemon's stdout and stderr go. The Slurm daemons in the foreground copy their
    /// log there, and print there what goes wrong before their log is open (a bad
    /// `slurm.conf`); munged's is its log.
    pub(crate) fn output(&self, daemon: Daemon) -> PathBuf {
        match daemon {
            Daemon::Munged => self.log(daemon),
            Daemon::Slurmctld | Daemon::Slurmd => self.root.join(format!("{}.out", daemon.name())),
        }
    }

    /// The daemon's own pid file (the daemons write it; `up` and `down` go by [`Self::pid_file`]).
    fn daemon_pid_file(&self, daemon: Daemon) -> PathBuf {
        match daemon {
            Daemon::Munged => self.munge_dir().join("munged.pid"),
            Daemon::Slurmctld | Daemon::Slurmd => self.root.join(format!("{}.pid", daemon.name())),
        }
    }

    /// The files to read when the daemon misbehaves, for error messages.
    pub(crate) fn logs_of(&self, daemon: Daemon) -> String {
        let log = self.log(daemon);
        let output = self.output(daemon);
        if log == output {
            log.display().to_string()
        } else {
            format!("{} (and {})", log.display(), output.display())
        }
    }

    /// The command-line arguments `up` starts `daemon` with: in the foreground (so the pid
    /// `up` records is the daemon's own), slurmctld without the state of an earlier run.
    pub(crate) fn daemon_args(&self, daemon: Daemon) -> Vec<String> {
        match daemon {
            Daemon::Munged => vec![
                "--foreground".to_owned(),
                format!("--pid-file={}", self.daemon_pid_file(daemon).display()),
                format!(
                    "--seed-file={}",
                    self.munge_dir().join("munged.seed").display()
                ),
            ],
            Daemon::Slurmctld => vec!["-D".to_owned(), "-c".to_owned()],
            Daemon::Slurmd => vec!["-D".to_owned()],
        }
    }

    /// Creates the state directory and its subdirectories, refusing a root that is a symlink
    /// or belongs to someone other than root (it is a fixed name in a world-writable `/tmp`).
    pub(crate) fn prepare(&self, munge: Account) -> Result<(), Error> {
        create_dir(&self.root, 0o755)?;
        let metadata = fs::symlink_metadata(&self.root).map_err(io_error("inspect", &self.root))?;
        if !metadata.is_dir() || metadata.uid() != 0 {
            return Err(Error::Cluster(format!(
                "cluster up: {} exists but is not a directory owned by root; remove it and \
                 run again",
                self.root.display()
            )));
        }
        create_dir(&self.state_save(), 0o700)?;
        create_dir(&self.spool(), 0o755)?;
        let munge_dir = self.munge_dir();
        create_dir(&munge_dir, 0o700)?;
        chown(&munge_dir, munge)
    }
}

/// The text of `/etc/slurm/slurm.conf` for this host with its state under `layout`.
pub(crate) fn slurm_conf(host: &HostFacts, layout: &Layout) -> String {
    let HostFacts {
        short_name: host_name,
        cpus,
        memory_mib,
    } = host;
    let path = |path: PathBuf| path.display().to_string();
    let state_save = path(layout.state_save());
    let spool = path(layout.spool());
    let ctld_pid = path(layout.daemon_pid_file(Daemon::Slurmctld));
    let slurmd_pid = path(layout.daemon_pid_file(Daemon::Slurmd));
    let ctld_log = path(layout.log(Daemon::Slurmctld));
    let slurmd_log = path(layout.log(Daemon::Slurmd));
    format!(
        "\
{MARKER}
# A single-node test cluster for this host (see docs/test-cluster.md). `up` rewrites this file;
# delete the line above to keep edits, and `up` will then refuse to touch it.
ClusterName={CLUSTER_NAME}
SlurmctldHost={host_name}(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={state_save}
SlurmdSpoolDir={spool}
SlurmctldPidFile={ctld_pid}
SlurmdPidFile={slurmd_pid}
SlurmctldLogFile={ctld_log}
SlurmdLogFile={slurmd_log}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
NodeName={host_name} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mib} State=UNKNOWN
PartitionName={CLUSTER_NAME} Nodes={host_name} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"
    )
}

/// Whether `up` may write `slurm.conf` over `existing` (its current text, `None` when absent):
/// only over a file carrying [`MARKER`], never over one someone else wrote.
fn may_overwrite_slurm_conf(existing: Option<&str>) -> bool {
    existing.is_none_or(|text| text.lines().any(|line| line.trim_end() == MARKER))
}

/// Writes `text` to [`SLURM_CONF`] (through a temporary file and a rename, so a reader never
/// sees half of it), unless a file without our marker is already there.
pub(crate) fn write_slurm_conf(text: &str) -> Result<(), Error> {
    let path = Path::new(SLURM_CONF);
    let existing = match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(io_error("read", path)(error)),
    };
    if !may_overwrite_slurm_conf(existing.as_deref()) {
        return Err(Error::Cluster(format!(
            "cluster up: {SLURM_CONF} exists and was not written by `cargo xtask cluster up` \
             (it lacks the line \"{MARKER}\"); xtask does not overwrite another Slurm \
             configuration: move it aside (e.g. `mv {SLURM_CONF} {SLURM_CONF}.orig`) and run \
             `cargo xtask cluster up` again"
        )));
    }
    if existing.as_deref() == Some(text) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    }
    write_new_file(path, text.as_bytes(), 0o644, None)
}

/// What `ensure_munge_key` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MungeKey {
    /// A key was there already and is used as it is, whoever made it.
    Existing,
    /// There was none; `up` wrote [`MUNGE_KEY_BYTES`] random bytes.
    Created,
}

/// Makes sure [`MUNGE_KEY`] exists, creating it (random bytes, owner munge, mode 0400) when it
/// does not. An existing key is never replaced: any key works for a cluster of one host, and
/// replacing one would break every other munge client that shares it (the Debian package
/// creates one on install, for instance).
pub(crate) fn ensure_munge_key(munge: Account) -> Result<MungeKey, Error> {
    let path = Path::new(MUNGE_KEY);
    if fs::symlink_metadata(path).is_ok() {
        return Ok(MungeKey::Existing);
    }
    if let Some(dir) = path
        .parent()
        .filter(|dir| fs::symlink_metadata(dir).is_err())
    {
        create_dir(dir, 0o700)?;
        chown(dir, munge)?;
    }
    let urandom = Path::new("/dev/urandom");
    let mut key = vec![0; MUNGE_KEY_BYTES];
    fs::File::open(urandom)
        .and_then(|mut file| file.read_exact(&mut key))
        .map_err(io_error("read", urandom))?;
    write_new_file(path, &key, 0o400, Some(munge))?;
    Ok(MungeKey::Created)
}

/// Creates munged's socket directory when it is missing (systemd would, through the unit's
/// `RuntimeDirectory`; without systemd nobody does).
pub(crate) fn ensure_munge_run_dir(munge: Account) -> Result<(), Error> {
    let dir = Path::new(MUNGE_RUN_DIR);
    if fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    create_dir(dir, 0o755)?;
    chown(dir, munge)
}

/// Writes `bytes` to a temporary file beside `path` with `mode` (and `owner`), then renames it
/// over `path`.
fn write_new_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<Account>,
) -> Result<(), Error> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".prockit-tmp");
    let temporary = PathBuf::from(temporary);
    // A leftover from an interrupted run would make `create_new` fail.
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .map_err(io_error("create", &temporary))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error("write", &temporary))?;
    // The umask may have narrowed `mode`; say exactly what we mean.
    fs::set_permissions(&temporary, fs::Permissions::from_mode(mode))
        .map_err(io_error("set the permissions of", &temporary))?;
    if let Some(owner) = owner {
        chown(&temporary, owner)?;
    }
    fs::rename(&temporary, path).map_err(io_error("rename into place", path))
}

/// Creates `dir` with `mode` unless it exists.
fn create_dir(dir: &Path, mode: u32) -> Result<(), Error> {
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(io_error("set the permissions of", dir)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(io_error("create directory", dir)(error)),
    }
}

/// Gives `path` to `owner`.
fn chown(path: &Path, owner: Account) -> Result<(), Error> {
    std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
        .map_err(io_error("change the owner of", path))
}

/// Reads a whole text file, naming it on failure.
pub(crate) fn read_to_string(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(io_error("read", path))
}

/// Turns an `io::Error` about `path` into an [`Error::Io`] saying what was being done.
pub(crate) fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            short_name: "vm".to_owned(),
            cpus: 2,
            memory_mib: 24_105,
        }
    }

    #[test]
    fn slurm_conf_is_marked_and_describes_this_host() {
        let text = slurm_conf(&host(), &Layout::at("/tmp/prockit-slurm"));
        assert_eq!(text.lines().next(), Some(MARKER), "{text}");
        for line in [
            "ClusterName=prockit",
            "SlurmctldHost=vm(127.0.0.1)",
            "SlurmUser=root",
            "AuthType=auth/munge",
            "StateSaveLocation=/tmp/prockit-slurm/state",
            "SlurmdSpoolDir=/tmp/prockit-slurm/spool",
            "SlurmctldPidFile=/tmp/prockit-slurm/slurmctld.pid",
            "SlurmdPidFile=/tmp/prockit-slurm/slurmd.pid",
            "SlurmctldLogFile=/tmp/prockit-slurm/slurmctld.log",
            "SlurmdLogFile=/tmp/prockit-slurm/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "NodeName=vm NodeAddr=127.0.0.1 CPUs=2 RealMemory=24105 State=UNKNOWN",
            "PartitionName=prockit Nodes=vm Default=YES MaxTime=INFINITE State=UP \
             OverSubscribe=FORCE:4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
        // One node, one partition, and every line either a comment or `Key=value`.
        assert_eq!(
            text.lines().filter(|l| l.starts_with("NodeName=")).count(),
            1
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("PartitionName="))
                .count(),
            1
        );
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.contains('='),
                "odd line `{line}`"
            );
        }
    }

    #[test]
    fn our_slurm_conf_may_be_overwritten_and_no_other() {
        let ours = slurm_conf(&host(), &Layout::default());
        assert!(may_overwrite_slurm_conf(None));
        assert!(may_overwrite_slurm_conf(Some(&ours)));
        assert!(may_overwrite_slurm_conf(Some(&format!(
            "ClusterName=x\n{MARKER}  \n"
        ))));
        assert!(!may_overwrite_slurm_conf(Some("ClusterName=real\n")));
        assert!(!may_overwrite_slurm_conf(Some("")));
        // The marker must be a line of its own, not a mention inside another comment.
        assert!(!may_overwrite_slurm_conf(Some(&format!(
            "# not {MARKER}\n"
        ))));
    }

    #[test]
    fn passwd_lookup() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      munge:x:102:105::/nonexistent:/usr/sbin/nologin\n\
                      broken:x:oops:1::/:/bin/sh\n";
        assert_eq!(
            parse_passwd(passwd, "munge"),
            Some(Account { uid: 102, gid: 105 })
        );
        assert_eq!(
            parse_passwd(passwd, "root"),
            Some(Account { uid: 0, gid: 0 })
        );
        assert_eq!(parse_passwd(passwd, "mung"), None);
        assert_eq!(parse_passwd(passwd, "broken"), None);
    }

    #[test]
    fn host_facts_parse() {
        assert_eq!(short_hostname("vm\n").as_deref(), Some("vm"));
        assert_eq!(
            short_hostname("node7.example.org\n").as_deref(),
            Some("node7")
        );
        assert_eq!(short_hostname("\n"), None);
        let meminfo = "MemTotal:       24683584 kB\nMemFree:        21014000 kB\n";
        assert_eq!(mem_total_mib(meminfo), Some(24_105));
        assert_eq!(mem_total_mib("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_mib("MemTotal: 1024 MB\n"), None);
    }

    #[test]
    fn layout_names_each_daemons_files() {
        let layout = Layout::at("/s");
        assert_eq!(layout.pid_file(), Path::new("/s/pids"));
        assert_eq!(layout.log(Daemon::Slurmd), Path::new("/s/slurmd.log"));
        assert_eq!(layout.output(Daemon::Slurmd), Path::new("/s/slurmd.out"));
        assert_eq!(layout.output(Daemon::Munged), Path::new("/s/munged.log"));
        assert_eq!(layout.logs_of(Daemon::Munged), "/s/munged.log");
        assert_eq!(
            layout.logs_of(Daemon::Slurmctld),
            "/s/slurmctld.log (and /s/slurmctld.out)"
        );
        assert_eq!(
            layout.daemon_args(Daemon::Munged),
            [
                "--foreground",
                "--pid-file=/s/munge/munged.pid",
                "--seed-file=/s/munge/munged.seed"
            ]
        );
    }
}
