//! A global allocator for programs that move large objects: the system allocator, which asks
//! Linux to back allocations of [`LARGE`] bytes or more with transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`, honoured when `/sys/kernel/mm/transparent_hugepage/enabled` is
//! `always` or `madvise`, the common default).
//!
//! Why: a fresh 100 MB buffer is faulted in 25,000 times at 4 KiB a page, which on a VM costs
//! more than copying it (48–73 ms against 10 ms for the same buffer in 2 MiB pages, measured
//! on this project's 2-vCPU VM); an object fetched from another node passes through three such
//! buffers (encoded, received, decoded). Small allocations are untouched, so the learner and
//! the env runners allocate exactly as before.
//!
//! The `rllib` binary installs it; a driver program of one's own does the same with
//! `#[global_allocator] static ALLOC: ray::HugePageAlloc = ray::HugePageAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of at least this many bytes are advised.
pub const LARGE: usize = 4 << 20;
/// The huge page size the advice is aligned to (x86-64 and most arm64 kernels).
const HUGE_PAGE: usize = 2 << 20;

/// The system allocator with huge-page advice on large allocations (see the module's doc).
#[derive(Debug, Default, Clone, Copy)]
pub struct HugePageAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and returns
// what `System` returned; `advise` only adds a hint about how the kernel backs memory the
// allocation owns, which never moves or changes its contents.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc`, and `new_size` is the caller's to get right, as for `System`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        p
    }
}

/// Asks for huge pages on the whole 2 MiB pages inside `[p, p + len)` when `len` is large.
fn advise(p: *mut u8, len: usize) {
    if p.is_null() || len < LARGE {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let start = (p as usize).next_multiple_of(HUGE_PAGE);
        let end = (p as usize).saturating_add(len) / HUGE_PAGE * HUGE_PAGE;
        if end > start {
            // SAFETY: `[start, end)` lies inside the allocation just made, which this process
            // owns; MADV_HUGEPAGE changes only how the kernel backs those pages, never their
            // contents or addresses. A failure (THP compiled out) leaves the default, so the
            // result is ignored.
            #[allow(unsafe_code)]
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large and small allocations, zeroed or not, grown and shrunk, hold their contents.
    #[test]
    fn allocations_of_every_size_keep_their_contents() {
        let a = HugePageAlloc;
        for size in [1usize, 4096, LARGE - 1, LARGE, 3 * LARGE + 12_345] {
            let layout = Layout::from_size_align(size, 64).expect("layout");
            // SAFETY: non-zero sizes; every pointer is used within its layout and freed once
            // with the layout it was made with.
            #[allow(unsafe_code)]
            unsafe {
                let z = a.alloc_zeroed(layout);
                assert!(!z.is_null());
                assert!(std::slice::from_raw_parts(z, size).iter().all(|b| *b == 0));
                let p = a.alloc(layout);
                assert!(!p.is_null());
                for i in (0..size).step_by(4093) {
                    *p.add(i) = (i % 251) as u8;
                }
                let grown = size * 2 + 7;
                let q = a.realloc(p, layout, grown);
                assert!(!q.is_null());
                for i in (0..size).step_by(4093) {
                    assert_eq!(*q.add(i), (i % 251) as u8);
                }
                a.dealloc(q, Layout::from_size_align(grown, 64).expect("layout"));
                a.dealloc(z, layout);
            }
        }
    }
}
