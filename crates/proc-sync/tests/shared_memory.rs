//! `SharedMemory`: named blocks created here and attached by name in children, the unlink
//! rule, and names that cannot work.

use std::path::Path;

use proc_core::Process;
use proc_sync::{SharedMemory, SyncError};

/// A name no other test (or test run) uses.
fn unique(what: &str) -> String {
    format!("proc-sync-test-{what}-{}", std::process::id())
}

fn in_dev_shm(name: &str) -> bool {
    Path::new("/dev/shm")
        .join(name.trim_start_matches('/'))
        .exists()
}

#[test]
fn a_child_attaches_by_name_and_the_creators_drop_unlinks() {
    let name = unique("attach");
    let block = SharedMemory::create(&name, 100).unwrap();
    assert_eq!(block.name(), format!("/{name}"));
    assert_eq!(block.size(), 100);
    assert!(block.is_creator());
    if cfg!(target_os = "linux") {
        assert!(in_dev_shm(&name));
    }
    block.write_at(0, b"to the child").unwrap();
    let child = {
        let name = name.clone();
        Process::spawn(move || {
            let block = SharedMemory::attach(&name).map_err(|e| e.to_string())?;
            let greeting = block.read_vec(0, 12).map_err(|e| e.to_string())?;
            block
                .write_at(50, b"to the parent")
                .map_err(|e| e.to_string())?;
            Ok::<(Vec<u8>, usize, bool), String>((greeting, block.size(), block.is_creator()))
        })
        .unwrap()
    };
    let (greeting, size, creator) = child.join().unwrap().unwrap();
    assert_eq!(greeting, b"to the child");
    // An attached block sees the whole object, which is made of 8-byte words.
    assert_eq!(size, 104);
    assert!(!creator);
    let mut back = [0u8; 13];
    block.read_at(50, &mut back).unwrap();
    assert_eq!(&back, b"to the parent");
    // The attached block's drop (in the child) did not unlink; the creator's does.
    assert!(SharedMemory::attach(&name).is_ok());
    drop(block);
    assert!(
        !in_dev_shm(&name),
        "the creator's drop left /dev/shm/{name}"
    );
    let err = SharedMemory::attach(&name).unwrap_err();
    assert!(matches!(err, SyncError::NameNotFound { .. }), "{err:?}");
}

#[test]
fn a_forked_child_dropping_the_creators_copy_does_not_unlink() {
    let block = SharedMemory::create(&unique("fork"), 8).unwrap();
    let child = {
        let block = block.clone();
        Process::spawn(move || drop(block)).unwrap()
    };
    child.join().unwrap();
    assert!(
        SharedMemory::attach(block.name()).is_ok(),
        "the child unlinked the name"
    );
}

#[test]
fn a_taken_name_is_a_clear_error_and_unlink_frees_it() {
    let name = unique("taken");
    let first = SharedMemory::create(&name, 16).unwrap();
    let err = SharedMemory::create(&format!("/{name}"), 16).unwrap_err();
    assert!(matches!(err, SyncError::NameTaken { .. }), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");
    first.unlink().unwrap();
    assert!(matches!(
        first.unlink(),
        Err(SyncError::NameNotFound { .. })
    ));
    // The mapping outlives the name; the name is free for another block.
    first.write_at(0, &[1]).unwrap();
    let second = SharedMemory::create(&name, 16).unwrap();
    // The first creator's drop leaves the second block's name alone.
    drop(first);
    assert!(SharedMemory::attach(&name).is_ok());
    drop(second);
    assert!(SharedMemory::attach(&name).is_err());
}

#[test]
fn keep_leaves_the_name_for_a_later_unlink() {
    let name = unique("keep");
    let block = SharedMemory::create(&name, 16).unwrap();
    block.write_at(0, b"kept").unwrap();
    block.keep();
    drop(block);
    let later = SharedMemory::open(&name).unwrap();
    assert_eq!(later.read_vec(0, 4).unwrap(), b"kept");
    later.unlink().unwrap();
    assert!(SharedMemory::attach(&name).is_err());
}

#[test]
fn accesses_past_the_end_and_bad_sizes_and_names_are_refused() {
    let block = SharedMemory::create_unique(10).unwrap();
    assert!(block.name().starts_with("/psm_"));
    let err = block.write_at(8, &[0; 3]).unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::OutOfBounds {
                offset: 8,
                len: 3,
                size: 10
            }
        ),
        "{err:?}"
    );
    assert!(block.read_at(usize::MAX, &mut [0]).is_err());
    block.write_at(7, &[1, 2, 3]).unwrap();
    let zero = SharedMemory::create(&unique("zero"), 0).unwrap_err();
    assert!(zero.to_string().contains("above zero"), "{zero}");
    for bad in ["", "/", "a/b", "//x", "nul\0byte", ".."] {
        let err = SharedMemory::create(bad, 8).unwrap_err();
        assert!(matches!(err, SyncError::BadName { .. }), "{bad:?}: {err:?}");
    }
    let long = "x".repeat(300);
    assert!(
        SharedMemory::attach(&long)
            .unwrap_err()
            .to_string()
            .contains("longer")
    );
}
