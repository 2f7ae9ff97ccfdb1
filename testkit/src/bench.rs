//! What the benchmarks share: their knobs from the environment, how they report latencies, and
//! a Pi's budget for the agent they run (`PiBudget`).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// The number in the environment variable `name`, or `default` when unset or not a number.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0.0 to 1.0, nearest rank) of `sorted`; zero when it is empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `d` in milliseconds with two decimals, e.g. `4.88 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A Raspberry Pi's budget for a benchmark's agent: a CPU quota and a memory cap, set with cgroup
/// v1 directly (PID 1 is not systemd on these machines, so `systemd-run` is not available):
/// `/sys/fs/cgroup/cpu/<name>` with `cpu.cfs_quota_us` over the default 100 ms period and
/// `/sys/fs/cgroup/memory/<name>` with `memory.limit_in_bytes`. Both groups are removed on drop.
/// Asked for with `BENCH_PI_BUDGET=<percent of one core>,<MiB>`, e.g. `10,32`.
#[derive(Debug)]
pub struct PiBudget {
    pub cpu_percent: u32,
    pub memory_mib: u64,
    cpu: PathBuf,
    memory: PathBuf,
}

const CGROUP_CPU: &str = "/sys/fs/cgroup/cpu";
const CGROUP_MEMORY: &str = "/sys/fs/cgroup/memory";
const PERIOD_US: u64 = 100_000;

impl PiBudget {
    /// The budget `BENCH_PI_BUDGET` asks for, made; `None` when it is unset or empty. Panics with the
    /// reason when it is malformed or the cgroups cannot be made (not root, no cgroup v1).
    pub fn from_env() -> Option<Self> {
        let value = std::env::var("BENCH_PI_BUDGET")
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        let (cpu, memory) = value
            .split_once(',')
            .and_then(|(cpu, mem)| Some((cpu.trim().parse().ok()?, mem.trim().parse().ok()?)))
            .unwrap_or_else(|| {
                panic!("BENCH_PI_BUDGET={value:?}: expected <percent of a core>,<MiB>, e.g. 10,32")
            });
        Some(
            Self::create(cpu, memory).unwrap_or_else(|error| {
                panic!("BENCH_PI_BUDGET: cannot make the cgroups: {error}")
            }),
        )
    }

    /// Makes the two cgroups: `cpu_percent` % of one core, `memory_mib` MiB (page cache
    /// included, as the kernel counts it; no swap here).
    pub fn create(cpu_percent: u32, memory_mib: u64) -> std::io::Result<Self> {
        let name = format!("kitchen-bench-{}", std::process::id());
        let budget = Self {
            cpu_percent,
            memory_mib,
            cpu: Path::new(CGROUP_CPU).join(&name),
            memory: Path::new(CGROUP_MEMORY).join(&name),
        };
        std::fs::create_dir_all(&budget.cpu)?;
        std::fs::create_dir_all(&budget.memory)?;
        std::fs::write(budget.cpu.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
        let quota = PERIOD_US * u64::from(cpu_percent) / 100;
        std::fs::write(budget.cpu.join("cpu.cfs_quota_us"), quota.to_string())?;
        std::fs::write(
            budget.memory.join("memory.limit_in_bytes"),
            (memory_mib << 20).to_string(),
        )?;
        Ok(budget)
    }

    /// `program` started inside both groups from its first instruction: a shell writes its own
    /// pid into them and then becomes `program` (`exec` keeps the pid).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"echo $$ > "$1/cgroup.procs" && echo $$ > "$2/cgroup.procs" && shift 2 && exec "$0" "$@""#)
            .arg(program)
            .arg(&self.cpu)
            .arg(&self.memory);
        command
    }

    /// What the budget did to the process, e.g. `10 % of a core, 32 MiB: throttled in 12 of
    /// 1233 periods (0.41 s), memory peak 29.8 MiB (page cache included), limit reached 0
    /// times, OOM kills 0`.
    pub fn report(&self) -> String {
        let cpu = read_keyed(&self.cpu.join("cpu.stat"));
        let oom = read_keyed(&self.memory.join("memory.oom_control"));
        let number = |file: &str| {
            std::fs::read_to_string(self.memory.join(file))
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        format!(
            "{} % of a core, {} MiB: throttled in {} of {} periods ({:.2} s), memory peak {:.1} \
             MiB (page cache included), limit reached {} times, OOM kills {}",
            self.cpu_percent,
            self.memory_mib,
            cpu("nr_throttled"),
            cpu("nr_periods"),
            cpu("throttled_time") as f64 / 1e9,
            number("memory.max_usage_in_bytes") as f64 / 1048576.0,
            number("memory.failcnt"),
            oom("oom_kill"),
        )
    }
}

/// A cgroup file of `key value` lines, as a lookup (0 for a missing key).
fn read_keyed(path: &Path) -> impl Fn(&str) -> u64 + use<> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    move |key: &str| {
        text.lines()
            .filter_map(|line| line.split_once(' '))
            .find(|(name, _)| *name == key)
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for PiBudget {
    /// Removes the groups; a process still in them is moved back to the root group first.
    fn drop(&mut self) {
        for (group, root) in [(&self.cpu, CGROUP_CPU), (&self.memory, CGROUP_MEMORY)] {
            if let Ok(procs) = std::fs::read_to_string(group.join("cgroup.procs")) {
                for pid in procs.lines() {
                    let _ = std::fs::write(Path::new(root).join("cgroup.procs"), pid);
                }
            }
            let _ = std::fs::remove_dir(group);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{ms, percentile};

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=101).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert_eq!(ms(Duration::from_micros(4_880)), "4.88 ms");
    }
}
