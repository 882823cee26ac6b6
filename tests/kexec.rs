//! `pivot.kexec` under QEMU: pivot-init (the boot disk's /sbin/init) finds
//! the volume, mounts it read-only, reads its boot entry and boots the
//! volume's own kernel with kexec_file_load; that kernel's initramfs (the
//! harness's, which mounts root=UUID=) runs the volume's init, which reports
//! what it sees ([`kexec_volume_init_script`]). A volume whose kernel is
//! not one ends in the old init, the volume unchanged. The arm64 test
//! kernel has no kexec_file_load: the failure is said and the old init runs.
//! And what kexec_file_load itself says to each kind of input (through the
//! C prototype harness/kexec-proto.c), which the checks mirror.

use std::time::Duration;

use pivot_harness::*;

/// Asserts what the volume's init saw on the kexec'd kernel: PID 1, exactly
/// `cmdline` (no `pivot.` key), a fresh kernel log, loaded by kexec, the
/// volume as / read-only; two kernels on the console and no old init.
fn assert_kexec_boot(console: &str, m: &str, id: &str, cmdline: &str) {
    assert_line(
        m,
        &format!("KEXEC-VOLUME-INIT id={id} pid=1"),
        "the volume's init is PID 1 of the kexec'd kernel",
        console,
    );
    assert_line(
        m,
        &format!("KEXEC-CMDLINE {cmdline}"),
        "the kexec'd kernel's command line",
        console,
    );
    assert!(!cmdline.contains("pivot."), "{cmdline}");
    let dmesg1 = lines_with(m, "KEXEC-DMESG1 ");
    assert!(
        dmesg1.len() == 1 && dmesg1[0].starts_with("KEXEC-DMESG1 [    0.000000] Linux version "),
        "a fresh kernel log: {dmesg1:?}\n{console}"
    );
    // type_of_loader 0xd0: the kernel was started by kexec (QEMU's is 0xb0).
    assert_line(m, "KEXEC-LOADER 208", "booted by kexec", console);
    let root = lines_with(m, "KEXEC-ROOT ");
    assert!(
        root.len() == 1 && root[0].contains(" / ext4 ro,"),
        "the volume is / read-only: {root:?}"
    );
    assert!(!m.contains("OLD-INIT"), "the old init must not run:\n{m}");
    assert_eq!(
        lines_with(console, "] Linux version ").len(),
        2,
        "two kernels booted:\n{console}"
    );
    assert!(
        console.contains("kexec_core: Starting new kernel"),
        "{console}"
    );
    assert_eq!(
        lines_with(console, "pivot-init: FAILED").len(),
        0,
        "{console}"
    );
    assert_eq!(
        lines_with(console, "pivot-init: switched to").len(),
        0,
        "{console}"
    );
}

/// The volume is there at boot; its BLS entry names the kernel, a
/// dracut-named initramfs and options with a marker (and a console of its
/// own, so nothing of the running line is carried). The hook on the volume
/// does not run, and the log says so.
#[test]
fn kexec_bls_entry_volume_at_boot() {
    let s = Scratch::new("kexec-bls");
    let mut vol = KexecVolume::new(&s, "k1");
    vol.dracut_initrd_name()
        .bls_entry("test-k1", "kexec.marker=bls-k1");
    vol.tree.file(
        "/pre-pivot",
        b"#!/bin/sh\necho hook ran > /hook-ran\n",
        0o755,
    );
    let img = vol.image(&s, "vol.img");
    let before = std::fs::read(&img).unwrap();
    let boot = BootDisk::new(&s).image(&s);
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &img,
            serial: "kexecvol",
        }],
        &format!("pivot.root=UUID={} pivot.kexec=on", vol.uuid),
    );
    let (console, m) = vm.wait_exit();
    let options = vol.options("kexec.marker=bls-k1");
    let r = &vol.release;
    for want in [
        format!(
            "pivot-init: kexec: booting /boot/vmlinuz-{r} (release {r}; running {r}): BLS entry \
             test-k1, the only one"
        ),
        format!("pivot-init: kexec: kernel /boot/vmlinuz-{r} (bzImage, release {r})"),
        format!("pivot-init: kexec: initramfs /boot/initramfs-{r}.img ("),
        format!("pivot-init: kexec: command line (the entry's options): {options}"),
        "pivot-init: not running hook /new-root/pre-pivot: pivot.kexec boots the volume's own kernel".into(),
        "pivot-init: unmounted /new-root (the volume was not changed)".into(),
        "pivot-init: kexec: unmounted the volume, syncing and rebooting into its kernel; uevent to kexec ".into(),
    ] {
        assert_eq!(lines_with(&console, &want).len(), 1, "{want:?} in:\n{console}");
    }
    assert_kexec_boot(&console, &m, "k1", &options);
    // Nothing wrote to it: not pivot-init (read-only, no commit, no hook),
    // not the new boot (its initramfs mounts it read-only).
    assert!(
        std::fs::read(&img).unwrap() == before,
        "the volume is byte-identical"
    );
}

/// Debian's links and no BLS entry or /etc/kernel/cmdline: the line is
/// `root=UUID=<the volume's filesystem UUID> ro` with the running console
/// and earlycon. The volume is hot-plugged 3 s after pivot-init started
/// waiting; the new kernel finds the hot-plugged controller at boot.
/// Prints the time from the volume's uevent to the new kernel's first line.
#[test]
fn kexec_debian_links_volume_hotplugged() {
    let s = Scratch::new("kexec-links");
    let vol = KexecVolume::new(&s, "k2");
    vol.debian_links();
    let img = vol.image(&s, "vol.img");
    let boot = BootDisk::new(&s).image(&s);
    let earlycon = "earlycon=uart8250,io,0x3f8,115200";
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[],
        &format!("{earlycon} pivot.root=UUID={} pivot.kexec=on", vol.uuid),
    );
    vm.wait_console(&format!("pivot-init: waiting for UUID={}", vol.uuid));
    std::thread::sleep(Duration::from_secs(3));
    vm.hotplug_nvme(&Disk {
        image: &img,
        serial: "latevol",
    });
    let plugged = vm.started.elapsed();
    let (console, m, timed) = vm.wait_exit_timed();
    let line = format!("root=UUID={} ro console=ttyS0 {earlycon}", vol.uuid);
    let r = &vol.release;
    for want in [
        format!(
            "pivot-init: kexec: booting /vmlinuz (/boot/vmlinuz-{r}) (release {r}; running {r}): the link /vmlinuz"
        ),
        format!("pivot-init: kexec: initramfs /initrd.img (/boot/initrd.img-{r}) ("),
        format!(
            "pivot-init: kexec: command line (the volume's filesystem UUID, with console=ttyS0 \
             {earlycon} of the running kernel): {line}"
        ),
    ] {
        assert_eq!(
            lines_with(&console, &want).len(),
            1,
            "{want:?} in:\n{console}"
        );
    }
    assert!(
        console.contains("pivot-init: nvme1n1 (259:"),
        "the hot-plugged volume in the first kernel:\n{console}"
    );
    assert_kexec_boot(&console, &m, "k2", &line);
    eprintln!("{}", timing(&timed, plugged));
}

/// The time from the volume's uevent to the new kernel's first console
/// line: pivot-init's own `uevent to kexec` (the first kernel's clock), then
/// the host wall clock from its last line to the new kernel's first line
/// (the two kernels' printk clocks both start at zero; earlycon makes the
/// new kernel print at once).
fn timing(timed: &[(Duration, String)], plugged: Duration) -> String {
    let at = |needle: &str, nth: usize| {
        timed
            .iter()
            .filter(|(_, l)| l.contains(needle))
            .nth(nth)
            .unwrap_or_else(|| panic!("{needle:?} #{nth} on the console"))
            .clone()
    };
    let (t_jump, jump) = at("pivot-init: kexec: unmounted the volume", 0);
    let (t_first, _) = at("] Linux version ", 1);
    let (t_init, _) = at("Run /init as init process", 0);
    let uevent_ms: f64 = jump
        .split("uevent to kexec ")
        .nth(1)
        .and_then(|t| t.split(" ms").next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("the jump line: {jump}"));
    let (_, loaded) = at("pivot-init: kexec: loaded ", 0);
    let (t_starting, starting) = at("kexec_core: Starting new kernel", 0);
    // `[    8.768461] ...`: the first kernel's printk clock, in ms.
    let stamp = |l: &str| -> f64 {
        l.trim_start_matches('[')
            .split(']')
            .next()
            .and_then(|t| t.trim().parse::<f64>().ok())
            .map_or(f64::NAN, |s| s * 1000.0)
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "kexec timing: uevent to the jump {uevent_ms:.0} ms (first kernel's clock; {}); jump to \
         `Starting new kernel` {:.0} ms (first kernel's clock: devices shut down); to the new \
         kernel's first line {:.0} ms (host clock on console lines); jump to the new kernel's \
         first line {:.0} ms (host); uevent to the new kernel's first line {:.0} ms; hot-plug \
         (QMP) to it {:.0} ms (host); the new kernel to running its initramfs {:.0} ms (host)",
        loaded.split_once("kexec: ").map_or("", |(_, l)| l),
        stamp(&starting) - stamp(&jump),
        ms(t_first - t_starting),
        ms(t_first - t_jump),
        uevent_ms + ms(t_first - t_jump),
        ms(t_first - plugged),
        ms(t_init - t_first)
    )
}

/// A kernel file that is not a kernel (an ELF program) or a bzImage cut
/// short (which kexec_file_load itself would take: it reads only the
/// header): refused before anything changes, the old init runs, and the
/// volume image is byte-identical.
#[test]
fn kexec_not_a_kernel_old_init_runs() {
    let kernel = std::fs::read(Arch::X86_64.kernel()).unwrap();
    let setup_sects = match kernel[0x1f1] {
        0 => 4,
        n => u64::from(n),
    };
    let syssize = u64::from(u32::from_le_bytes(kernel[0x1f4..0x1f8].try_into().unwrap()));
    let whole = (setup_sects + 1) * 512 + syssize * 16;
    let cases: [(&str, Vec<u8>, String); 2] = [
        (
            "elf",
            std::fs::read(Arch::X86_64.busybox()).unwrap(),
            "it is an ELF file (a program, or an unpacked vmlinux), not a kernel image".into(),
        ),
        (
            "cut",
            kernel[..1 << 20].to_vec(),
            format!("it is cut short: 1048576 bytes, but its header says it holds {whole}"),
        ),
    ];
    for (name, bytes, why) in cases {
        let s = Scratch::new(&format!("kexec-notkernel-{name}"));
        let vol = KexecVolume::new(&s, "k3");
        vol.bls_entry("test-k3", "");
        vol.tree.file(&vol.kernel_path(), &bytes, 0o644);
        let img = vol.image(&s, "vol.img");
        let before = std::fs::read(&img).unwrap();
        let boot = BootDisk::new(&s).image(&s);
        let mut vm = Vm::boot(
            &s,
            &boot,
            &[Disk {
                image: &img,
                serial: "kexecvol",
            }],
            &format!("pivot.root=UUID={} pivot.kexec=on", vol.uuid),
        );
        let (console, m) = vm.wait_exit();
        let failed = format!(
            "pivot-init: FAILED at kexec: {} is not a kernel this machine can boot: {why}; \
             action: oldinit /sbin/init.old",
            vol.kernel_path()
        );
        assert_eq!(
            lines_with(&console, &failed).len(),
            1,
            "{name}: {failed:?} in:\n{console}"
        );
        assert!(
            console.contains("pivot-init: unmounted /new-root (the volume was not changed)"),
            "{name}: {console}"
        );
        assert!(
            m.contains("OLD-INIT pid=1 root=boot-disk"),
            "{name}: the old init runs:\n{m}"
        );
        assert!(!m.contains("KEXEC-VOLUME-INIT"), "{m}");
        assert!(!console.contains("Starting new kernel"), "{console}");
        assert!(
            std::fs::read(&img).unwrap() == before,
            "{name}: the volume is byte-identical"
        );
    }
}

/// `pivot.kexec=auto` with an entry of the running release: pivot-init
/// pivots onto the volume as without kexec (the volume's init runs on this
/// kernel, loaded by QEMU, with the volume committed read-write).
#[test]
fn kexec_auto_same_release_pivots() {
    let s = Scratch::new("kexec-auto");
    let vol = KexecVolume::new(&s, "k4");
    vol.bls_entry("test-k4", "kexec.marker=auto");
    let img = vol.image(&s, "vol.img");
    let boot = BootDisk::new(&s).image(&s);
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &img,
            serial: "kexecvol",
        }],
        &format!("pivot.root=UUID={} pivot.kexec=auto", vol.uuid),
    );
    let (console, m) = vm.wait_exit();
    let r = &vol.release;
    let want = format!(
        "pivot-init: pivot.kexec=auto: /boot/vmlinuz-{r} (BLS entry test-k4, the only one) is \
         the running release {r}; pivoting on the running kernel"
    );
    assert_eq!(
        lines_with(&console, &want).len(),
        1,
        "{want:?} in:\n{console}"
    );
    assert_line(
        &m,
        "KEXEC-VOLUME-INIT id=k4 pid=1",
        "the volume's init",
        &console,
    );
    assert_line(
        &m,
        "KEXEC-LOADER 176",
        "on the kernel QEMU loaded",
        &console,
    );
    let root = lines_with(&m, "KEXEC-ROOT ");
    assert!(
        root.len() == 1 && root[0].contains(" / ext4 rw"),
        "the volume is / read-write: {root:?}"
    );
    assert_eq!(
        lines_with(&console, "] Linux version ").len(),
        1,
        "{console}"
    );
    assert_eq!(
        lines_with(&console, "pivot-init: switched to /dev/nvme").len(),
        1,
        "{console}"
    );
}

/// arm64: the test kernel (Debian 6.1 cloud) has no CONFIG_KEXEC_FILE, so
/// kexec_file_load says ENOSYS. pivot.kexec=on finds and checks the entry
/// (an uncompressed Image), then fails saying so, and the old init runs.
#[test]
fn arm64_kexec_without_kexec_file_load_falls_back() {
    const ARM: Arch = Arch::Aarch64;
    assert_eq!(
        kernel_config(ARM, "CONFIG_KEXEC_FILE"),
        None,
        "the arm64 test kernel now has kexec_file_load: boot the volume by kexec here"
    );
    let s = Scratch::new("kexec-arm64");
    let vol = KexecVolume::new_for(ARM, &s, "ka");
    vol.bls_entry("test-ka", "kexec.marker=arm64");
    let img = vol.image(&s, "vol.img");
    let before = std::fs::read(&img).unwrap();
    let boot = BootDisk::new_for(ARM, &s).image(&s);
    let mut vm = Vm::start(
        &s,
        &Boot {
            disk: Some(&boot),
            nvme: &[Disk {
                image: &img,
                serial: "kexecvol",
            }],
            cmdline: &format!("pivot.root=UUID={} pivot.kexec=on", vol.uuid),
            arch: ARM,
            ..Boot::default()
        },
    );
    let (console, m) = vm.wait_exit();
    let r = &vol.release;
    for want in [
        format!("pivot-init: kexec: kernel /boot/vmlinuz-{r} (arm64 Image, release {r})"),
        format!(
            "pivot-init: FAILED at kexec: kexec_file_load of /boot/vmlinuz-{r} with \
             /boot/initrd.img-{r} failed: this kernel cannot load a kernel from a file (no \
             CONFIG_KEXEC_FILE; errno 38 (Function not implemented)); action: oldinit /sbin/init.old"
        ),
    ] {
        assert_eq!(
            lines_with(&console, &want).len(),
            1,
            "{want:?} in:\n{console}"
        );
    }
    assert!(
        m.contains("OLD-INIT pid=1 root=boot-disk"),
        "the old init runs:\n{m}"
    );
    assert!(
        std::fs::read(&img).unwrap() == before,
        "the volume is byte-identical"
    );
}

/// A copy of the bzImage `src` without its Authenticode signature: the PE
/// certificate table entry (data directory 4 of the PE32+ optional header)
/// zeroed and the signature cut off the end.
fn strip_signature(src: &std::path::Path, dst: &std::path::Path) {
    let mut k = std::fs::read(src).unwrap();
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let pe = le32(&k, 0x3c);
    assert_eq!(&k[pe..pe + 4], b"PE\0\0", "a PE header at {pe:#x}");
    let opt = pe + 24;
    assert_eq!(k[opt..opt + 2], [0x0b, 0x02], "a PE32+ optional header");
    let dir = opt + 112 + 4 * 8;
    let (at, len) = (le32(&k, dir), le32(&k, dir + 4));
    assert!(
        len > 0 && at + len == k.len(),
        "the signature ends the file"
    );
    k[dir..dir + 8].fill(0);
    k.truncate(at);
    std::fs::write(dst, k).unwrap();
}

/// The test kernels' configs: kexec_file_load on x86_64, not on arm64 (there
/// the syscall fails with ENOSYS; only the older kexec_load is built in).
#[test]
fn kexec_file_in_test_kernels() {
    assert_eq!(
        kernel_config(Arch::X86_64, "CONFIG_KEXEC_FILE").as_deref(),
        Some("y")
    );
    assert_eq!(kernel_config(Arch::Aarch64, "CONFIG_KEXEC_FILE"), None);
    assert_eq!(
        kernel_config(Arch::Aarch64, "CONFIG_KEXEC").as_deref(),
        Some("y")
    );
}

/// What kexec_file_load (6.1, x86_64) says to each kind of input, from a
/// boot disk whose init runs `kexec-proto -n` (load, then unload) on files
/// of a second disk: the errnos pivot-init explains, and why it checks a
/// bzImage's length and the command line's itself (the kernel takes a
/// truncated bzImage, and refuses a long line only with EINVAL).
#[test]
fn kexec_file_load_errnos() {
    let s = Scratch::new("kexec-errnos");
    let kernel = Arch::X86_64.kernel();
    let files = Tree::new(s.0.join("files"));
    let full = std::fs::read(&kernel).unwrap();
    let arm64 = std::fs::read(Arch::Aarch64.kernel()).unwrap_or_default();
    files
        .copy("/vmlinuz", &kernel, 0o644)
        .file("/truncated", &full[..1 << 20], 0o644)
        .file("/short", &full[..100], 0o644)
        .file("/arm64-head", &arm64[..arm64.len().min(64 << 10)], 0o644)
        .copy("/elf", &Arch::X86_64.busybox(), 0o644)
        .file("/empty", b"", 0o644)
        .mkdir("/dir");
    strip_signature(&kernel, &files.path("/unsigned"));
    kexec_initramfs(Arch::X86_64, &files.path("/initrd"));
    let files_img = files.ext4(&s.0.join("files.img"), 64, "kfiles");

    let tree = plain_boot_tree(s.0.join("boot-tree"), "/sbin/init.old");
    let probes = [
        ("elf", "/k/elf /k/initrd"),
        ("short", "/k/short /k/initrd"),
        ("arm64-head", "/k/arm64-head /k/initrd"),
        ("kernel-dir", "/k/dir /k/initrd"),
        ("initrd-dir", "/k/vmlinuz /k/dir"),
        ("initrd-empty", "/k/vmlinuz /k/empty"),
        ("no-nul", "-z /k/vmlinuz -"),
        ("len2016", "-s 2016 /k/vmlinuz -"),
        ("len2017", "-s 2017 /k/vmlinuz -"),
        ("len2047", "-s 2047 /k/vmlinuz -"),
        ("len2048", "-s 2048 /k/vmlinuz -"),
        ("truncated", "/k/truncated -"),
        ("unsigned", "/k/unsigned /k/initrd"),
        ("signed", "/k/vmlinuz /k/initrd"),
    ];
    let mut init = format!(
        "{SCRIPT_HEAD}mount -t proc proc /proc\nmount -t sysfs sysfs /sys\n\
         mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev\n\
         mkdir -p /k\n\
         i=0; while ! dev=$(findfs LABEL=kfiles 2>/dev/null); do i=$((i + 1)); [ $i -le 600 ] || break; sleep 0.1; done\n\
         mount -t ext4 -o ro $dev /k\n"
    );
    for (name, args) in probes {
        init.push_str(&format!(
            "m \"T {name} $(/bin/kexec-proto -n {args} 'console=ttyS0' 2>&1 | grep 'KEXEC load')\"\n"
        ));
    }
    init.push_str(
        "m \"T reboot-unloaded $(/bin/kexec-proto -R /k/vmlinuz - x 2>&1 | grep 'KEXEC reboot result')\"\n\
         m END\nsync\npoweroff -f\n",
    );
    tree.file("/sbin/init", init.as_bytes(), 0o755)
        .copy("/bin/kexec-proto", &kexec_proto(&s), 0o755)
        .symlink("/bin/findfs", "busybox")
        .symlink("/bin/mkdir", "busybox");
    let boot = BootDisk { tree }.image(&s);
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &files_img,
            serial: "kfiles",
        }],
        "",
    );
    let (console, m) = vm.wait_exit();
    let expect = [
        // Not a bzImage: the only x86_64 loader's probe refuses it.
        ("elf", "ENOEXEC(8)"),
        ("short", "ENOEXEC(8)"),
        ("arm64-head", "ENOEXEC(8)"),
        // kernel_read_file: not a regular file, or empty.
        ("kernel-dir", "EINVAL(22)"),
        ("initrd-dir", "EINVAL(22)"),
        ("initrd-empty", "EINVAL(22)"),
        // The command line's last byte must be its NUL.
        ("no-nul", "EINVAL(22)"),
        // Length with the NUL + 30 (room for "elfcorehdr=0x...") must not
        // exceed the header's cmdline_size (2047): at most 2016 characters.
        ("len2016", "0"),
        ("len2017", "EINVAL(22)"),
        ("len2047", "EINVAL(22)"),
        ("len2048", "EINVAL(22)"),
        // Only the header is checked: a truncated bzImage loads.
        ("truncated", "0"),
        // KEXEC_SIG without _FORCE and no lockdown: signatures are not needed.
        ("unsigned", "0"),
        ("signed", "0"),
    ];
    for (name, result) in expect {
        let want = format!("T {name} KEXEC load result={result} ms=");
        assert!(
            lines_with(&m, &want).len() == 1,
            "{name}: expected {want:?}:\n{m}\n{console}"
        );
    }
    assert!(
        lines_with(&m, "T reboot-unloaded KEXEC reboot result=EINVAL(22) ms=").len() == 1,
        "reboot(KEXEC) with nothing loaded returns EINVAL:\n{m}"
    );
    assert_line(&m, "END", "all probes ran", &console);
    for msg in [
        "kexec-bzImage64: Not a bzImage",
        "kexec-bzImage64: File is too short to be a bzImage",
        "kexec-bzImage64: Kernel command line too long",
        "PEFILE: Unsigned PE binary",
    ] {
        assert!(
            console.contains(msg),
            "{msg:?} in the kernel log:\n{console}"
        );
    }
    assert!(!console.contains("Starting new kernel"), "{console}");
}
