//! What this process costs: CPU time, resident and peak memory, open-file limits.
//!
//! Used by the server's `system_status` heartbeat and `/metrics`, and by the harness to watch
//! itself (CPU use per delivered event, memory per client, preflight checks).

use std::time::Duration;

/// CPU time (user + system) this process has used so far.
pub fn cpu_time() -> Duration {
    let usage = rusage();
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// CPU time (user + system) the calling thread has used so far.
pub fn thread_cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value, and getrusage fills it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// Peak resident memory of this process, in bytes.
pub fn peak_rss_bytes() -> u64 {
    // Linux reports ru_maxrss in KiB.
    u64::try_from(rusage().ru_maxrss).unwrap_or(0) * 1024
}

/// Current resident memory of this process, in bytes (0 where /proc is not available).
pub fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    pages * page_size()
}

/// Physical memory of the machine, in bytes.
pub fn total_memory_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    u64::try_from(pages).unwrap_or(0) * page_size()
}

/// The receive buffer a new TCP socket starts with (the middle value of `net.ipv4.tcp_rmem`;
/// Linux's default, 128 KiB, where it cannot be read).
pub fn tcp_receive_buffer_bytes() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem")
        .ok()
        .and_then(|text| text.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(131_072)
}

/// Number of CPUs this process may run on.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// The (soft, hard) limit on open files.
pub fn open_files_limit() -> (u64, u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return (0, 0);
    }
    (limit.rlim_cur, limit.rlim_max)
}

/// Raises the soft open-file limit to the hard limit; returns the new soft limit.
pub fn raise_open_files_limit() -> u64 {
    let (soft, hard) = open_files_limit();
    if soft >= hard {
        return soft;
    }
    let limit = libc::rlimit { rlim_cur: hard, rlim_max: hard };
    // SAFETY: `limit` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 { hard } else { soft }
}

fn rusage() -> libc::rusage {
    // SAFETY: an all-zero rusage is a valid value, and getrusage fills it.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::new(tv.tv_sec.max(0) as u64, (tv.tv_usec.max(0) as u32) * 1000)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// CPU use between two samples, as a percentage of all CPUs (0–100).
#[derive(Debug, Clone, Copy)]
pub struct CpuSampler {
    cpu: Duration,
    at: std::time::Instant,
}

impl CpuSampler {
    pub fn start() -> CpuSampler {
        CpuSampler { cpu: cpu_time(), at: std::time::Instant::now() }
    }

    /// Percentage of all CPUs used since the last call (or start), then restarts the window.
    pub fn sample_percent(&mut self) -> f64 {
        let now = CpuSampler::start();
        let wall = now.at.duration_since(self.at).as_secs_f64();
        let used = now.cpu.saturating_sub(self.cpu).as_secs_f64();
        *self = now;
        if wall <= 0.0 { 0.0 } else { (used / wall / cpu_count() as f64 * 100.0).clamp(0.0, 100.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plausible_figures() {
        assert!(rss_bytes() > 1024 * 1024);
        assert!(peak_rss_bytes() >= rss_bytes() / 2);
        assert!(total_memory_bytes() > rss_bytes());
        let (soft, hard) = open_files_limit();
        assert!(soft > 0 && soft <= hard);
        let mut sampler = CpuSampler::start();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(20) {}
        let percent = sampler.sample_percent();
        assert!((0.0..=100.0).contains(&percent));
    }
}
