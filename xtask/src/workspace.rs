//! Where the workspace is, which cargo to run, and how a cargo command line is run there.
//!
//! Every command runs from the workspace root, whatever directory `cargo xtask` was typed in,
//! so `-p <crate>`, `--workspace` and relative paths (docs/BENCHMARKS.md) mean the same thing
//! everywhere.

use std::ffi::OsString;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::error::Error;

/// The workspace root, the cargo binary to drive it with, and variables every command gets.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    root: PathBuf,
    cargo: OsString,
    /// Set for every command run here, before the invocation's own.
    envs: Vec<(String, String)>,
}

impl Workspace {
    /// Finds the workspace from where xtask itself was built: the parent of `xtask/`.
    ///
    /// The path is fixed at compile time, so it holds even when the binary is run directly
    /// rather than through `cargo xtask`. Cargo is taken from `CARGO`, which cargo sets for
    /// the programs it runs, so nested commands use the same toolchain as the outer one
    /// (a `cargo +nightly xtask` stays on nightly); plain `cargo` from `PATH` otherwise.
    pub(crate) fn locate() -> Self {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        Self {
            root,
            cargo,
            envs: Vec::new(),
        }
    }

    /// This workspace with `key=value` set for every command it runs, unless the user's
    /// environment sets `key` already: the user's choice wins.
    pub(crate) fn with_default_env(&self, key: &str, value: &str) -> Self {
        let mut workspace = self.clone();
        if std::env::var_os(key).is_none() {
            workspace.envs.push((key.to_owned(), value.to_owned()));
        }
        workspace
    }

    /// The variables [`Workspace::with_default_env`] set, as `KEY=value` words for a note.
    pub(crate) fn default_envs(&self) -> impl Iterator<Item = String> + '_ {
        self.envs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
    }

    /// The crates whose tests the matrix runs, one leg each: every directory under `crates/`
    /// that holds a `Cargo.toml`, sorted by name.
    ///
    /// The package name is the directory name, a convention the workspace keeps so that this
    /// needs no TOML parser. Directories without a manifest (a crate someone is still creating)
    /// are skipped rather than failing the whole run.
    pub(crate) fn member_crates(&self) -> Result<Vec<String>, Error> {
        let dir = self.root.join("crates");
        let read_dir_error = |source| Error::ReadDir {
            path: dir.clone(),
            source,
        };
        let mut crates = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(read_dir_error)? {
            let path = entry.map_err(read_dir_error)?.path();
            if !path.join("Cargo.toml").is_file() {
                continue;
            }
            if let Some(name) = path.file_name().and_then(|name| name.to_str()) {
                crates.push(name.to_owned());
            }
        }
        crates.sort();
        Ok(crates)
    }

    /// Whether `cargo nextest` is installed, asked quietly so that its absence is not an error.
    pub(crate) fn has_nextest(&self) -> bool {
        Command::new(&self.cargo)
            .args(["nextest", "--version"])
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Bytes free on the file system that builds go to (`CARGO_TARGET_DIR`, else the
    /// workspace root), as `df -Pk` tells; `None` if it cannot be told.
    pub(crate) fn free_disk_bytes(&self) -> Option<u64> {
        let place = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.exists())
            .unwrap_or_else(|| self.root.clone());
        let output = Command::new("df")
            .arg("-Pk")
            .arg(&place)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        available_kib(&String::from_utf8_lossy(&output.stdout)).map(|kib| kib * 1024)
    }

    /// Runs `invocation` in the root with inherited stdio and returns how it ended.
    ///
    /// Output streams live (nothing is captured), so a long test run shows progress and CI logs
    /// hold everything each command printed.
    pub(crate) fn status(&self, invocation: &CargoInvocation) -> Result<ExitStatus, Error> {
        // Our own header lines must appear before the child's output, not after it.
        let _ = std::io::stdout().flush();
        let mut command = Command::new(&self.cargo);
        command.args(&invocation.args).current_dir(&self.root);
        for (key, value) in self.envs.iter().chain(&invocation.envs) {
            command.env(key, value);
        }
        command.status().map_err(|source| Error::Spawn {
            command: invocation.to_string(),
            source,
        })
    }

    /// Runs `invocation` like [`Workspace::status`] and turns an unsuccessful exit into an error.
    pub(crate) fn run(&self, invocation: &CargoInvocation) -> Result<(), Error> {
        let status = self.status(invocation)?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Failed {
                command: invocation.to_string(),
                status,
            })
        }
    }
}

/// One cargo command line: its arguments and any environment variables it needs.
///
/// Kept as data rather than a [`Command`] so it can be shown to the user exactly as it will run,
/// and compared in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CargoInvocation {
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl CargoInvocation {
    /// `cargo <args...>`.
    pub(crate) fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            envs: Vec::new(),
        }
    }

    /// Appends more arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for this command only.
    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// Shows the command as a person would type it in a shell, e.g.
/// `RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps`.
impl fmt::Display for CargoInvocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.envs {
            write!(f, "{key}={} ", shell_quote(value))?;
        }
        f.write_str("cargo")?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes `word` for display when a shell would otherwise split or expand it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The "Available" column (KiB) of `df -Pk`'s one file-system line, in the POSIX format:
/// a header, then `Filesystem 1024-blocks Used Available Capacity Mounted-on`.
fn available_kib(df_output: &str) -> Option<u64> {
    let line = df_output.lines().nth(1)?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_displays_as_typed_in_a_shell() {
        let cases = [
            (
                CargoInvocation::new(["fmt", "--all", "--check"]),
                "cargo fmt --all --check",
            ),
            (
                CargoInvocation::new(["doc", "--workspace"]).env("RUSTDOCFLAGS", "-D warnings"),
                "RUSTDOCFLAGS='-D warnings' cargo doc --workspace",
            ),
            (
                CargoInvocation::new(["run", "--"]).args(["it's", ""]),
                r"cargo run -- 'it'\''s' ''",
            ),
        ];
        for (invocation, expected) in cases {
            assert_eq!(invocation.to_string(), expected);
        }
    }

    #[test]
    fn a_default_env_is_kept_only_where_the_user_set_none() {
        let unset = "XTASK_TEST_VARIABLE_NOBODY_SETS";
        assert!(std::env::var_os(unset).is_none());
        let workspace = Workspace::locate()
            .with_default_env(unset, "0")
            .with_default_env("PATH", "/nowhere");
        assert_eq!(
            workspace.default_envs().collect::<Vec<_>>(),
            [format!("{unset}=0")]
        );
    }

    #[test]
    fn df_output_gives_the_available_kib() {
        let linux = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                     /dev/vda         263174212 22495644  73283004      24% /\n";
        assert_eq!(available_kib(linux), Some(73_283_004));
        let macos = "Filesystem 1024-blocks Used Available Capacity Mounted on\n\
                     /dev/disk3s5 482797652 301237176 153847532 67% /System/Volumes/Data\n";
        assert_eq!(available_kib(macos), Some(153_847_532));
        assert_eq!(
            available_kib("Filesystem 1024-blocks Used Available\n"),
            None
        );
        assert_eq!(
            available_kib("df: /nowhere: No such file or directory\n"),
            None
        );
    }

    #[test]
    fn free_disk_bytes_are_told_here() {
        // `df` is on every machine the matrix runs on (Linux, macOS).
        let free = Workspace::locate().free_disk_bytes();
        assert!(free.is_some_and(|bytes| bytes > 0), "{free:?}");
    }

    #[test]
    fn root_is_the_parent_of_xtask() {
        let workspace = Workspace::locate();
        assert!(workspace.root.join("xtask").join("Cargo.toml").is_file());
    }
}
