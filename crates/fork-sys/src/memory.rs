//! Advice on memory this process owns.

use std::io;
use std::mem::MaybeUninit;

/// Faults in the pages of `region` ahead of their first write, in one call
/// (`madvise(MADV_POPULATE_WRITE)`, Linux 5.14+), instead of one page fault per 4 KiB page as
/// they are written. A `read` into memory populated first copies without faulting, so it holds
/// the pipe's lock for less time, and the other end can go on writing meanwhile. It changes no
/// byte: pages already present are left as they are, new ones read as zero.
///
/// Only the pages wholly inside `region` are populated. Best effort, for speed only: off Linux
/// a no-op returning `Ok(())`; an older kernel answers `EINVAL`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/madvise.2.html)
pub fn populate_for_writing(region: &mut [MaybeUninit<u8>]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let page = crate::stack_overflow::page_size();
        let start = region.as_mut_ptr() as usize;
        let end = start.saturating_add(region.len()) / page * page;
        let Some(first) = start.checked_next_multiple_of(page) else {
            return Ok(());
        };
        if end <= first {
            return Ok(());
        }
        // SAFETY: [first, end) lies inside `region`, memory this caller holds exclusively
        // (`&mut`), and is page-aligned as madvise requires. MADV_POPULATE_WRITE only faults
        // the pages in as a write would, without writing: no byte, permission or mapping
        // changes, and nothing outside the range is touched.
        let result = unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                end - first,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = region;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populating_keeps_the_bytes_and_small_regions_are_left_alone() {
        let pattern = |i: usize| (i % 253) as u8;
        let mut buffer: Vec<u8> = Vec::with_capacity(12 << 20);
        buffer.extend((0..3 << 20).map(pattern));
        // The spare capacity after 3 MiB of bytes, which must stay as they are.
        let populated = populate_for_writing(buffer.spare_capacity_mut());
        if cfg!(target_os = "linux") {
            // EINVAL only on kernels before 5.14.
            assert!(populated.is_ok() || populated.unwrap_err().raw_os_error() == Some(22));
        }
        assert!(buffer.iter().enumerate().all(|(i, &b)| b == pattern(i)));
        buffer.extend((3 << 20..12 << 20).map(pattern));
        assert!(buffer.iter().enumerate().all(|(i, &b)| b == pattern(i)));
        let mut small = [MaybeUninit::<u8>::uninit(); 100];
        populate_for_writing(&mut small).unwrap();
        populate_for_writing(&mut []).unwrap();
    }
}
