//! A child started from another executable is refused before it runs anything. Its own test
//! binary: `set_executable` is process-wide.

#![cfg(target_os = "linux")]

use std::path::PathBuf;

use proc_core::{Process, ProcessError, StartMethod};

fn square(x: u64) -> u64 {
    x * x
}

/// A copy of this test binary whose build id has one byte changed: the same code, as far as
/// running goes, but another identity.
fn patched_copy(dir: &std::path::Path) -> PathBuf {
    let me = std::env::current_exe().expect("current_exe");
    let mut bytes = std::fs::read(&me).expect("read the test binary");
    let id = build_id(&me);
    let at = bytes
        .windows(id.len())
        .position(|w| w == id.as_slice())
        .expect("the build id is in the file");
    bytes[at] ^= 0xff;
    let copy = dir.join("patched-test-binary");
    std::fs::write(&copy, &bytes).expect("write copy");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy
}

/// The build id, read with `readelf`-free parsing: the bytes after the note name "GNU\0" of
/// type 3 are what we look for; simplest is to take them from the identity proc-core reports,
/// which is not public, so find the note by its header instead.
fn build_id(path: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read");
    // A GNU build-id note: namesz 4, descsz 20 (SHA-1), type 3, "GNU\0", then the id.
    let header: Vec<u8> = [4u32, 20, 3]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .chain(*b"GNU\0")
        .collect();
    let at = bytes
        .windows(header.len())
        .position(|w| w == header.as_slice())
        .expect("a 20-byte GNU build id note");
    bytes[at + header.len()..at + header.len() + 20].to_vec()
}

#[cfg(target_os = "linux")]
#[test]
fn a_child_of_another_build_is_refused_and_a_stranger_program_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = patched_copy(dir.path());
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        proc_core::set_executable(Some(copy.clone()));
        let err = Process::builder()
            .name("mismatch")
            .start_method(method)
            .spawn_fn(square, 3)
            .unwrap_err();
        assert!(
            matches!(err, ProcessError::ExecutableMismatch { ref program, .. } if *program == copy),
            "{method}: {err}"
        );
        assert!(err.to_string().contains("another build"), "{err}");
    }
    // A program that is not ours at all never says hello.
    proc_core::set_executable(Some(PathBuf::from("/bin/true")));
    let err = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(square, 3)
        .unwrap_err();
    assert!(matches!(err, ProcessError::NoEntry { .. }), "{err}");
    assert!(err.to_string().contains("/bin/true"), "{err}");
    // Back to this executable: it works, and nothing was left behind.
    proc_core::set_executable(None);
    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(square, 3)
        .expect("spawn");
    assert_eq!(p.join().expect("join"), 9);
    assert_eq!(test_support::zombie_children(), 0);
}
