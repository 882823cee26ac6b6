//! Initramfs mode under QEMU: pivot-init as /init of an initramfs built by
//! scripts/mkinitramfs, with the Debian cloud kernel's modules.

use std::time::Duration;

use pivot_harness::*;

/// NVMe volume present at boot, chosen with the kernel's own `root=LABEL=`:
/// switch_root frees the initramfs (the /init binary among what is removed)
/// and the volume's init runs as PID 1 with /proc, /sys, /dev mounted.
#[test]
fn nvme_root_label_switch_root_frees_initramfs() {
    let s = Scratch::new("ird-nvme");
    let initrd = initramfs(&s, &[], &[]);
    let vol = volume_tree(s.0.join("vol"), "i1").ext4(&s.0.join("vol.img"), 16, "ivol");
    let mut vm = Vm::initramfs(
        &s,
        &initrd,
        &[Disk {
            image: &vol,
            serial: "ivol",
        }],
        // Debug lines on the console too: the pivot_root attempt is one.
        "root=LABEL=ivol rw pivot.loglevel=7 loglevel=8",
    );
    let (console, m) = vm.wait_exit();
    assert!(console.contains("(initramfs mode)"), "{console}");
    assert!(
        console.contains(
            "pivot-init: pivot_root refused on the initramfs (errno 22 (Invalid argument))"
        ),
        "{console}"
    );
    let freed = lines_with(
        &console,
        "pivot-init: switch_root: freed the initramfs, removed ",
    );
    assert_eq!(freed.len(), 1, "{console}");
    let kib: u64 = freed[0]
        .trim_end()
        .rsplit(", ")
        .next()
        .and_then(|t| t.strip_suffix(" KiB"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{}", freed[0]));
    let init_kib = std::fs::metadata(pivot_init_bin()).unwrap().len() / 1024;
    assert!(
        kib >= init_kib,
        "freed {kib} KiB, /init alone is {init_kib} KiB"
    );
    assert!(
        console.contains(
            "pivot-init: switched to /dev/nvme0n1 (ext4) by switch_root, moved /dev /proc /sys;"
        ),
        "{console}"
    );
    assert_line(&m, "VOLUME-INIT id=i1 pid=1 args=", "volume init", &console);
    for d in ["/proc", "/sys", "/dev"] {
        assert_line(
            &m,
            &format!("MOUNT {d} 1"),
            "mounts after switch_root",
            &console,
        );
    }
    assert_line(
        &m,
        "ROOTDEV /dev/nvme0n1 / ext4 rw,relatime 0 0",
        "root",
        &console,
    );
}

/// The smallest image (`--compress xz`: CRC32 check, x86 branch filter) is
/// one the kernel unpacks: the volume's init runs after switch_root.
#[test]
fn xz_initramfs_boots() {
    let s = Scratch::new("ird-xz");
    let initrd = initramfs_compressed(&s, "xz");
    let head = std::fs::read(&initrd).unwrap();
    assert!(head.starts_with(b"\xfd7zXZ\0"), "not an xz stream");
    let vol = volume_tree(s.0.join("vol"), "xz1").ext4(&s.0.join("vol.img"), 16, "xzvol");
    let mut vm = Vm::initramfs(
        &s,
        &initrd,
        &[Disk {
            image: &vol,
            serial: "xzvol",
        }],
        "root=LABEL=xzvol rw",
    );
    let (console, m) = vm.wait_exit();
    assert!(console.contains("(initramfs mode)"), "{console}");
    assert!(!console.contains("Initramfs unpacking failed"), "{console}");
    assert_line(
        &m,
        "VOLUME-INIT id=xz1 pid=1 args=",
        "volume init",
        &console,
    );
}

/// virtio-blk volume hot-plugged 3 s after boot; its drivers are modules
/// loaded by pivot-init (with their dependencies) before the wait.
#[test]
fn virtio_blk_hotplug_with_modules() {
    let s = Scratch::new("ird-virtio");
    let initrd = initramfs(&s, &["virtio_pci", "virtio_blk"], &[]);
    let vol = volume_tree(s.0.join("vol"), "vb").ext4(&s.0.join("vol.img"), 16, "vbvol");
    let mut vm = Vm::start(
        &s,
        &Boot {
            initrd: Some(&initrd),
            cmdline: "pivot.modules=virtio_pci,virtio_blk root=/dev/vda rw",
            ..Boot::default()
        },
    );
    vm.wait_console("pivot-init: waiting for /dev/vda");
    std::thread::sleep(Duration::from_secs(3));
    vm.hotplug(
        "virtio-blk-pci",
        &Disk {
            image: &vol,
            serial: "vbvol",
        },
    );
    let (console, m) = vm.wait_exit();
    for module in ["virtio", "virtio_ring", "virtio_pci", "virtio_blk"] {
        assert!(
            console.contains(&format!("pivot-init: loaded module {module}\n"))
                || console.contains(&format!("pivot-init: loaded module {module}\r")),
            "{module}: {console}"
        );
    }
    assert!(
        console.contains("pivot-init: vda (254:0) appeared after"),
        "{console}"
    );
    assert_line(&m, "VOLUME-INIT id=vb pid=1 args=", "volume init", &console);
}

/// No module named at all: the virtio-blk disk hot-plugged later gets its
/// drivers (virtio_pci, then virtio_blk) loaded from its uevents' MODALIAS.
#[test]
fn virtio_blk_hotplug_drivers_by_modalias() {
    let s = Scratch::new("ird-modalias");
    let initrd = initramfs(&s, &["virtio_pci", "virtio_blk"], &[]);
    let vol = volume_tree(s.0.join("vol"), "ma").ext4(&s.0.join("vol.img"), 16, "mavol");
    let mut vm = Vm::start(
        &s,
        &Boot {
            initrd: Some(&initrd),
            cmdline: "root=LABEL=mavol rw",
            ..Boot::default()
        },
    );
    vm.wait_console("pivot-init: waiting for LABEL=mavol");
    let before = vm.console_text();
    assert!(
        !before.contains("loaded module"),
        "nothing to load before the disk:\n{before}"
    );
    vm.hotplug(
        "virtio-blk-pci",
        &Disk {
            image: &vol,
            serial: "mavol",
        },
    );
    let (console, m) = vm.wait_exit();
    let pci = console
        .find("pivot-init: loaded module virtio_pci")
        .unwrap_or_else(|| panic!("{console}"));
    let blk = console
        .find("pivot-init: loaded module virtio_blk")
        .unwrap_or_else(|| panic!("{console}"));
    assert!(pci < blk, "the transport first");
    assert_line(&m, "VOLUME-INIT id=ma pid=1 args=", "volume init", &console);
}

/// The classic setup: a virtio-scsi controller with 16 disks; `root=8:240`
/// is /dev/sdp, found and booted.
#[test]
fn scsi_16_disks_root_8_240() {
    let s = Scratch::new("ird-scsi");
    let initrd = initramfs(&s, &["virtio_pci", "virtio_scsi", "sd_mod"], &[]);
    let mut args = vec![
        "-device".to_string(),
        "virtio-scsi-pci,id=scsi0".to_string(),
    ];
    for i in 0..16 {
        let img = volume_tree(s.0.join(format!("vol{i}")), &format!("scsi{i}")).ext4(
            &s.0.join(format!("sd{i}.img")),
            8,
            &format!("sd{i}"),
        );
        args.push("-drive".into());
        args.push(format!(
            "if=none,id=sd{i},format=raw,file={}",
            img.display()
        ));
        args.push("-device".into());
        args.push(format!(
            "scsi-hd,drive=sd{i},bus=scsi0.0,channel=0,scsi-id={i},lun=0"
        ));
    }
    let mut vm = Vm::start(
        &s,
        &Boot {
            initrd: Some(&initrd),
            qemu_args: args,
            // virtio_pci, the PCI transport, is in the image but not named:
            // coldplug loads it for the virtio-scsi controller.
            cmdline: "pivot.modules=virtio_scsi,sd_mod root=8:240 rootwait rw",
            ..Boot::default()
        },
    );
    let (console, m) = vm.wait_exit();
    assert!(
        console.contains("pivot-init: loaded module virtio_pci"),
        "{console}"
    );
    assert!(
        console.contains("pivot-init: coldplug: loaded "),
        "{console}"
    );
    assert!(
        console.contains("pivot-init: switched to /dev/sdp (ext4) by switch_root"),
        "{console}"
    );
    let init = lines_with(&m, "VOLUME-INIT id=scsi");
    assert_eq!(init.len(), 1, "{m}\n{console}");
    assert!(init[0].contains(" pid=1 "), "{}", init[0]);
    assert_line(
        &m,
        "ROOTDEV /dev/sdp / ext4 rw,relatime 0 0",
        "root is sdp",
        &console,
    );
}

fn module_fs_boot(
    name: &str,
    module: &str,
    make: impl Fn(&Tree, &std::path::Path) -> std::path::PathBuf,
) {
    let s = Scratch::new(name);
    let initrd = initramfs(&s, &[module], &[]);
    let tree = volume_tree(s.0.join("vol"), module);
    let img = make(&tree, &s.0.join("vol.img"));
    let mut vm = Vm::initramfs(
        &s,
        &initrd,
        &[Disk {
            image: &img,
            serial: "fsvol",
        }],
        &format!("pivot.modules={module} root=LABEL=modfs rw"),
    );
    let (console, m) = vm.wait_exit();
    assert!(
        console.contains(&format!("pivot-init: loaded module {module}")),
        "{console}"
    );
    assert!(
        console.contains(&format!(" LABEL=modfs) on /new-root as {module} (rw)")),
        "{console}"
    );
    assert_line(
        &m,
        &format!("VOLUME-INIT id={module} pid=1 args="),
        "volume init",
        &console,
    );
    let rootdev = lines_with(&m, "ROOTDEV ");
    assert!(
        rootdev.len() == 1 && rootdev[0].contains(&format!(" / {module} rw")),
        "{rootdev:?}"
    );
}

#[test]
fn xfs_volume_module_by_name() {
    module_fs_boot("ird-xfs", "xfs", |t, img| t.xfs(img, 300, "modfs"));
}

#[test]
fn btrfs_volume_module_by_name() {
    module_fs_boot("ird-btrfs", "btrfs", |t, img| t.btrfs(img, 128, "modfs"));
}

/// A module that does not exist: a clear error, and with no old init and no
/// shell in the initramfs, PID 1 says so and waits.
#[test]
fn unknown_module_fails_and_waits() {
    let s = Scratch::new("ird-nomod");
    let initrd = initramfs(&s, &["virtio_blk"], &[]);
    let mut vm = Vm::start(
        &s,
        &Boot {
            initrd: Some(&initrd),
            cmdline: "pivot.modules=no_such_module root=LABEL=x",
            ..Boot::default()
        },
    );
    vm.wait_console("pivot-init: nothing left to run; PID 1 waits");
    let console = vm.console_text();
    let failed = lines_with(&console, "pivot-init: FAILED at modules: ");
    assert_eq!(failed.len(), 1, "{console}");
    assert!(
        failed[0].trim_end().ends_with(
            "loading kernel modules failed: module no_such_module not found in modules.dep; action: wait"
        ),
        "{}",
        failed[0]
    );
    assert!(!console.contains("Kernel panic"), "{console}");
}

/// An init for another machine is refused before switch_root, while the
/// initramfs is still there to run the failure policy (no shell in this one:
/// PID 1 says so and waits); the volume is byte-identical.
#[test]
fn wrong_architecture_init_refused_before_switch_root() {
    let s = Scratch::new("ird-arch");
    let initrd = initramfs(&s, &[], &[]);
    let mut foreign = std::fs::read("/bin/busybox").unwrap();
    foreign[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
    let t = Tree::new(s.0.join("vol"));
    t.mkdir("/proc").mkdir("/sys").mkdir("/dev");
    t.file("/sbin/init", &foreign, 0o755);
    let vol = t.ext4(&s.0.join("vol.img"), 16, "ivol");
    let before = std::fs::read(&vol).unwrap();
    let mut vm = Vm::initramfs(
        &s,
        &initrd,
        &[Disk {
            image: &vol,
            serial: "ivol",
        }],
        "root=LABEL=ivol rw",
    );
    vm.wait_console("pivot-init: nothing left to run; PID 1 waits");
    let console = vm.console_text();
    let failed = lines_with(&console, "pivot-init: FAILED at check: ");
    assert_eq!(failed.len(), 1, "{console}");
    assert!(
        failed[0].trim_end().ends_with(
            "/sbin/init: an ELF binary for aarch64, but this machine runs x86_64; /etc/init: not found; \
             /bin/init: not found; /bin/sh: not found; action: wait"
        ),
        "{}",
        failed[0]
    );
    assert!(!console.contains("switch_root"), "{console}");
    drop(vm);
    assert!(
        std::fs::read(&vol).unwrap() == before,
        "the volume was changed"
    );
}
