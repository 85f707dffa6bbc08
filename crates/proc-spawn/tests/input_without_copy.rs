//! `Command::input` and `Pipeline::input` take their bytes without copying them: the peak
//! memory of this process does not grow by the input's size when it is handed over, and every
//! byte still reaches the child. (Its own test binary: the peak is per process, and other
//! tests running beside it would move it.)
//!
//! Regression: `input` took `impl Into<Vec<u8>>` and stored an `Arc<[u8]>`, so even a moved-in
//! `Vec` was copied once more (a borrowed slice twice: 3 GiB of peak for 1 GiB through `cat`).

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::sync::Arc;

use proc_spawn::{Command, Input};

const SIZE: usize = 128 << 20;

/// This process's peak resident set (`VmHWM`), in KiB.
fn peak_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Resets the peak to the current resident set; false where the kernel does not support it.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// How much the peak rose, in MiB, while `hand_over` ran.
fn peak_rise_mib(hand_over: impl FnOnce()) -> usize {
    assert!(reset_peak());
    let before = peak_kib();
    hand_over();
    peak_kib().saturating_sub(before) / 1024
}

fn bytes_counted_by_wc(output: &[u8]) -> usize {
    String::from_utf8_lossy(output).trim().parse().unwrap()
}

#[test]
fn input_is_moved_or_shared_in_not_copied() {
    if !reset_peak() {
        eprintln!("skipped: /proc/self/clear_refs cannot reset the peak here");
        return;
    }
    // Non-zero bytes, so every page is really there before the hand-over.
    let data = vec![7u8; SIZE];
    let mut command = Command::new("wc");
    command.arg("-c").capture_output();
    let rise = peak_rise_mib(|| {
        command.input(data);
    });
    assert!(
        rise < 16,
        "handing over {} MiB raised the peak by {rise} MiB",
        SIZE >> 20
    );
    let out = command.run().unwrap();
    assert_eq!(bytes_counted_by_wc(&out.stdout), SIZE);

    // A clone of the command shares the bytes.
    let rise = peak_rise_mib(|| {
        let copy = command.clone();
        drop(copy);
    });
    assert!(
        rise < 16,
        "cloning the command raised the peak by {rise} MiB"
    );

    // A pipeline's input, and bytes shared through an Arc, the same.
    let shared: Arc<[u8]> = Arc::from(vec![9u8; SIZE]);
    let mut pipeline = None;
    let rise = peak_rise_mib(|| {
        pipeline = Some(
            (Command::new("cat") | Command::new("wc").arg("-c").capture_output())
                .input(Arc::clone(&shared)),
        );
    });
    assert!(
        rise < 16,
        "a pipeline's input raised the peak by {rise} MiB"
    );
    let out = pipeline.unwrap().run().unwrap();
    assert_eq!(bytes_counted_by_wc(&out.stdout), SIZE);

    // Literals are borrowed; the Debug of a command says how long its input is, not what.
    let mut command = Command::new("cat");
    command.input("literal").capture_output();
    assert_eq!(command.run().unwrap().stdout, b"literal");
    let big = Command::new("cat").input(vec![b'z'; 1 << 20]).clone();
    let debug = format!("{big:?}");
    assert!(debug.contains("Input(1048576 bytes)"), "{debug:.200}");
    assert!(
        !debug.contains("122, 122"),
        "Debug printed the input's bytes"
    );
    assert_eq!(Input::from(b"abc").len(), 3);
}
