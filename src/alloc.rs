//! A global allocator for programs that move large objects. Allocations of [`LARGE`] bytes or
//! more (page-aligned at most) are mapped from the kernel directly, backed by transparent huge
//! pages (`madvise(MADV_HUGEPAGE)`, honoured when `/sys/kernel/mm/transparent_hugepage/enabled`
//! is `always` or `madvise`, the common default), and kept for reuse when freed: up to
//! [`KEEP_BLOCKS`] blocks and [`KEEP_BYTES`] bytes, which stay in the process's memory until
//! it ends or takes them again. The next large allocation takes a kept block, resized in place of a copy
//! (`mremap`). A zeroed large allocation is a fresh mapping (the kernel zeroes what is
//! touched) and is unmapped when freed, not kept. Smaller allocations go to the system
//! allocator as before, so the learner and the env runners allocate exactly as they did.
//!
//! Why: an object fetched from another node passes through three large buffers (encoded,
//! received, decoded). A fresh 100 MB buffer is faulted in 25,000 times at 4 KiB a page, which
//! on a VM costs more than copying it (48–73 ms against 10 ms for the same buffer in 2 MiB
//! pages, measured on this project's 2-vCPU VM), and even in huge pages the kernel zeroes
//! every fresh page first: in `perf` of 100 MB transfers between two node processes, zeroing
//! pages took as long as all the copies. A kept block is neither faulted nor zeroed again.
//!
//! The `rllib` binary installs it; a driver program of one's own does the same with
//! `#[global_allocator] static ALLOC: ray::HugePageAlloc = ray::HugePageAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of at least this many bytes are mapped, advised and kept (see the module doc).
pub const LARGE: usize = 4 << 20;
/// Freed large blocks kept for reuse, at most.
pub const KEEP_BLOCKS: usize = 8;
/// Bytes of freed large blocks kept for reuse, at most.
pub const KEEP_BYTES: usize = 512 << 20;
/// The huge page size the advice is aligned to (x86-64 and most arm64 kernels).
const HUGE_PAGE: usize = 2 << 20;
/// The base page size mappings are rounded to.
#[cfg(target_os = "linux")]
const PAGE: usize = 4096;

/// The system allocator with huge-page advice on large allocations (see the module's doc).
#[derive(Debug, Default, Clone, Copy)]
pub struct HugePageAlloc;

/// Whether an allocation of this layout takes the mapped path. A pure function of the layout,
/// so `dealloc` and `realloc` see the same answer as the `alloc` that made the block.
#[cfg(target_os = "linux")]
fn mapped(size: usize, align: usize) -> bool {
    size >= LARGE && align <= PAGE
}

#[cfg(not(target_os = "linux"))]
fn mapped(_: usize, _: usize) -> bool {
    false
}

// SAFETY: small (or over-aligned) allocations forward to `System` with the caller's arguments
// unchanged. Large ones are private anonymous mappings of exactly `size` rounded up to the
// page, which this allocator alone maps, remaps and unmaps; a block is either in use (owned by
// its caller) or kept (in `KEPT`, owned by this allocator), never both. `advise` only changes
// how the kernel backs memory the allocator owns.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            return map::take(layout.size());
        }
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            return map::zeroed(layout.size());
        }
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout.size(), layout.align()) {
            return map::give_back(ptr, layout.size());
        }
        // SAFETY: `ptr` came from `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (was, will) = (
            mapped(layout.size(), layout.align()),
            mapped(new_size, layout.align()),
        );
        if !was && !will {
            // SAFETY: as `dealloc`, and `new_size` is the caller's to get right, as for
            // `System`.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            advise(p, new_size);
            return p;
        }
        if was && will {
            return map::resize(ptr, layout.size(), new_size);
        }
        // Across the threshold: a new block, the contents copied, the old one freed.
        // SAFETY: `new_size` is non-zero (the caller's contract) with the old alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as `alloc`.
        let p = unsafe { self.alloc(new_layout) };
        if !p.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        p
    }
}

/// Large blocks: mapped, resized and kept for reuse.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod map {
    use super::{KEEP_BLOCKS, KEEP_BYTES, PAGE, advise};
    use std::sync::Mutex;

    /// Kept blocks as `(address, mapped length)`; `(0, 0)` is an empty slot. A fixed array
    /// behind a `Mutex` that never allocates, so the allocator never calls itself.
    static KEPT: Mutex<[(usize, usize); KEEP_BLOCKS]> = Mutex::new([(0, 0); KEEP_BLOCKS]);

    /// Zeroed blocks in use that were mapped fresh (0: an empty slot). Such a block may have
    /// been read where it was never written, which maps the kernel's shared zero page there;
    /// reused, each such page would fault on its first write, 4 KiB at a time (230 ms for
    /// 100 MB, measured). So these are unmapped when freed, never kept.
    static LAZY: Mutex<[usize; LAZY_SLOTS]> = Mutex::new([0; LAZY_SLOTS]);
    const LAZY_SLOTS: usize = 64;

    fn len_of(size: usize) -> usize {
        size.next_multiple_of(PAGE)
    }

    fn kept() -> std::sync::MutexGuard<'static, [(usize, usize); KEEP_BLOCKS]> {
        // Nothing panics while holding it; a poisoned lock still holds valid slots.
        KEPT.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A zeroed block of `size` bytes: a fresh mapping, whose pages the kernel zeroes only
    /// where they are touched (remembered in `LAZY`); or, when `LAZY` is full, a block as
    /// `take` gives it, zeroed here.
    pub(super) fn zeroed(size: usize) -> *mut u8 {
        let mut lazy = LAZY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = lazy.iter_mut().find(|a| **a == 0) {
            let p = fresh(size);
            *slot = p as usize;
            return p;
        }
        drop(lazy);
        let p = take(size);
        if !p.is_null() {
            // SAFETY: `p` is a new block of at least `size` bytes, owned by the caller.
            unsafe { std::ptr::write_bytes(p, 0, size) };
        }
        p
    }

    /// A fresh mapping of `size` bytes (zero-filled by the kernel), or null.
    pub(super) fn fresh(size: usize) -> *mut u8 {
        let len = len_of(size);
        // SAFETY: a new private anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        advise(p.cast(), len);
        p.cast()
    }

    /// A block of `size` bytes: a kept one resized to fit, or a fresh one. A kept block is
    /// taken when it is at most twice as long (the smallest such), or shorter (the longest
    /// such, grown); a much longer one stays kept for a larger request.
    pub(super) fn take(size: usize) -> *mut u8 {
        let len = len_of(size);
        let block = {
            let mut k = kept();
            let fits = k
                .iter()
                .enumerate()
                .filter(|(_, b)| b.1 >= len && b.1 / 2 <= len)
                .min_by_key(|(_, b)| b.1)
                .map(|(i, _)| i);
            let grow = || {
                k.iter()
                    .enumerate()
                    .filter(|(_, b)| b.1 > 0 && b.1 < len)
                    .max_by_key(|(_, b)| b.1)
                    .map(|(i, _)| i)
            };
            match fits.or_else(grow) {
                Some(i) => std::mem::take(&mut k[i]),
                None => return fresh(size),
            }
        };
        remap(block.0 as *mut u8, block.1, len).unwrap_or_else(|| {
            // SAFETY: the kept block is ours alone and was not remapped.
            unsafe { libc::munmap(block.0 as *mut libc::c_void, block.1) };
            fresh(size)
        })
    }

    /// `ptr`'s mapping of `old_len` bytes moved or resized to `new_len` (contents kept up to
    /// the shorter), or `None` with the old mapping untouched.
    fn remap(ptr: *mut u8, old_len: usize, new_len: usize) -> Option<*mut u8> {
        if old_len == new_len {
            return Some(ptr);
        }
        // SAFETY: `ptr` is the start of a mapping of `old_len` bytes that this allocator
        // owns; MREMAP_MAYMOVE may move it, and on failure leaves it as it was.
        let p = unsafe { libc::mremap(ptr.cast(), old_len, new_len, libc::MREMAP_MAYMOVE) };
        if p == libc::MAP_FAILED {
            return None;
        }
        advise(p.cast(), new_len);
        Some(p.cast())
    }

    /// `realloc` of a mapped block of `old_size` bytes to `new_size`; null (the old block
    /// intact) when the kernel refuses.
    pub(super) fn resize(ptr: *mut u8, old_size: usize, new_size: usize) -> *mut u8 {
        let p = remap(ptr, len_of(old_size), len_of(new_size)).unwrap_or(std::ptr::null_mut());
        if !p.is_null() && p != ptr {
            let mut lazy = LAZY
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(slot) = lazy.iter_mut().find(|a| **a == ptr as usize) {
                *slot = p as usize;
            }
        }
        p
    }

    /// Keeps a freed block of `size` bytes for reuse when there is room, else unmaps it.
    pub(super) fn give_back(ptr: *mut u8, size: usize) {
        let len = len_of(size);
        let was_lazy = {
            let mut lazy = LAZY
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            lazy.iter_mut()
                .find(|a| **a == ptr as usize)
                .map(|slot| *slot = 0)
                .is_some()
        };
        if !was_lazy {
            let mut k = kept();
            let total: usize = k.iter().map(|b| b.1).sum();
            if total + len <= KEEP_BYTES
                && let Some(slot) = k.iter_mut().find(|b| b.1 == 0)
            {
                *slot = (ptr as usize, len);
                return;
            }
        }
        // SAFETY: the caller holds the block no more (`dealloc`'s contract), and this
        // allocator mapped it with `len` bytes.
        unsafe { libc::munmap(ptr.cast(), len) };
    }

    /// Unmaps every kept block (for tests, to start from none).
    #[cfg(test)]
    pub(super) fn clear() {
        for b in kept().iter_mut().filter(|b| b.1 > 0) {
            // SAFETY: a kept block is the allocator's alone.
            unsafe { libc::munmap(b.0 as *mut libc::c_void, b.1) };
            *b = (0, 0);
        }
    }

    /// Kept blocks' count and bytes (for tests).
    #[cfg(test)]
    pub(super) fn kept_now() -> (usize, usize) {
        let k = kept();
        (
            k.iter().filter(|b| b.1 > 0).count(),
            k.iter().map(|b| b.1).sum(),
        )
    }
}

#[cfg(not(target_os = "linux"))]
mod map {
    pub(super) fn zeroed(_: usize) -> *mut u8 {
        unreachable!("only Linux maps large blocks")
    }
    pub(super) fn take(_: usize) -> *mut u8 {
        unreachable!("only Linux maps large blocks")
    }
    pub(super) fn resize(_: *mut u8, _: usize, _: usize) -> *mut u8 {
        unreachable!("only Linux maps large blocks")
    }
    pub(super) fn give_back(_: *mut u8, _: usize) {
        unreachable!("only Linux maps large blocks")
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
            // SAFETY: `[start, end)` lies inside an allocation this process owns;
            // MADV_HUGEPAGE changes only how the kernel backs those pages, never their
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

    /// The tests share the kept blocks; one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Large and small allocations, zeroed or not, grown and shrunk, hold their contents.
    #[test]
    fn allocations_of_every_size_keep_their_contents() {
        let _one = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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

    /// A freed large block is kept and taken again (resized within bounds), zeroed requests get
    /// zeroed memory even when blocks are kept, and no more than the bounds are kept.
    #[cfg(target_os = "linux")]
    #[test]
    fn freed_large_blocks_are_reused_within_bounds() {
        let _one = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let a = HugePageAlloc;
        let mib = |n: usize| Layout::from_size_align(n << 20, 8).expect("layout");
        // SAFETY: every pointer is used within its layout and freed once with it.
        #[allow(unsafe_code)]
        unsafe {
            map::clear();
            let blocks0 = 0;
            let p = a.alloc(mib(10));
            assert!(!p.is_null());
            std::ptr::write_bytes(p, 7, 10 << 20);
            a.dealloc(p, mib(10));
            assert_eq!(map::kept_now().0, blocks0 + 1, "kept");
            // A little shorter: the same block, shrunk in place.
            let q = a.alloc(mib(9));
            assert_eq!(q, p, "the kept block is taken");
            assert_eq!(map::kept_now().0, blocks0);
            // Zeroed memory is zero, whatever is kept; freed, it is not kept (its pages may be
            // the kernel's shared zero page, slow to write to).
            a.dealloc(q, mib(9));
            let z = a.alloc_zeroed(mib(9));
            assert_ne!(z, q);
            assert!(
                std::slice::from_raw_parts(z, 9 << 20)
                    .iter()
                    .all(|b| *b == 0)
            );
            let kept_before = map::kept_now().0;
            let z2 = a.alloc_zeroed(mib(5));
            a.dealloc(z2, mib(5));
            assert_eq!(map::kept_now().0, kept_before, "a zeroed block is unmapped");
            // Four times shorter: the 9 MiB block stays kept for a larger request.
            let small = a.alloc(Layout::from_size_align(LARGE, 8).expect("layout"));
            assert_ne!(small, q);
            let big = a.alloc(mib(9));
            assert_eq!(big, q, "kept for this one");
            for ptr in [small, big] {
                std::ptr::write_bytes(ptr, 1, LARGE);
            }
            a.dealloc(small, Layout::from_size_align(LARGE, 8).expect("layout"));
            a.dealloc(big, mib(9));
            a.dealloc(z, mib(9));
            // Never more than the bounds, however much is freed.
            let many: Vec<*mut u8> = (0..KEEP_BLOCKS + 3).map(|_| a.alloc(mib(300))).collect();
            for ptr in many {
                assert!(!ptr.is_null());
                a.dealloc(ptr, mib(300));
            }
            let (blocks, bytes) = map::kept_now();
            assert!(
                blocks <= KEEP_BLOCKS && bytes <= KEEP_BYTES,
                "{blocks} blocks, {bytes} B"
            );
        }
    }
}
