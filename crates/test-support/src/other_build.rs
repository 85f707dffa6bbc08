//! A copy of the running executable that claims to be another build: for tests that a child
//! or worker started from a different executable is refused.

use std::path::{Path, PathBuf};

/// Writes into `dir` a copy of this executable whose GNU build id has one byte changed (the
/// same code, as far as running goes, but another identity), executable, and returns its
/// path. Panics when the executable cannot be read or has no 20-byte build id (Linux
/// toolchains emit one by default): a test that needs the copy cannot go on without it.
pub fn copy_with_another_build_id(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().expect("current_exe");
    let mut bytes = std::fs::read(&me).expect("read the test binary");
    let at = build_id_offset(&bytes).expect("a 20-byte GNU build id note");
    bytes[at] ^= 0xff;
    let copy = dir.join("another-build");
    std::fs::write(&copy, &bytes).expect("write the copy");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}

/// Where the build id's bytes start: after a note header with name size 4, descriptor size 20
/// (SHA-1), type 3 (`NT_GNU_BUILD_ID`) and the name "GNU\0".
fn build_id_offset(bytes: &[u8]) -> Option<usize> {
    let header: Vec<u8> = [4u32, 20, 3]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .chain(*b"GNU\0")
        .collect();
    let at = bytes
        .windows(header.len())
        .position(|w| w == header.as_slice())?;
    Some(at + header.len())
}
