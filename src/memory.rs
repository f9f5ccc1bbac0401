//! How the daemon's heap gives memory back. Every freed block is wiped (the global
//! allocator in `main.rs`); this module makes sure that what is freed also leaves the
//! process: large blocks (a `/metrics` text of thousands of certificates, megabytes) are
//! mapped on their own and unmapped when freed, and the free pages a burst of renewals
//! leaves in the small-block heap are returned once the burst is over. Without it the
//! resident size of a daemon that renewed or was scraped once keeps its high-water mark.
//! Only glibc is tuned; other C libraries (musl in the container image) keep their own
//! policy.
#![allow(unsafe_code)]

/// Blocks at least this large get their own mapping. glibc raises its threshold (128 KiB
/// at start) to the size of each mapped block freed, after which blocks of that size come
/// from the heap and stay resident when freed; setting it fixes it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes the allocator's policy for a long-running process; call once at start.
pub fn configure_for_daemon() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tunables; it is called before the
    // daemon starts its threads' work, and glibc serialises it with allocations anyway.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Returns the free pages of every allocator arena to the kernel (they stay mapped and
/// read as zeros). Costs a walk over the free lists: call after bursts, not per event.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory that is free; it takes the arenas' locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
