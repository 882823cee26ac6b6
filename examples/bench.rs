//! `scripts/bench`: how fast the root comes up, pivot-init against the
//! kernel's own `rootwait`, shell polling loops, and the initramfs tools
//! people run (Debian's initramfs-tools, dracut, tiny-initramfs: images that
//! `scripts/bench-peers` builds from Debian's packages for the same kernel),
//! on the same kernel and QEMU (TCG, or `--icount`) in one run. Beside them a lower bound,
//! "floor" (examples/bench-floor.c): an /init without a C library that only
//! mounts the volume when its uevent comes, moves it onto / and execs its
//! init; no initramfs can reach the volume's init sooner.
//!
//! A boot that fails, times out or prints no marker is a failed run: it is
//! reported with its scenario, run number and the tail of its console, and
//! counted (`runs ok/total`); the bench exits non-zero only when a scenario
//! has no successful run.
//!
//! Lag = printk time of the volume's init's first line (written to /dev/kmsg;
//! it also prints /proc/uptime) minus printk time of the kernel's NVMe
//! namespace message for the hot-plugged disk ("Ignoring bogus Namespace
//! Identifiers", printed as the namespace is scanned, just before the disk is
//! added). Both stamps come from the same clock in the same log.
//!
//! Usage: bench [--runs N] [--jobs J] [--plot FILE.png] [--idle-secs S] [--quiet] [--no-peers]
//! [--only TEXT] [--icount]. `--idle-secs 0`: no idle run; `--only`: the scenarios whose name
//! contains TEXT; `--icount`: every guest runs under QEMU `-icount shift=0,sleep=on`
//! (`Clock::Icount`), so the printk stamps count guest instructions (1 ns each) instead of the
//! wall time TCG took on this host.
//! `PIVOT_BENCH_EXTRA` is appended to every boot's command line, `PIVOT_BENCH_IDLE_EXTRA` to the
//! idle run's (e.g. `pivot.loglevel=7`; with `PIVOT_KEEP=1` each boot's kernel log stays in
//! target/qemu-tests/bench-*/markers.log).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use pivot_harness::*;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    KernelRootwait,
    Shell1s,
    Shell10ms,
    PivotImage,
    PivotInitramfs,
    InitramfsTools,
    Dracut,
    TinyInitramfs,
    /// The least an initramfs can do (examples/bench-floor.c): a lower bound.
    Floor,
}

/// When the volume comes: there at boot, or hot-plugged N s later.
#[derive(Clone, Copy, PartialEq, Debug)]
enum When {
    AtBoot,
    Hotplug(u64),
}

impl Kind {
    /// The hot-plug lag comparison (3 s after waiting).
    const LAG: [Kind; 5] = [
        Kind::KernelRootwait,
        Kind::Shell1s,
        Kind::Shell10ms,
        Kind::PivotImage,
        Kind::PivotInitramfs,
    ];
    /// The initramfs comparison.
    const PEERS: [Kind; 5] = [
        Kind::PivotInitramfs,
        Kind::InitramfsTools,
        Kind::Dracut,
        Kind::TinyInitramfs,
        Kind::Floor,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::KernelRootwait => "kernel-rootwait",
            Kind::Shell1s => "shell-1s",
            Kind::Shell10ms => "shell-10ms",
            Kind::PivotImage => "pivot-init (image)",
            Kind::PivotInitramfs => "pivot-init (initramfs)",
            Kind::InitramfsTools => "initramfs-tools",
            Kind::Dracut => "dracut",
            Kind::TinyInitramfs => "tiny-initramfs",
            Kind::Floor => "floor (lower bound)",
        }
    }
}

/// Which clock the guests' printk stamps are: every table says it.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Clock {
    /// Plain TCG: guest time follows the host's wall clock, so it includes
    /// TCG's translation and whatever else the host is doing.
    TcgWall,
    /// `-icount shift=0,sleep=on` (harness `ICOUNT`): 1 ns per guest
    /// instruction while the guest runs; real time while it idles.
    Icount,
}

impl Clock {
    fn name(self) -> &'static str {
        match self {
            Clock::TcgWall => "TCG wall",
            Clock::Icount => "icount",
        }
    }

    /// Decimals of a time in ms: icount's are exact to the instruction and
    /// a boot's own work is a few ms of them, so they get hundredths.
    fn ms_decimals(self, wall: usize) -> usize {
        match self {
            Clock::TcgWall => wall,
            Clock::Icount => 2,
        }
    }
}

/// A scenario: who boots, and when the volume comes.
type Scenario = (Kind, When);

fn scenario_name((k, w): Scenario) -> String {
    match w {
        When::AtBoot => format!("{} at boot", k.name()),
        When::Hotplug(n) => format!("{} hot-plug {n} s", k.name()),
    }
}

/// One boot's numbers.
#[derive(Clone, Default)]
struct Run {
    /// Hot-plug: NVMe namespace message -> the volume's init.
    lag_ms: f64,
    /// At boot: kernel start -> the volume's init, and `Run /init` -> it.
    kernel_to_init_ms: Option<f64>,
    run_init_to_init_ms: Option<f64>,
    uevent_to_exec_ms: Option<f64>,
    cpu_ms: Option<f64>,
    wakeups: Option<f64>,
    hwm_kib: Option<u64>,
}

/// Printk timestamp (seconds) of a console line.
fn stamp(line: &str) -> Option<f64> {
    let inner = line.trim_start().strip_prefix('[')?.split(']').next()?;
    inner.trim().parse().ok()
}

fn last_stamp(console: &str, needle: &str) -> Option<f64> {
    console
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(stamp)
        .next_back()
}

/// A number that follows `before` and ends at `after` in the summary line.
fn summary_number(console: &str, before: &str, after: &str) -> Option<f64> {
    let line = console
        .lines()
        .find(|l| l.contains("pivot-init: switched to"))?;
    let rest = line.split(before).nth(1)?;
    rest.split(after).next()?.trim().parse().ok()
}

const INIT_LINE: &str = "bench-init: first line";
/// The volume's init's second line, after the first (so it adds nothing to
/// the times measured): CPU time in ns, from the kernel's schedstats, of PID 1
/// (the kernel's init work, the initramfs /init, the volume's init so far)
/// and of every task but the idle one (`rq_cpu_time` in /proc/schedstat).
/// Under `--icount` that is work (instructions) without the time the guest
/// idled, e.g. waiting for disk reads, which follows real time.
const CPU_LINE: &str = "bench-init: cpu ns";

/// The volume: busybox and an init whose first line goes to /dev/kmsg.
fn volume(s: &Scratch) -> PathBuf {
    let t = Tree::new(s.0.join("bench-vol"));
    t.busybox()
        .file(
            "/sbin/init",
            format!(
                "#!/bin/sh\nexport PATH=/bin\nmountpoint -q /proc || mount -t proc proc /proc\n\
                 mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev\n\
                 echo \"{INIT_LINE}, uptime $(cat /proc/uptime)\" > /dev/kmsg\n\
                 read pid1 rest < /proc/1/schedstat\n\
                 while read c y z n g t l busy rest; do [ \"$c\" = cpu0 ] && break; done < /proc/schedstat\n\
                 echo \"{CPU_LINE} pid1 $pid1 busy $busy\" > /dev/kmsg\n\
                 dmesg > /dev/ttyS1\npoweroff -f\n"
            )
            .as_bytes(),
            0o755,
        )
        // An OS tree as systemd (dracut's switch-root) checks for one.
        .file("/etc/os-release", b"ID=bench\nNAME=bench\n", 0o644)
        .mkdir("/proc")
        .mkdir("/sys")
        .mkdir("/dev")
        .mkdir("/old-root");
    t.ext4_args(
        &s.0.join("bench-vol.img"),
        16,
        &["-L", "benchvol", "-U", VOLUME_UUID],
    )
}

/// The bench volume's filesystem UUID (tiny-initramfs knows no LABEL=).
const VOLUME_UUID: &str = "be4c0000-0000-4000-8000-00000000be4c";

/// The classic shell initramfs: poll for the node, mount, switch_root.
fn shell_initramfs(s: &Scratch, name: &str, delay: &str) -> PathBuf {
    let script = s.0.join(format!("{name}.init"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n/bin/busybox mount -t sysfs sysfs /sys\n\
             /bin/busybox mount -t devtmpfs devtmpfs /dev\necho 'shell-wait: waiting for /dev/nvme0n1' > /dev/kmsg\n\
             while [ ! -b /dev/nvme0n1 ]; do /bin/busybox {delay}; done\n\
             /bin/busybox mount -t ext4 -o rw /dev/nvme0n1 /new-root\n\
             /bin/busybox mount --move /dev /new-root/dev\n/bin/busybox mount --move /proc /new-root/proc\n\
             /bin/busybox mount --move /sys /new-root/sys\nexec /bin/busybox switch_root /new-root /sbin/init\n"
        ),
    )
    .unwrap();
    initramfs_of(s, name, &script, &["--add", "/bin/busybox:/bin/busybox"])
}

/// An initramfs whose /init is `init` (scripts/mkinitramfs, `args` added).
fn initramfs_of(s: &Scratch, name: &str, init: &Path, args: &[&str]) -> PathBuf {
    let out = s.0.join(format!("{name}.img"));
    let o = std::process::Command::new(root().join("scripts/mkinitramfs"))
        .env("PIVOT_INIT_BIN", init)
        .arg("-o")
        .arg(&out)
        .args(args)
        .output()
        .expect("scripts/mkinitramfs runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// The floor: examples/bench-floor.c, built without a C library, as /init.
fn floor_initramfs(s: &Scratch) -> PathBuf {
    let bin = s.0.join("bench-floor");
    let o = std::process::Command::new("cc")
        .args(["-O2", "-static", "-nostdlib", "-fno-stack-protector", "-o"])
        .arg(&bin)
        .arg(root().join("examples/bench-floor.c"))
        .output()
        .expect("cc (the C compiler Rust links with) runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    initramfs_of(s, "floor", &bin, &[])
}

struct Media {
    boot_disk: PathBuf,
    pivot_initrd: PathBuf,
    /// The same with `--compress xz` (only its size is reported).
    pivot_initrd_xz: PathBuf,
    shell_1s: PathBuf,
    shell_10ms: PathBuf,
    /// examples/bench-floor.c as /init.
    floor: PathBuf,
    volume: PathBuf,
    /// initramfs-tools, dracut, tiny-initramfs images (scripts/bench-peers).
    peers: Option<[PathBuf; 3]>,
}

impl Media {
    fn initrd(&self, k: Kind) -> Option<&Path> {
        let peers = self.peers.as_ref();
        match k {
            Kind::Shell1s => Some(&self.shell_1s),
            Kind::Shell10ms => Some(&self.shell_10ms),
            Kind::PivotInitramfs => Some(&self.pivot_initrd),
            Kind::InitramfsTools => peers.map(|p| p[0].as_path()),
            Kind::Dracut => peers.map(|p| p[1].as_path()),
            Kind::TinyInitramfs => peers.map(|p| p[2].as_path()),
            Kind::Floor => Some(&self.floor),
            Kind::KernelRootwait | Kind::PivotImage => None,
        }
    }
}

/// Boots one scenario and reads the numbers off the kernel log the volume's
/// init dumps; `Err` with the reason and the tail of the console when the
/// boot did not get there.
/// How long to let a guest boot before the hot-plug clock starts, when its
/// waiting line is not on the console: the slowest peer (dracut) needs about
/// 15 s. initramfs-tools waits (about 5 s in) and gives up on the root
/// device 30 s later (its ROOTDELAY default; `rootdelay=` would also sleep
/// that long first), so it gets 8 s: its 20 s hot-plug comes before it gives up.
fn quiet_boot(k: Kind) -> Duration {
    match k {
        Kind::InitramfsTools => Duration::from_secs(8),
        _ => Duration::from_secs(15),
    }
}

/// `quiet_boot`: how long a guest takes to boot to its wait when the waiting
/// line does not reach the console (`quiet`, or a peer that prints none).
fn one(
    sc: Scenario,
    media: &Media,
    n: usize,
    extra: &str,
    quiet_boot: Duration,
    clock: Clock,
) -> Result<Run, String> {
    let (kind, when) = sc;
    let s = Scratch::new(&format!(
        "bench-{}-{n}",
        scenario_name(sc).replace([' ', '(', ')'], "")
    ));
    let vol = s.0.join("vol.img");
    std::fs::copy(&media.volume, &vol).map_err(|e| e.to_string())?;
    let cmdline = match kind {
        Kind::KernelRootwait => format!("root=/dev/nvme0n1 rootwait rw {extra}"),
        Kind::Shell1s | Kind::Shell10ms => extra.to_string(),
        Kind::PivotImage => format!("pivot.root=/dev/nvme1n1 pivot.hook=none {extra}"),
        Kind::PivotInitramfs => format!("root=LABEL=benchvol rw pivot.hook=none {extra}"),
        Kind::Floor => extra.to_string(),
        Kind::InitramfsTools | Kind::Dracut => format!("root=LABEL=benchvol rw {extra}"),
        Kind::TinyInitramfs => format!("root=UUID={VOLUME_UUID} rootwait rw {extra}"),
    };
    let at_boot = [Disk {
        image: &vol,
        serial: "benchvol",
    }];
    let boot = Boot {
        disk: (kind == Kind::PivotImage).then_some(media.boot_disk.as_path()),
        initrd: media.initrd(kind),
        nvme: if when == When::AtBoot { &at_boot } else { &[] },
        cmdline: &cmdline,
        icount: clock == Clock::Icount,
        ..Boot::default()
    };
    let waiting = match kind {
        Kind::KernelRootwait => Some("Waiting for root device /dev/nvme0n1"),
        Kind::Shell1s | Kind::Shell10ms => Some("shell-wait: waiting"),
        Kind::PivotImage | Kind::PivotInitramfs => Some("pivot-init: waiting for"),
        _ => None,
    };
    let mut vm = Vm::start(&s, &boot);
    if let When::Hotplug(delay) = when {
        let delay = Duration::from_secs(delay);
        match waiting {
            Some(line) if !extra.contains("quiet") => {
                vm.try_wait_console(line).map_err(|e| tail(&e))?;
                std::thread::sleep(delay);
            }
            // The waiting lines do not reach the console (quiet, or a peer
            // that prints none): allow for the boot.
            _ => std::thread::sleep(quiet_boot + delay),
        }
        vm.hotplug_nvme(&Disk {
            image: &vol,
            serial: "benchvol",
        });
    }
    // The kernel log as the volume's init dumped it (all levels, even with `quiet`).
    let (_, log) = vm.try_wait_exit().map_err(|e| tail(&e))?;
    let init = last_stamp(&log, INIT_LINE)
        .ok_or_else(|| format!("the volume's init did not run{}", tail(&vm.console_text())))?;
    let mut run = Run {
        uevent_to_exec_ms: summary_number(&log, "; uevent to exec ", " ms;"),
        cpu_ms: summary_number(&log, "; cpu ", " ms while waiting"),
        wakeups: summary_number(&log, " ms while waiting (", " wake-ups)"),
        hwm_kib: summary_number(&log, "VmHWM ", " KiB").map(|v| v as u64),
        ..Run::default()
    };
    match when {
        When::Hotplug(_) => {
            let ready = last_stamp(&log, "Ignoring bogus Namespace Identifiers")
                .ok_or("no NVMe namespace message in the kernel log")?;
            run.lag_ms = (init - ready) * 1000.0;
        }
        When::AtBoot => {
            run.kernel_to_init_ms = Some(init * 1000.0);
            run.run_init_to_init_ms =
                last_stamp(&log, "Run /init as init process").map(|r| (init - r) * 1000.0);
            run.lag_ms = init * 1000.0;
        }
    }
    Ok(run)
}

/// The last lines of a console or a failure message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(8);
    format!("; console tail:\n    {}", lines[from..].join("\n    "))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs a boot (`one`), turning a panic in the harness (a QMP error, a full
/// disk...) into a failed run instead of the end of the bench.
fn guarded(boot: impl FnOnce() -> Result<Run, String>) -> Result<Run, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(boot)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(format!("harness error{}", tail(&msg)))
        }
    }
}

struct Opts {
    runs: usize,
    jobs: usize,
    plot: Option<PathBuf>,
    idle_secs: u64,
    extra: String,
    peers: bool,
    /// `--only TEXT`: the scenarios whose name contains TEXT.
    only: Option<String>,
    /// `--icount`: every guest under QEMU `-icount`.
    clock: Clock,
}

fn opts() -> Opts {
    let mut o = Opts {
        runs: 5,
        jobs: 1,
        plot: None,
        idle_secs: 20,
        // PIVOT_BENCH_EXTRA: more kernel command line for every boot
        // (`pivot.loglevel=7` with PIVOT_KEEP=1 keeps a trace of each).
        extra: std::env::var("PIVOT_BENCH_EXTRA").unwrap_or_default(),
        peers: true,
        only: None,
        clock: Clock::TcgWall,
    };
    let usage = "usage: bench [--runs N] [--jobs J] [--plot FILE.png] [--idle-secs S] [--quiet] [--no-peers] [--only TEXT] [--icount]";
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("bench: {a} needs a number; {usage}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--runs" => o.runs = num() as usize,
            "--jobs" => o.jobs = num() as usize,
            "--idle-secs" => o.idle_secs = num(),
            "--plot" => o.plot = args.next().map(PathBuf::from),
            // `--quiet`: kernel `quiet` for every scenario (no console printing cost).
            "--quiet" => o.extra.push_str(" quiet"),
            "--no-peers" => o.peers = false,
            "--only" => o.only = args.next(),
            "--icount" => o.clock = Clock::Icount,
            other => {
                eprintln!("bench: unknown argument {other}; {usage}");
                std::process::exit(2)
            }
        }
    }
    o
}

/// Every boot of the run, in order.
fn scenarios(o: &Opts) -> Vec<(Scenario, usize)> {
    let mut work = Vec::new();
    for n in 0..o.runs {
        for k in Kind::LAG {
            work.push(((k, When::Hotplug(3)), n));
        }
        if o.peers {
            for k in Kind::PEERS {
                work.push(((k, When::AtBoot), n));
                if k != Kind::PivotInitramfs {
                    work.push(((k, When::Hotplug(3)), n));
                }
                work.push(((k, When::Hotplug(20)), n));
            }
        }
    }
    if let Some(only) = &o.only {
        work.retain(|(sc, _)| scenario_name(*sc).contains(only.as_str()));
    }
    work
}

type Results = Vec<(Scenario, Result<Run, String>)>;

fn main() {
    let o = opts();
    let s = Scratch::new("bench");
    let boot_disk = BootDisk::new(&s).image(&s);
    let peers = if o.peers {
        let dir = root().join("target/peers");
        let imgs =
            ["initramfs-tools", "dracut", "tiny-initramfs"].map(|n| dir.join(format!("{n}.img")));
        if imgs.iter().all(|p| p.exists()) {
            Some(imgs)
        } else {
            eprintln!(
                "bench: no peer images in {}: run scripts/bench-peers (or --no-peers)",
                dir.display()
            );
            std::process::exit(2)
        }
    } else {
        None
    };
    let media = Media {
        boot_disk,
        pivot_initrd: initramfs(&s, &[], &[]),
        pivot_initrd_xz: initramfs_compressed(&s, "xz"),
        shell_1s: shell_initramfs(&s, "shell-1s", "sleep 1"),
        shell_10ms: shell_initramfs(&s, "shell-10ms", "usleep 10000"),
        floor: floor_initramfs(&s),
        volume: volume(&s),
        peers,
    };
    let work = scenarios(&o);
    eprintln!(
        "bench: {} boots, {} at a time ({})",
        work.len(),
        o.jobs,
        o.clock.name()
    );
    let queue = Mutex::new(work.into_iter().rev().collect::<Vec<_>>());
    let results: Mutex<Results> = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..o.jobs.max(1) {
            sc.spawn(|| {
                while let Some((scen, n)) = queue.lock().map(|mut q| q.pop()).ok().flatten() {
                    let r = guarded(|| one(scen, &media, n, &o.extra, quiet_boot(scen.0), o.clock));
                    match &r {
                        Ok(run) => eprintln!(
                            "bench: {:<36} run {n}: {:.1} ms",
                            scenario_name(scen),
                            run.lag_ms
                        ),
                        Err(e) => eprintln!("bench: {} run {n} FAILED: {e}", scenario_name(scen)),
                    }
                    if let Ok(mut all) = results.lock() {
                        all.push((scen, r));
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    // The idle cost: pivot-init waiting for a volume that comes after
    // `idle_secs` (`--idle-secs 0`: no idle run).
    let idle = (o.idle_secs > 0).then(|| {
        let n = o.runs.clamp(1, 3);
        eprintln!(
            "bench: {n} pivot-init boot(s) waiting {} s for their volume",
            o.idle_secs
        );
        // pivot.stats=1: the summary line then has the CPU time and peak memory.
        let debug = format!(
            "{} pivot.stats=1 {}",
            o.extra,
            std::env::var("PIVOT_BENCH_IDLE_EXTRA").unwrap_or_default()
        );
        // pivot-init is waiting about 2.5 s after QEMU starts (TCG): the
        // volume comes about `idle_secs` after it began to wait.
        (0..n)
            .map(|i| {
                let r = guarded(|| {
                    one(
                        (Kind::PivotImage, When::Hotplug(o.idle_secs)),
                        &media,
                        90 + i,
                        &debug,
                        Duration::from_millis(2500),
                        o.clock,
                    )
                });
                if let Err(e) = &r {
                    eprintln!("bench: idle run {i} FAILED: {e}");
                }
                r
            })
            .collect::<Vec<_>>()
    });
    let empty = report(&o, &media, &results, idle);
    if !empty.is_empty() {
        eprintln!("bench: no successful run of: {}", empty.join(", "));
        std::process::exit(1);
    }
}

/// Prints the tables; returns the scenarios without a successful run.
fn report(
    o: &Opts,
    media: &Media,
    results: &Results,
    idle: Option<Vec<Result<Run, String>>>,
) -> Vec<String> {
    let ok = |sc: Scenario| -> Vec<Run> {
        results
            .iter()
            .filter(|(x, r)| *x == sc && r.is_ok())
            .filter_map(|(_, r)| r.as_ref().ok().cloned())
            .collect()
    };
    let total = |sc: Scenario| results.iter().filter(|(x, _)| *x == sc).count();
    let mut empty = Vec::new();
    let mut seen: Vec<Scenario> = Vec::new();
    for (sc, _) in results {
        if !seen.contains(sc) {
            seen.push(*sc);
        }
    }
    for sc in &seen {
        if ok(*sc).is_empty() {
            empty.push(scenario_name(*sc));
        }
    }
    let med_of =
        |v: Vec<f64>| median(&mut v.into_iter().filter(|x| x.is_finite()).collect::<Vec<_>>());
    let lag = |sc: Scenario| med_of(ok(sc).iter().map(|r| r.lag_ms).collect());
    let h3 = |k: Kind| (k, When::Hotplug(3));
    let base_rootwait = lag(h3(Kind::KernelRootwait));
    let base_shell = lag(h3(Kind::Shell10ms));
    println!(
        "\nhot-plug: lag from the NVMe namespace message to the volume's init's first line, {}, volume attached 3 s after waiting\n",
        o.clock.name()
    );
    println!(
        "{:<24} {:>7} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "scenario", "runs ok", "median ms", "min ms", "max ms", "/rootwait", "/shell-10ms"
    );
    let mut csv = String::from("scenario,run,lag_ms\n");
    for k in Kind::LAG {
        let mut v: Vec<f64> = ok(h3(k)).iter().map(|r| r.lag_ms).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        for (i, l) in v.iter().enumerate() {
            csv.push_str(&format!("{},{i},{l:.3}\n", k.name()));
        }
        let m = median(&mut v.clone());
        let d = o.clock.ms_decimals(1);
        println!(
            "{:<24} {:>7} {:>10.d$} {:>10.d$} {:>10.d$} {:>10.2} {:>12.2}",
            k.name(),
            format!("{}/{}", v.len(), total(h3(k))),
            m,
            v.first().copied().unwrap_or(f64::NAN),
            v.last().copied().unwrap_or(f64::NAN),
            m / base_rootwait,
            m / base_shell
        );
    }
    if media.peers.is_some() {
        peers_table(o.clock, media, &ok, &total);
    }
    let mut own: Vec<f64> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok()?.uevent_to_exec_ms)
        .collect();
    // Only the idle runs have pivot.stats=1 (VmHWM in the summary line).
    let hwm = results
        .iter()
        .map(|(_, r)| r)
        .chain(idle.iter().flatten())
        .filter_map(|r| r.as_ref().ok()?.hwm_kib)
        .max();
    let bin = pivot_init_bin();
    println!();
    println!(
        "pivot-init uevent -> exec (its own overhead, {}): median {:.2} ms over {} boots",
        o.clock.name(),
        median(&mut own),
        own.len()
    );
    if let Some(idle) = &idle {
        let ok: Vec<&Run> = idle.iter().filter_map(|r| r.as_ref().ok()).collect();
        let mut cpu: Vec<f64> = ok.iter().filter_map(|r| r.cpu_ms).collect();
        let mut wake: Vec<f64> = ok.iter().filter_map(|r| r.wakeups).collect();
        let (lo, hi) = (
            cpu.iter().copied().fold(f64::INFINITY, f64::min),
            cpu.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        println!(
            "pivot-init CPU while waiting {} s (from its first sleep to the device's uevent, {}): \
             median {:.3} ms (min {lo:.3}, max {hi:.3}), median {} wake-ups, over {}/{} runs",
            o.idle_secs,
            o.clock.name(),
            median(&mut cpu),
            median(&mut wake),
            ok.len(),
            idle.len()
        );
    }
    println!(
        "pivot-init peak VmHWM over all boots: {} KiB",
        hwm.map_or("?".into(), |h| h.to_string())
    );
    println!(
        "binary {} bytes ({} KiB); initramfs without modules {} bytes ({} KiB, gzip, the default), \
         {} bytes ({} KiB) with --compress xz",
        file_len(&bin),
        file_len(&bin).div_ceil(1024),
        file_len(&media.pivot_initrd),
        file_len(&media.pivot_initrd).div_ceil(1024),
        file_len(&media.pivot_initrd_xz),
        file_len(&media.pivot_initrd_xz).div_ceil(1024)
    );
    let dir = root().join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let csv_path = dir.join(match o.clock {
        Clock::TcgWall => "lags.csv",
        Clock::Icount => "lags-icount.csv",
    });
    let _ = std::fs::write(&csv_path, csv);
    println!("raw lags: {}", csv_path.display());
    if let Some(png) = &o.plot {
        let st = std::process::Command::new("python3")
            .arg(root().join("scripts/bench_plot.py"))
            .arg(&csv_path)
            .arg(png)
            .arg(o.clock.name())
            .status();
        match st {
            Ok(s) if s.success() => println!("plot: {}", png.display()),
            _ => eprintln!("bench: plotting failed"),
        }
    }
    empty
}

/// The initramfs comparison: image size, boot times with the volume there,
/// hot-plug lags, each with its ratio to pivot-init.
fn peers_table(
    clock: Clock,
    media: &Media,
    ok: &dyn Fn(Scenario) -> Vec<Run>,
    total: &dyn Fn(Scenario) -> usize,
) {
    let med =
        |v: Vec<f64>| median(&mut v.into_iter().filter(|x| x.is_finite()).collect::<Vec<_>>());
    let at = |k: Kind, f: fn(&Run) -> Option<f64>| {
        med(ok((k, When::AtBoot)).iter().filter_map(f).collect())
    };
    let hot = |k: Kind, n: u64| med(ok((k, When::Hotplug(n))).iter().map(|r| r.lag_ms).collect());
    // The image each one boots, as the boots take it.
    let size = |k: Kind| media.initrd(k).map_or(0, file_len);
    let base = Kind::PivotInitramfs;
    let (b_size, b_kernel, b_run, b_h3, b_h20) = (
        size(base) as f64,
        at(base, |r| r.kernel_to_init_ms),
        at(base, |r| r.run_init_to_init_ms),
        hot(base, 3),
        hot(base, 20),
    );
    println!(
        "\ninitramfs peers (same kernel, {}, medians; in brackets: the ratio to pivot-init; \
         floor: examples/bench-floor.c, the least an /init can do, no product)\n",
        clock.name()
    );
    println!(
        "{:<24} {:>9} {:>22} {:>22} {:>22} {:>22} {:>22}",
        "initramfs",
        "runs ok",
        "image bytes",
        "kernel -> init ms",
        "Run /init -> init ms",
        "hot-plug 3 s lag ms",
        "hot-plug 20 s lag ms"
    );
    for k in Kind::PEERS {
        let runs: usize = [When::AtBoot, When::Hotplug(3), When::Hotplug(20)]
            .iter()
            .map(|w| ok((k, *w)).len())
            .sum();
        let all: usize = [When::AtBoot, When::Hotplug(3), When::Hotplug(20)]
            .iter()
            .map(|w| total((k, *w)))
            .sum();
        let cell = |v: f64, b: f64, d: usize| format!("{v:.d$} ({:.2}x)", v / b);
        let d = clock.ms_decimals(0);
        println!(
            "{:<24} {:>9} {:>22} {:>22} {:>22} {:>22} {:>22}",
            k.name(),
            format!("{runs}/{all}"),
            cell(size(k) as f64, b_size, 0),
            cell(at(k, |r| r.kernel_to_init_ms), b_kernel, d),
            cell(at(k, |r| r.run_init_to_init_ms), b_run, d),
            cell(hot(k, 3), b_h3, d),
            cell(hot(k, 20), b_h20, d),
        );
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
