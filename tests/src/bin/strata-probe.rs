//! `strata-probe`: what the confinement tests run inside tasks (command tasks run it from the
//! host; image tasks from an image layer holding it and the libraries it loads). Each probe
//! prints one line, `NAME ok [DETAIL]` or `NAME err ERRNO` (the errno's name, e.g. `EPERM`), so
//! that a test reads the results from the task's stdout; the exit code is 0 unless the usage is
//! wrong.
//!
//! ```text
//! strata-probe PROBE...
//!   ptrace-traceme          ptrace(PTRACE_TRACEME)
//!   ptrace-attach PID       ptrace(PTRACE_ATTACH, PID) (detached again on success)
//!   finit-module            finit_module(<this binary>, "", 0)
//!   init-module             init_module(<64 zero bytes>, "")
//!   unshare                 unshare(CLONE_NEWNS)
//!   read PATH               reads PATH whole ("ok BYTES")
//!   list PATH               lists the directory PATH ("ok N" entries)
//!   write PATH              creates (truncates) PATH and writes a line
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return usage("no probe given");
    }
    let mut words = args.iter().map(String::as_str);
    while let Some(word) = words.next() {
        let result = match word {
            "ptrace-traceme" => {
                // SAFETY: plain ptrace(2) on ourselves.
                let rc = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
                check(rc as i64, String::new())
            }
            "ptrace-attach" => {
                let Some(pid) = words.next().and_then(|p| p.parse::<libc::pid_t>().ok()) else {
                    return usage("ptrace-attach PID");
                };
                // SAFETY: plain ptrace(2); a successful attach is undone at once.
                let rc = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
                if rc == 0 {
                    // SAFETY: as above.
                    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
                }
                check(rc as i64, String::new())
            }
            "finit-module" => match std::fs::File::open("/proc/self/exe") {
                Ok(file) => {
                    use std::os::fd::AsRawFd;
                    // SAFETY: finit_module(2) with a descriptor we hold and an empty C string;
                    // this binary is no module, so even an unconfined root gets ENOEXEC.
                    let rc = unsafe {
                        libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), c"".as_ptr(), 0)
                    };
                    check(rc, String::new())
                }
                Err(err) => Err(err),
            },
            "init-module" => {
                let image = [0u8; 64];
                // SAFETY: init_module(2) with a live buffer and an empty C string.
                let rc = unsafe {
                    libc::syscall(
                        libc::SYS_init_module,
                        image.as_ptr(),
                        image.len(),
                        c"".as_ptr(),
                    )
                };
                check(rc, String::new())
            }
            "unshare" => {
                // SAFETY: plain unshare(2).
                let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
                check(i64::from(rc), String::new())
            }
            "read" | "list" | "write" => {
                let Some(path) = words.next() else {
                    return usage(&format!("{word} PATH"));
                };
                let result = match word {
                    "read" => std::fs::read(path).map(|d| d.len().to_string()),
                    "list" => std::fs::read_dir(path).map(|d| d.count().to_string()),
                    _ => std::fs::write(path, "written by strata-probe\n").map(|()| String::new()),
                };
                println!("{word} {path} {}", outcome(result));
                continue;
            }
            other => return usage(&format!("unknown probe {other:?}")),
        };
        println!("{word} {}", outcome(result));
    }
    ExitCode::SUCCESS
}

fn check(rc: i64, detail: String) -> std::io::Result<String> {
    if rc == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(detail)
    }
}

fn outcome(result: std::io::Result<String>) -> String {
    match result {
        Ok(detail) if detail.is_empty() => "ok".to_string(),
        Ok(detail) => format!("ok {detail}"),
        Err(err) => format!("err {}", errno_name(err.raw_os_error().unwrap_or(0))),
    }
}

fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::ENOSYS => "ENOSYS",
        libc::ENOEXEC => "ENOEXEC",
        libc::EINVAL => "EINVAL",
        libc::EROFS => "EROFS",
        libc::ESRCH => "ESRCH",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        _ => return errno.to_string(),
    };
    name.to_string()
}

fn usage(message: &str) -> ExitCode {
    eprintln!("strata-probe: {message}\nusage: strata-probe PROBE... (see the source)");
    ExitCode::from(2)
}
