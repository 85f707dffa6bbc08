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

/// Why a function cannot be named by an offset: it lies in another loaded image than
/// proc-core (a shared library, or proc-core is in one), whose distance from proc-core changes
/// with every process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotNameable {
    /// The function's address in this process.
    pub address: usize,
    /// The file the function is in.
    pub image: std::path::PathBuf,
    /// The file proc-core is in.
    pub base_image: std::path::PathBuf,
}

impl std::fmt::Display for NotNameable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |path: &std::path::Path| {
            if path.as_os_str().is_empty() {
                "the executable".to_owned()
            } else {
                path.display().to_string()
            }
        };
        write!(
            f,
            "the function at {:#x} is in {}, not in {} with proc-core: a ForkServer or Spawn \
             child cannot be told to run it (use StartMethod::Fork, or link the function \
             into the same file as proc-core)",
            self.address,
            name(&self.image),
            name(&self.base_image)
        )
    }
}

impl std::error::Error for NotNameable {}

/// Checks that the code at `address` lies in the same loaded image as proc-core, so that
/// [`of`] names it in every process of this executable. Always true for a statically linked
/// Rust program (the default); false for a function in a shared library, or when proc-core
/// itself was linked as one. Where the loader cannot tell (`dladdr` unavailable), assumes so.
pub fn check(address: usize) -> Result<(), NotNameable> {
    let (Some(image), Some(base_image)) = (
        fork_sys::loaded_image(address),
        fork_sys::loaded_image(base()),
    ) else {
        return Ok(());
    };
    if image.base == base_image.base {
        Ok(())
    } else {
        Err(NotNameable {
            address,
            image: image.path,
            base_image: base_image.path,
        })
    }
}

#[cfg(test)]
mod tests {
    fn sample(x: u32) -> u32 {
        x + 1
    }

    #[test]
    fn functions_of_this_executable_are_nameable_and_libcs_are_not() {
        assert_eq!(super::check(sample as fn(u32) -> u32 as usize), Ok(()));
        let other_crate = fork_sys::loaded_image as fn(usize) -> Option<fork_sys::LoadedImage>;
        assert_eq!(
            super::check(other_crate as usize),
            Ok(()),
            "fork-sys is linked statically"
        );
        // The C library is a shared object: its functions are in another image. (`getenv` is
        // reached through a pointer std keeps; any address in libc.so would do.)
        #[cfg(target_os = "linux")]
        if let Some(libc_address) = libc_address() {
            let err = super::check(libc_address).unwrap_err();
            assert!(err.image.to_string_lossy().contains("libc"), "{err}");
            assert!(err.to_string().contains("StartMethod::Fork"), "{err}");
        }
    }

    /// An address inside libc.so, from /proc/self/maps (an executable mapping of it).
    #[cfg(target_os = "linux")]
    fn libc_address() -> Option<usize> {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        let line = maps
            .lines()
            .find(|l| l.contains("r-xp") && l.contains("/libc.so"))?;
        let start = line.split('-').next()?;
        usize::from_str_radix(start, 16).ok().map(|a| a + 0x100)
    }

    #[test]
    fn an_offset_leads_back_to_the_same_function() {
        let address = sample as fn(u32) -> u32 as usize;
        assert_eq!(super::address(super::of(address)), address);
    }
}
