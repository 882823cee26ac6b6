//! Groundwork for issue 23 (`pivot.kexec`), without pivot-init: the boot
//! disk's /sbin/init is a busybox script (the "kexec-er") that finds the
//! volume by filesystem UUID, mounts it read-only, reads its boot entry (a BLS
//! entry, else Debian's /vmlinuz and /initrd.img links) and runs the C
//! prototype harness/kexec-proto.c, which loads the volume's kernel with
//! kexec_file_load, unmounts the volume and reboots into it. The kexec'd
//! kernel boots the volume with the harness's small initramfs (root=UUID=)
//! and the volume's init reports what it sees. This proves the harness
//! pieces ([`KexecVolume`], [`kexec_initramfs`], [`kexec_proto`]) end to end;
//! the tests of the feature will replace the script with pivot-init.
//! (x86_64 only: the arm64 test kernel has no kexec_file_load.)

use std::time::Duration;

use pivot_harness::*;

/// The kexec-er: waits for UUID=`uuid`, mounts it on /new-root read-only,
/// takes the first BLS entry (or the Debian links with `fallback_options`)
/// and kexecs; if that returns, unmounts and runs the old init.
fn kexecer_script(uuid: &str, fallback_options: &str) -> String {
    format!(
        "{SCRIPT_HEAD}mount -t proc proc /proc\nmount -t sysfs sysfs /sys\n\
         mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev\n\
         echo \"kexecer: waiting for UUID={uuid}\" > /dev/console\n\
         i=0\n\
         while ! dev=$(findfs UUID={uuid} 2>/dev/null); do\n\
         \x20 i=$((i + 1)); [ $i -le 1200 ] || {{ m \"KEXECER no volume\"; exec /sbin/init.old; }}; sleep 0.1\n\
         done\n\
         m \"KEXECER volume $dev\"\n\
         mount -t ext4 -o ro $dev /new-root || exec /sbin/init.old\n\
         entry=$(ls /new-root/boot/loader/entries/*.conf 2>/dev/null | head -n1)\n\
         if [ -n \"$entry\" ]; then\n\
         \x20 while read k v; do case $k in linux) kernel=$v;; initrd) initrd=$v;; options) options=$v;; esac; done < $entry\n\
         else\n\
         \x20 kernel=/vmlinuz; initrd=/initrd.img; options=\"{fallback_options}\"\n\
         fi\n\
         m \"KEXECER entry kernel=$kernel initrd=$initrd options=$options\"\n\
         /bin/kexec-proto -u /new-root /new-root$kernel /new-root$initrd \"$options\" > /dev/ttyS1 2>&1\n\
         m \"KEXECER kexec failed\"\n\
         umount /new-root 2>/dev/null\n\
         exec /sbin/init.old\n"
    )
}

/// A boot disk with the kexec-er as /sbin/init, kexec-proto, and the old
/// init (`OLD-INIT` markers) at /sbin/init.old.
fn kexecer_disk(s: &Scratch, vol: &KexecVolume) -> std::path::PathBuf {
    let tree = plain_boot_tree(s.0.join("boot-tree"), "/sbin/init.old");
    tree.file(
        "/sbin/init",
        kexecer_script(&vol.uuid, &vol.options("kexec.marker=links")).as_bytes(),
        0o755,
    )
    .copy("/bin/kexec-proto", &kexec_proto(s), 0o755)
    .symlink("/bin/findfs", "busybox")
    .mkdir("/new-root");
    BootDisk { tree }.image(s)
}

/// Asserts what the volume's init saw on the kexec'd kernel.
fn assert_kexec_boot(console: &str, m: &str, id: &str, cmdline: &str) {
    assert!(
        lines_with(m, "KEXEC load result=0 ms=").len() == 1,
        "kexec_file_load loaded the volume's kernel:\n{m}\n{console}"
    );
    assert!(
        lines_with(m, "KEXEC umount /new-root result=0 ").len() == 1,
        "the volume was unmounted before the reboot:\n{m}"
    );
    assert_line(
        m,
        &format!("KEXEC-VOLUME-INIT id={id} pid=1"),
        "the volume's init is PID 1 of the kexec'd kernel",
        console,
    );
    assert_line(
        m,
        &format!("KEXEC-CMDLINE {cmdline}"),
        "the kexec'd kernel's command line is the entry's",
        console,
    );
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
}

/// The volume is there at boot; its BLS entry names the kernel, a
/// dracut-named initramfs and options with a marker. The kexec'd kernel runs
/// the volume's init as PID 1 with exactly those options.
#[test]
fn kexec_bls_entry_volume_at_boot() {
    let s = Scratch::new("kexec-bls");
    let mut vol = KexecVolume::new(&s, "k1");
    vol.dracut_initrd_name()
        .bls_entry("test-k1", "kexec.marker=bls-k1");
    let img = vol.image(&s, "vol.img");
    let boot = kexecer_disk(&s, &vol);
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &img,
            serial: "kexecvol",
        }],
        "pivot.kexec=on",
    );
    let (console, m) = vm.wait_exit();
    assert_line(
        &m,
        &format!(
            "KEXECER entry kernel=/boot/vmlinuz-{r} initrd=/boot/initramfs-{r}.img options={}",
            vol.options("kexec.marker=bls-k1"),
            r = vol.release
        ),
        "the kexec-er read the BLS entry",
        &console,
    );
    assert_kexec_boot(&console, &m, "k1", &vol.options("kexec.marker=bls-k1"));
    assert!(
        !lines_with(&m, "KEXEC-CMDLINE ")[0].contains("pivot."),
        "no pivot. key reaches the volume's kernel: {m}"
    );
    eprintln!("{}", kexec_timing(&console, &m, &vm));
}

/// Debian's links and no BLS entry; the volume is hot-plugged 3 s after the
/// kexec-er started waiting. After the kexec the new kernel finds the
/// hot-plugged controller again at boot, and the initramfs finds the volume
/// by UUID whatever its name is now.
#[test]
fn kexec_debian_links_volume_hotplugged() {
    let s = Scratch::new("kexec-links");
    let vol = KexecVolume::new(&s, "k2");
    vol.debian_links();
    let img = vol.image(&s, "vol.img");
    let boot = kexecer_disk(&s, &vol);
    let mut vm = Vm::boot(&s, &boot, &[], "");
    vm.wait_console(&format!("kexecer: waiting for UUID={}", vol.uuid));
    std::thread::sleep(Duration::from_secs(3));
    vm.hotplug_nvme(&Disk {
        image: &img,
        serial: "latevol",
    });
    let (console, m) = vm.wait_exit();
    assert_line(
        &m,
        &format!(
            "KEXECER entry kernel=/vmlinuz initrd=/initrd.img options={}",
            vol.options("kexec.marker=links")
        ),
        "the kexec-er took the Debian links",
        &console,
    );
    assert_line(
        &m,
        "KEXECER volume /dev/nvme1n1",
        "the hot-plugged volume in the first kernel",
        &console,
    );
    assert_kexec_boot(&console, &m, "k2", &vol.options("kexec.marker=links"));
    let found = lines_with(&m, "KINITRD found ");
    assert_eq!(found.len(), 1, "{m}");
    eprintln!("after the kexec: {}", found[0]);
    eprintln!("{}", kexec_timing(&console, &m, &vm));
}

/// The volume's kernel file is not a kernel (busybox, an ELF program):
/// kexec_file_load says ENOEXEC,
/// the kexec-er unmounts and the old init runs; the volume image is
/// byte-identical afterwards.
#[test]
fn kexec_not_a_kernel_old_init_runs() {
    let s = Scratch::new("kexec-notkernel");
    let vol = KexecVolume::new(&s, "k3");
    vol.bls_entry("test-k3", "");
    // An ELF program where the kernel should be (a file under 1 KiB would
    // be refused as "File is too short to be a bzImage", also ENOEXEC).
    vol.tree
        .copy(&vol.kernel_path(), &Arch::X86_64.busybox(), 0o644);
    let img = vol.image(&s, "vol.img");
    let before = std::fs::read(&img).unwrap();
    let boot = kexecer_disk(&s, &vol);
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &img,
            serial: "kexecvol",
        }],
        "",
    );
    let (console, m) = vm.wait_exit();
    assert!(
        lines_with(&m, "KEXEC load result=ENOEXEC(8) ").len() == 1,
        "kexec_file_load refuses a file that is not a kernel:\n{m}\n{console}"
    );
    assert_line(&m, "KEXECER kexec failed", "the kexec-er went on", &console);
    assert!(
        m.contains("OLD-INIT pid=1 root=boot-disk"),
        "the old init runs:\n{m}"
    );
    assert!(!m.contains("KEXEC-VOLUME-INIT"), "{m}");
    assert!(
        console.contains("kexec-bzImage64: Not a bzImage"),
        "{console}"
    );
    assert!(
        std::fs::read(&img).unwrap() == before,
        "the volume is byte-identical"
    );
}

/// One line on where the time went: the load, the reboot into the new
/// kernel (guest clocks) and the whole run (host wall time).
fn kexec_timing(console: &str, m: &str, vm: &Vm) -> String {
    let load = lines_with(m, "KEXEC load result=0 ms=")
        .first()
        .map_or("?".to_string(), |l| {
            l.rsplit('=').next().unwrap().to_string()
        });
    let uptime = lines_with(m, "KEXEC-UPTIME ")
        .first()
        .map_or("?".to_string(), |l| {
            l.split(' ').nth(1).unwrap().to_string()
        });
    let starting = lines_with(console, "kexec_core: Starting new kernel");
    format!(
        "kexec timing: load {load} ms; {}; the volume's init at {uptime} s of the new kernel; {:.1} s from QEMU start to power-off",
        starting.first().map_or("", |l| l.trim()),
        vm.started.elapsed().as_secs_f64()
    )
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
/// of a second disk: the errnos the implementation will meet.
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
