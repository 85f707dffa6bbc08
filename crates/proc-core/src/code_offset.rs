//! Naming a function so that another process of the same executable can find it: as an
//! offset from a base function in this crate, not as an absolute address.
//!
//! A child started by `exec` (the `Spawn` start method, and the fork server with everything
//! it forks) runs the same executable at addresses of its own (ASLR), so an absolute `fn`
//! address from the parent means nothing there. The *distance* between two functions of one
//! image is fixed at link time, so `base + offset` finds the same code in every process of
//! that executable. Whether it is the same executable is checked before any offset crosses:
//! the child's hello carries the executable's identity (its build id), and a child whose
//! identity differs is refused.
//!
//! This module only does the arithmetic, which is safe; turning an address back into a typed
//! `fn` is `unsafe` and stays with the code that knows the type (`spawn_fn.rs` here,
//! `task_fn.rs` in proc-pool).

/// The base: a function of this crate, linked into every executable that uses it.
#[inline(never)]
fn base() -> usize {
    base as fn() -> usize as usize
}

/// The offset of the code at `address` (a `fn` pointer cast to `usize`) from the base.
pub fn of(address: usize) -> u64 {
    address.wrapping_sub(base()) as u64
}

/// The address, in this process, of the code at `offset` from the base (the inverse of
/// [`of`] in any process of the same executable).
pub fn address(offset: u64) -> usize {
    base().wrapping_add(offset as usize)
}

#[cfg(test)]
mod tests {
    fn sample(x: u32) -> u32 {
        x + 1
    }

    #[test]
    fn an_offset_leads_back_to_the_same_function() {
        let address = sample as fn(u32) -> u32 as usize;
        assert_eq!(super::address(super::of(address)), address);
    }
}
