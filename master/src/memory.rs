//! Hands the memory the master freed back to the kernel. glibc's malloc keeps freed chunks in
//! its arenas and returns only the free top of the main heap by itself; after a burst (a hundred
//! thousand tasks finishing at once, with their updates queued for the frameworks) the master's
//! RSS would stay at the burst's peak for good. A thread checks every two seconds how much is
//! free inside malloc and, past a threshold, asks glibc to release it (`malloc_trim`, which
//! returns free pages from every arena, not only the top of the heap).

use std::time::Duration;

/// How often the free memory inside malloc is looked at.
const PERIOD: Duration = Duration::from_secs(2);

/// Trimmed when more than this is free inside malloc.
const FREE_ABOVE: usize = 32 << 20;

/// Starts the trimming thread (once per process; no-op where malloc is not glibc's).
pub fn spawn_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static START: std::sync::Once = std::sync::Once::new();
        START.call_once(|| {
            let started = std::thread::Builder::new()
                .name("master-trim".to_string())
                .spawn(|| loop {
                    std::thread::sleep(PERIOD);
                    trim_if_worth_it();
                });
            if let Err(err) = started {
                tracing::warn!(cause = %err, "failed to start the memory trimming thread");
            }
        });
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_if_worth_it() {
    // SAFETY: mallinfo2 only reads malloc's own statistics.
    let free = unsafe { libc::mallinfo2() }.fordblks;
    if free > FREE_ABOVE {
        // SAFETY: malloc_trim only releases pages of free chunks; nothing live is touched.
        unsafe { libc::malloc_trim(0) };
        tracing::debug!(free_mb = free >> 20, "returned free memory to the kernel");
    }
}
