//! The thread that runs gopxe's tasks and async-io's helper thread.
//!
//! Layer: driver (process set-up). Every task runs on one `LocalExecutor`
//! driven by `smol::block_on`, which polls the I/O reactor itself whenever
//! the executor runs out of work. async-io also starts a helper thread
//! ("async-io") that polls the reactor when no such thread does. On a busy
//! core the helper would take the reactor while the executor thread is
//! running tasks and keep it; from then on every batch of ready sockets
//! costs a wake-up across threads (a futex call and a context switch), which
//! cost a third of the HTTP request rate on one core (about 71,000 against
//! 110,000 kickstarts/s in `benches/http.sh`).
//!
//! [`yield_helper`] gives the helper the lowest scheduling priority
//! (nice 19): it still runs whenever its core is otherwise idle, which is
//! all it is for, but no longer pre-empts the executor thread, so the
//! executor keeps driving the reactor while it has work. It is found by
//! its thread name in `/proc/self/task`; anything unexpected there is
//! logged at debug level and skipped, since only speed depends on it.

use rustix::process::{Pid, setpriority_process};

/// The name async-io gives its helper thread.
const HELPER: &str = "async-io";

/// Lowers the priority of async-io's helper thread. The helper names
/// itself once it runs, so a helper just started may not be found at once:
/// this looks again for up to 50 ms. Returns how many threads were changed.
pub fn yield_helper() -> usize {
    for _ in 0..50 {
        let changed = lower_named(HELPER);
        if changed > 0 {
            return changed;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    log::debug!("async-io's helper thread not found: it keeps its priority");
    0
}

/// This process's threads called `name`, as `/proc/self/task` entries.
fn tasks_named(name: &str) -> Vec<std::fs::DirEntry> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        log::debug!("no /proc/self/task: async-io's helper keeps its priority");
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            comm.trim_end() == name
        })
        .collect()
}

fn lower_named(name: &str) -> usize {
    let mut changed = 0;
    for task in tasks_named(name) {
        let tid = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok());
        let Some(pid) = tid.and_then(Pid::from_raw) else {
            continue;
        };
        match setpriority_process(Some(pid), 19) {
            Ok(()) => changed += 1,
            Err(e) => log::debug!("cannot lower the priority of async-io's helper: {e}"),
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_is_found_and_lowered() {
        // Registering a source starts async-io's reactor and its helper.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let _source = async_io::Async::new(socket).unwrap();
        assert_eq!(yield_helper(), 1);
        let tid = tasks_named(HELPER).pop().unwrap();
        let stat = std::fs::read_to_string(tid.path().join("stat")).unwrap();
        // Field 19 of /proc/<pid>/task/<tid>/stat is the nice value.
        let after_comm = stat.rsplit_once(") ").unwrap().1;
        let nice: i32 = after_comm.split(' ').nth(16).unwrap().parse().unwrap();
        assert_eq!(nice, 19, "{stat}");
    }
}
