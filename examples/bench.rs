//! `scripts/bench`: how fast the root comes up after a volume is hot-plugged,
//! pivot-init against the kernel's own `rootwait` and shell polling loops,
//! on the same kernel and QEMU (TCG) in one run.
//!
//! Lag = printk time of the volume's init's first line (written to /dev/kmsg;
//! it also prints /proc/uptime) minus printk time of the kernel's NVMe
//! namespace message for the hot-plugged disk ("Ignoring bogus Namespace
//! Identifiers", printed as the namespace is scanned, just before the disk is
//! added). Both stamps come from the same clock in the same log.
//!
//! Usage: bench [--runs N] [--jobs J] [--plot FILE.png] [--idle-secs S] [--quiet]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use pivot_harness::*;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    KernelRootwait,
    Shell1s,
    Shell10ms,
    PivotImage,
    PivotInitramfs,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::KernelRootwait,
        Kind::Shell1s,
        Kind::Shell10ms,
        Kind::PivotImage,
        Kind::PivotInitramfs,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::KernelRootwait => "kernel-rootwait",
            Kind::Shell1s => "shell-1s",
            Kind::Shell10ms => "shell-10ms",
            Kind::PivotImage => "pivot-init (image)",
            Kind::PivotInitramfs => "pivot-init (initramfs)",
        }
    }
}

/// One boot's numbers.
#[derive(Clone, Default)]
struct Run {
    lag_ms: f64,
    uevent_to_exec_ms: Option<f64>,
    cpu_ms: Option<f64>,
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
                 dmesg > /dev/ttyS1\npoweroff -f\n"
            )
            .as_bytes(),
            0o755,
        )
        .mkdir("/proc")
        .mkdir("/sys")
        .mkdir("/dev")
        .mkdir("/old-root");
    t.ext4(&s.0.join("bench-vol.img"), 16, "benchvol")
}

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
    let out = s.0.join(format!("{name}.img"));
    let o = std::process::Command::new(root().join("scripts/mkinitramfs"))
        .env("PIVOT_INIT_BIN", &script)
        .arg("-o")
        .arg(&out)
        .args(["--add", "/bin/busybox:/bin/busybox"])
        .output()
        .expect("scripts/mkinitramfs runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

struct Media {
    boot_disk: PathBuf,
    pivot_initrd: PathBuf,
    shell_1s: PathBuf,
    shell_10ms: PathBuf,
    volume: PathBuf,
}

/// Boots one scenario, hot-plugs the volume `delay` after the guest started
/// waiting, and reads the numbers off the console.
fn one(kind: Kind, media: &Media, delay: Duration, n: usize, extra: &str) -> Result<Run, String> {
    let s = Scratch::new(&format!(
        "bench-{}-{n}",
        kind.name().replace([' ', '(', ')'], "")
    ));
    let vol = s.0.join("vol.img");
    std::fs::copy(&media.volume, &vol).map_err(|e| e.to_string())?;
    let (boot, waiting) = match kind {
        Kind::KernelRootwait => (
            Boot {
                cmdline: &format!("root=/dev/nvme0n1 rootwait rw {extra}"),
                ..Boot::default()
            },
            "Waiting for root device /dev/nvme0n1",
        ),
        Kind::Shell1s | Kind::Shell10ms => (
            Boot {
                initrd: Some(if kind == Kind::Shell1s {
                    &media.shell_1s
                } else {
                    &media.shell_10ms
                }),
                cmdline: extra,
                ..Boot::default()
            },
            "shell-wait: waiting",
        ),
        Kind::PivotImage => (
            Boot {
                disk: Some(&media.boot_disk),
                cmdline: &format!("pivot.root=/dev/nvme1n1 pivot.hook=none {extra}"),
                ..Boot::default()
            },
            "pivot-init: waiting for",
        ),
        Kind::PivotInitramfs => (
            Boot {
                initrd: Some(&media.pivot_initrd),
                cmdline: &format!("root=/dev/nvme0n1 rw pivot.hook=none {extra}"),
                ..Boot::default()
            },
            "pivot-init: waiting for",
        ),
    };
    let mut vm = Vm::start(&s, &boot);
    if extra.contains("quiet") {
        // The waiting lines do not reach the console: allow 4 s to boot.
        std::thread::sleep(Duration::from_secs(4) + delay);
    } else {
        vm.wait_console(waiting);
        std::thread::sleep(delay);
    }
    vm.hotplug_nvme(&Disk {
        image: &vol,
        serial: "benchvol",
    });
    // The kernel log as the volume's init dumped it (all levels, even with `quiet`).
    let (_, console) = vm.wait_exit();
    let ready = last_stamp(&console, "Ignoring bogus Namespace Identifiers")
        .ok_or("no NVMe namespace message in the console")?;
    let init = last_stamp(&console, INIT_LINE).ok_or("the volume's init did not run")?;
    Ok(Run {
        lag_ms: (init - ready) * 1000.0,
        uevent_to_exec_ms: summary_number(&console, "; uevent to exec ", " ms;"),
        cpu_ms: summary_number(&console, "; cpu ", " ms while waiting"),
        hwm_kib: summary_number(&console, "VmHWM ", " KiB").map(|v| v as u64),
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    let mut runs = 5usize;
    let mut jobs = 2usize;
    let mut plot: Option<PathBuf> = None;
    let mut idle_secs = 20u64;
    // `--quiet`: kernel `quiet` for every scenario (no console printing cost).
    let mut extra = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--runs" => runs = val().parse().expect("--runs N"),
            "--jobs" => jobs = val().parse().expect("--jobs N"),
            "--plot" => plot = Some(PathBuf::from(val())),
            "--idle-secs" => idle_secs = val().parse().expect("--idle-secs S"),
            "--quiet" => extra = "quiet".to_string(),
            other => panic!(
                "unknown argument {other}; usage: bench [--runs N] [--jobs J] [--plot FILE.png] [--idle-secs S]"
            ),
        }
    }
    let s = Scratch::new("bench");
    let boot_disk = BootDisk::new(&s).image(&s);
    let media = Media {
        boot_disk,
        pivot_initrd: initramfs(&s, &[], &[]),
        shell_1s: shell_initramfs(&s, "shell-1s", "sleep 1"),
        shell_10ms: shell_initramfs(&s, "shell-10ms", "usleep 10000"),
        volume: volume(&s),
    };
    let mut work: Vec<(Kind, usize)> = Vec::new();
    for n in 0..runs {
        for k in Kind::ALL {
            work.push((k, n));
        }
    }
    let queue = Mutex::new(work);
    let results: Mutex<Vec<(Kind, Run)>> = Mutex::new(Vec::new());
    eprintln!(
        "bench: {} boots, {jobs} at a time (TCG)",
        runs * Kind::ALL.len()
    );
    std::thread::scope(|sc| {
        for _ in 0..jobs.max(1) {
            sc.spawn(|| {
                loop {
                    let Some((k, n)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    match one(k, &media, Duration::from_secs(3), n, &extra) {
                        Ok(r) => {
                            eprintln!("bench: {:<24} run {n}: lag {:.1} ms", k.name(), r.lag_ms);
                            results.lock().unwrap().push((k, r));
                        }
                        Err(e) => eprintln!("bench: {} run {n} failed: {e}", k.name()),
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    // The idle cost: pivot-init waiting for a volume that comes after `idle_secs`.
    eprintln!("bench: one pivot-init boot waiting {idle_secs} s for its volume");
    let idle = one(
        Kind::PivotImage,
        &media,
        Duration::from_secs(idle_secs),
        99,
        &extra,
    )
    .ok();

    let lags = |k: Kind| -> Vec<f64> {
        results
            .iter()
            .filter(|(x, _)| *x == k)
            .map(|(_, r)| r.lag_ms)
            .collect()
    };
    let med = |k: Kind| median(&mut lags(k));
    let base_rootwait = med(Kind::KernelRootwait);
    let base_shell = med(Kind::Shell10ms);
    println!(
        "\nlag from the NVMe namespace message to the volume's init's first line, TCG, {runs} runs each\n"
    );
    println!(
        "{:<24} {:>5} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "scenario", "runs", "median ms", "min ms", "max ms", "/rootwait", "/shell-10ms"
    );
    let mut csv = String::from("scenario,run,lag_ms\n");
    for k in Kind::ALL {
        let mut v = lags(k);
        for (i, l) in v.iter().enumerate() {
            csv.push_str(&format!("{},{i},{l:.3}\n", k.name()));
        }
        let m = median(&mut v);
        println!(
            "{:<24} {:>5} {:>10.1} {:>10.1} {:>10.1} {:>12.2} {:>12.2}",
            k.name(),
            v.len(),
            m,
            v.first().copied().unwrap_or(f64::NAN),
            v.last().copied().unwrap_or(f64::NAN),
            m / base_rootwait,
            m / base_shell
        );
    }
    let mut own: Vec<f64> = results
        .iter()
        .filter(|(k, _)| matches!(k, Kind::PivotImage | Kind::PivotInitramfs))
        .filter_map(|(_, r)| r.uevent_to_exec_ms)
        .collect();
    let hwm = results.iter().filter_map(|(_, r)| r.hwm_kib).max();
    let bin = pivot_init_bin();
    println!();
    println!(
        "pivot-init uevent -> exec (its own overhead): median {:.2} ms, max {:.2} ms over {} boots",
        median(&mut own),
        own.last().copied().unwrap_or(f64::NAN),
        own.len()
    );
    match &idle {
        Some(r) => println!(
            "pivot-init CPU while waiting {idle_secs} s, until exec: {} ms; VmHWM {} KiB",
            r.cpu_ms.map_or("?".into(), |c| format!("{c:.3}")),
            r.hwm_kib.map_or("?".into(), |h| h.to_string())
        ),
        None => println!("pivot-init idle run failed"),
    }
    println!(
        "pivot-init peak VmHWM over all boots: {} KiB",
        hwm.map_or("?".into(), |h| h.to_string())
    );
    println!(
        "binary {} bytes ({} KiB); initramfs without modules {} bytes ({} KiB, gzip)",
        file_len(&bin),
        file_len(&bin).div_ceil(1024),
        file_len(&media.pivot_initrd),
        file_len(&media.pivot_initrd).div_ceil(1024)
    );
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let csv_path = dir.join("lags.csv");
    std::fs::write(&csv_path, csv).unwrap();
    println!("raw lags: {}", csv_path.display());
    if let Some(png) = plot {
        let st = std::process::Command::new("python3")
            .arg(root().join("scripts/bench_plot.py"))
            .arg(&csv_path)
            .arg(&png)
            .status()
            .expect("python3 runs");
        assert!(st.success(), "plotting failed");
        println!("plot: {}", png.display());
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}
