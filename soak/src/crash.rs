//! A real segmentation fault, for the tasks that must die of one. `kill(SIGSEGV)` would not
//! do: the Rust runtime's stack-overflow handler swallows the first SIGSEGV that does not come
//! from a faulting instruction.

#![allow(unsafe_code)]

/// Dies of SIGSEGV: a store to the never-mapped first page.
pub(crate) fn segfault() -> ! {
    // SAFETY: none, deliberately: the store faults and the process dies of SIGSEGV, which is
    // the point. It is only ever called in a pool worker the scenario expects to lose.
    unsafe { std::ptr::dangling_mut::<u64>().write_volatile(1) };
    unreachable!("a store to address 8 returned")
}
