//! `scripts/try`: boots a user's own boot disk (or kernel + initramfs) and
//! volume under QEMU, attaching the volume as a cloud would, and says whether
//! the pair pivots. The images are never written: QEMU runs on qcow2
//! overlays whose backing files are the images.
//!
//! Exit status: 0 pivoted, 1 failed, 2 bad arguments or missing images.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pivot_harness::*;

const USAGE: &str = "usage: scripts/try --boot BOOT.img --volume VOL.img [--attach-after SECS]
                  [--serial vol-0abc] [--bus nvme|virtio|scsi]
                  [--initramfs IMG --kernel-cmdline \"root=...\"] [--kernel PATH]
                  [--arch x86_64|aarch64] [--timeout SECS] [--keep-running]";

struct Args {
    boot: Option<PathBuf>,
    volume: PathBuf,
    attach_after: Option<u64>,
    serial: String,
    bus: String,
    initramfs: Option<PathBuf>,
    cmdline: String,
    kernel: Option<PathBuf>,
    arch: Arch,
    timeout: u64,
    keep_running: bool,
}

fn bad(msg: &str) -> ! {
    eprintln!("try: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        boot: None,
        volume: PathBuf::new(),
        attach_after: None,
        serial: "vol-0try".into(),
        bus: "nvme".into(),
        initramfs: None,
        cmdline: String::new(),
        kernel: None,
        arch: Arch::X86_64,
        timeout: 120,
        keep_running: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| bad(&format!("{flag} needs a value")))
        };
        let secs = |v: String, what: &str| {
            v.parse::<u64>()
                .unwrap_or_else(|_| bad(&format!("{what} {v}: not a number of seconds")))
        };
        match flag.as_str() {
            "--boot" => a.boot = Some(val().into()),
            "--volume" => a.volume = val().into(),
            "--attach-after" => a.attach_after = Some(secs(val(), "--attach-after")),
            "--serial" => a.serial = val(),
            "--bus" => a.bus = val(),
            "--initramfs" => a.initramfs = Some(val().into()),
            "--kernel-cmdline" => a.cmdline = val(),
            "--kernel" => a.kernel = Some(val().into()),
            "--arch" => {
                a.arch = match val().as_str() {
                    "x86_64" => Arch::X86_64,
                    "aarch64" => Arch::Aarch64,
                    other => bad(&format!("--arch {other}: expected x86_64 or aarch64")),
                }
            }
            "--timeout" => a.timeout = secs(val(), "--timeout"),
            "--keep-running" => a.keep_running = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => bad(&format!("unknown argument {other}")),
        }
    }
    if a.volume.as_os_str().is_empty() {
        bad("--volume is required");
    }
    if a.boot.is_none() && a.initramfs.is_none() {
        bad("give --boot BOOT.img, or --initramfs IMG with --kernel-cmdline");
    }
    if !matches!(a.bus.as_str(), "nvme" | "virtio" | "scsi") {
        bad(&format!("--bus {}: expected nvme, virtio or scsi", a.bus));
    }
    a
}

/// Refuses (exit 2) an image that is missing, unreadable, or neither a
/// disk with a partition table nor a filesystem pivot-init knows.
fn check_image(what: &str, p: &Path) {
    let mut head = vec![0u8; pivot_init::probe::PROBE_BYTES];
    let read = std::fs::File::open(p).and_then(|mut f| {
        use std::io::Read;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    });
    match read {
        Err(e) => {
            eprintln!("try: {what} {}: {e}", p.display());
            std::process::exit(2)
        }
        Ok(n) if n < 1024 => {
            eprintln!(
                "try: {what} {}: only {n} bytes, not a disk image",
                p.display()
            );
            std::process::exit(2)
        }
        Ok(_) => {}
    }
    let disk = head.get(510..512) == Some(&[0x55, 0xaa][..]);
    if !disk && pivot_init::probe::probe(&head).is_none() {
        eprintln!(
            "try: {what} {} is not a disk or filesystem image (no partition table, no known filesystem)",
            p.display()
        );
        std::process::exit(2)
    }
}

/// The kernel's root= for a boot image: its first partition's PARTUUID for
/// a partitioned disk, the whole NVMe namespace for a bare filesystem.
fn root_of(p: &Path) -> String {
    let mut head = vec![0u8; 1024 + 128];
    if let Ok(mut f) = std::fs::File::open(p) {
        use std::io::Read;
        let _ = f.read(&mut head);
    }
    if let Some(sig) = pivot_init::probe::mbr_signature(&head) {
        let first = (0..4).find(|i| head[446 + 16 * i + 4] != 0).unwrap_or(0);
        return format!(
            "PARTUUID={}",
            pivot_init::probe::mbr_partuuid(sig, first as u32 + 1)
        );
    }
    if pivot_init::probe::gpt_header(&head[512..1024]).is_some()
        && let Some((uuid, _)) = pivot_init::probe::gpt_entry(&head[1024..])
    {
        return format!("PARTUUID={uuid}");
    }
    "/dev/nvme0n1".into()
}

/// A qcow2 overlay over `image`: QEMU writes there, never to the image.
fn overlay(dir: &Path, image: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.qcow2"));
    let image = std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf());
    let o = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&image)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| {
            eprintln!("try: cannot run qemu-img ({e}): apt-get install qemu-utils");
            std::process::exit(2)
        });
    if !o.status.success() {
        eprintln!(
            "try: qemu-img create failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::process::exit(2)
    }
    out
}

/// Prints what the console got since `shown`.
fn stream(vm: &Vm, shown: &mut usize) {
    let text = vm.console_text();
    if let Some(new) = text.get(*shown..) {
        print!("{new}");
        let _ = std::io::stdout().flush();
        *shown = text.len();
    }
}

fn attach(vm: &mut Vm, a: &Args, vol: &Path) {
    match a.bus.as_str() {
        "virtio" => vm.hotplug_image("virtio-blk-pci", vol, "qcow2", &a.serial, ""),
        "scsi" => vm.hotplug_image("scsi-hd", vol, "qcow2", &a.serial, r#","bus":"tryscsi.0""#),
        _ => vm.hotplug_image("nvme", vol, "qcow2", &a.serial, ""),
    }
}

fn main() {
    let a = parse_args();
    let qemu = match a.arch {
        Arch::X86_64 => ("qemu-system-x86_64", "qemu-system-x86"),
        Arch::Aarch64 => ("qemu-system-aarch64", "qemu-system-arm"),
    };
    if Command::new(qemu.0).arg("--version").output().is_err() {
        eprintln!(
            "try: {} is not installed: apt-get install {}",
            qemu.0, qemu.1
        );
        std::process::exit(2)
    }
    let kernel = a.kernel.clone().unwrap_or_else(|| a.arch.kernel());
    if !kernel.exists() {
        eprintln!(
            "try: no kernel at {}: run scripts/setup (it fetches Debian's cloud kernel) or give --kernel PATH",
            kernel.display()
        );
        std::process::exit(2)
    }
    check_image("volume", &a.volume);
    if let Some(b) = &a.boot {
        check_image("boot disk", b);
    }
    if let Some(i) = &a.initramfs
        && let Err(e) = std::fs::metadata(i)
    {
        eprintln!("try: initramfs {}: {e}", i.display());
        std::process::exit(2)
    }

    let s = Scratch::new("try");
    let vol = overlay(&s.0, &a.volume, "volume");
    let boot = a.boot.as_ref().map(|b| overlay(&s.0, b, "boot"));
    let tty = if a.arch == Arch::Aarch64 {
        "ttyAMA0"
    } else {
        "ttyS0"
    };
    let root = a.boot.as_deref().map(root_of);
    // `loglevel=7` last: even with `quiet`, pivot-init's lines reach the
    // console, where try reads its verdict.
    let cmdline = match &root {
        Some(r) => format!(
            "console={tty} panic=-1 root={r} rootwait rw {} loglevel=7",
            a.cmdline
        ),
        None => format!("console={tty} panic=-1 {} loglevel=7", a.cmdline),
    };
    let mut qemu_args = Vec::new();
    if a.bus == "scsi" {
        qemu_args.extend([
            "-device".to_string(),
            "virtio-scsi-pci,id=tryscsi".to_string(),
        ]);
    }
    println!(
        "try: booting {} under QEMU (TCG): {cmdline}",
        a.boot
            .as_ref()
            .or(a.initramfs.as_ref())
            .map_or(String::new(), |p| p.display().to_string())
    );
    let mut vm = Vm::start(
        &s,
        &Boot {
            disk: boot.as_deref(),
            disk_format: Some("qcow2"),
            initrd: a.initramfs.as_deref(),
            cmdline: &cmdline,
            replace_cmdline: true,
            kernel: Some(&kernel),
            qemu_args,
            arch: a.arch,
            ..Boot::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let mut shown = 0;
    let mut attached: Option<Instant> = None;
    let mut waiting_since: Option<Instant> = None;
    let verdict = loop {
        stream(&vm, &mut shown);
        let text = vm.console_text();
        // At boot: as soon as the boot disk's controller is up (the volume
        // then gets the next name), so pivot-init finds it present.
        let boot_ready =
            a.boot.is_none() || text.contains("nvme nvme0: ") || text.contains("Run /");
        if attached.is_none() && a.attach_after.is_none() && boot_ready {
            attach(&mut vm, &a, &vol);
            attached = Some(Instant::now());
        }
        if waiting_since.is_none() && text.contains("pivot-init: waiting for ") {
            waiting_since = Some(Instant::now());
        }
        if let (None, Some(after), Some(since)) = (attached, a.attach_after, waiting_since)
            && since.elapsed() >= Duration::from_secs(after)
        {
            println!(
                "\ntry: attaching the volume ({} bus, serial {})",
                a.bus, a.serial
            );
            attach(&mut vm, &a, &vol);
            attached = Some(Instant::now());
        }
        if let Some(line) = text.lines().find(|l| l.contains("pivot-init: FAILED at ")) {
            let rest = line.split("pivot-init: ").nth(1).unwrap_or(line).trim_end();
            break (1, format!("try: pivot-init {rest}"));
        }
        if text.contains("pivot-init: switched to ") {
            let ms = attached.map_or(0, |t| t.elapsed().as_millis());
            // The volume's init: a line after the summary line that is not
            // the kernel's (those start with a `[ seconds]` stamp).
            let after_summary = |t: &str| {
                t.split("pivot-init: switched to ")
                    .nth(1)
                    .and_then(|rest| rest.split_once('\n'))
                    .is_some_and(|(_, more)| {
                        more.lines()
                            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('['))
                    })
            };
            let until = Instant::now() + Duration::from_secs(10);
            while !after_summary(&vm.console_text()) && Instant::now() < until && !vm.exited() {
                std::thread::sleep(Duration::from_millis(50));
            }
            stream(&vm, &mut shown);
            let init = if after_summary(&vm.console_text()) {
                "the volume's init printed its first line"
            } else {
                "the volume's init printed nothing within 10 s"
            };
            break (
                0,
                format!(
                    "try: pivoted onto {} in {ms} ms after attach; {init}",
                    a.volume.display()
                ),
            );
        }
        if vm.exited() || Instant::now() > deadline {
            stream(&vm, &mut shown);
            let t = vm.console_text();
            let msg = if t.contains("pivot-init: ") {
                format!(
                    "try: pivot-init did not finish within {} s (--timeout)",
                    a.timeout
                )
            } else {
                "try: no pivot-init lines (is it /sbin/init?)".to_string()
            };
            break (1, msg);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("\n{}", verdict.1);
    if a.keep_running {
        println!("try: --keep-running: the guest goes on; Ctrl-C ends it");
        while !vm.exited() {
            stream(&vm, &mut shown);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    drop(vm);
    drop(s);
    std::process::exit(verdict.0)
}
