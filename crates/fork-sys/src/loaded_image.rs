//! Which loaded image (the executable, or a shared library) holds a code address.

use std::ffi::CStr;
use std::path::PathBuf;

/// The image (the executable, or one shared library) that holds some code, as the dynamic
/// loader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The address the image was loaded at (`dli_fbase`).
    pub base: usize,
    /// Its file, as the loader names it (`dli_fname`); may be empty for the executable.
    pub path: PathBuf,
}

/// The loaded image that holds the code at `address` (a function pointer cast to `usize`),
/// by `dladdr`; `None` where the loader does not know the address (or the platform has no
/// `dladdr`).
///
/// Two functions can be named across processes by their distance only if they lie in the same
/// image: the distance between two images changes with every process (ASLR).
///
/// # References
///  - [Linux dladdr](https://man7.org/linux/man-pages/man3/dladdr.3.html)
///  - [macOS dladdr](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man3/dladdr.3.html)
pub fn loaded_image(address: usize) -> Option<LoadedImage> {
    #[cfg(any(target_os = "linux", target_vendor = "apple", target_os = "freebsd"))]
    {
        let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
        // SAFETY: `dladdr` only reads the loader's tables for `address` (any value is allowed)
        // and fills `info`, which is valid writable memory of the right type.
        let found = unsafe { libc::dladdr(address as *const libc::c_void, info.as_mut_ptr()) };
        if found == 0 {
            return None;
        }
        // SAFETY: `dladdr` returned non-zero, so it filled `info`.
        let info = unsafe { info.assume_init() };
        let path = if info.dli_fname.is_null() {
            PathBuf::new()
        } else {
            // SAFETY: a non-null `dli_fname` is a NUL-terminated string owned by the loader,
            // valid while the image stays loaded (it is copied at once).
            let name = unsafe { CStr::from_ptr(info.dli_fname) };
            PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()))
        };
        Some(LoadedImage {
            base: info.dli_fbase as usize,
            path,
        })
    }
    #[cfg(not(any(target_os = "linux", target_vendor = "apple", target_os = "freebsd")))]
    {
        let _ = address;
        None
    }
}

#[cfg(any(target_os = "linux", target_vendor = "apple", target_os = "freebsd"))]
use std::os::unix::ffi::OsStrExt;
