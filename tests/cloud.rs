//! Where clouds really are, under QEMU: virtio disks present at boot with
//! drivers from the initramfs, module parameters, /dev/disk/by-* names,
//! attach names (NVMe Identify), SCSI LUNs, and two volumes that match.

use std::path::PathBuf;

use pivot_harness::*;

/// QEMU arguments for a virtio-blk disk present at boot.
fn virtio_blk(id: &str, img: &std::path::Path, serial: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("if=none,id={id},format=raw,file={}", img.display()),
        "-device".into(),
        format!("virtio-blk-pci,drive={id},serial={serial}"),
    ]
}

/// QEMU arguments for a virtio-scsi controller and disks at the given LUNs.
fn scsi_luns(disks: &[(&std::path::Path, u32)]) -> Vec<String> {
    let mut args = vec![
        "-device".to_string(),
        "virtio-scsi-pci,id=scsi0".to_string(),
    ];
    for (i, (img, lun)) in disks.iter().enumerate() {
        args.push("-drive".into());
        args.push(format!(
            "if=none,id=sd{i},format=raw,file={}",
            img.display()
        ));
        args.push("-device".into());
        args.push(format!(
            "scsi-hd,drive=sd{i},bus=scsi0.0,channel=0,scsi-id=0,lun={lun},serial=lun{lun}"
        ));
    }
    args
}

fn volume(s: &Scratch, id: &str, label: &str) -> PathBuf {
    volume_tree(s.0.join(id), id).ext4(&s.0.join(format!("{id}.img")), 16, label)
}

fn boots(console: &str, m: &str, id: &str) {
    assert_line(
        m,
        &format!("VOLUME-INIT id={id} pid=1 args="),
        "the volume's init",
        console,
    );
}

/// The most common VM layout: a virtio-blk disk present from the start,
/// drivers only in the initramfs, none named on the command line. The
/// virtio device that virtio_pci creates is announced after coldplug loaded
/// virtio_pci; the socket subscribed before coldplug sees it, and the wait
/// loads virtio_blk for it.
#[test]
fn virtio_blk_present_at_boot_with_image_modules() {
    let s = Scratch::new("cloud-vblk");
    let initrd = initramfs(&s, &["virtio_pci", "virtio_blk"], &[]);
    let vol = volume(&s, "vb", "vblk");
    let mut vm = Vm::start(
        &s,
        &Boot {
            initrd: Some(&initrd),
            qemu_args: virtio_blk("v0", &vol, "vvol"),
            cmdline: "root=LABEL=vblk rw",
            ..Boot::default()
        },
    );
    let (console, m) = vm.wait_exit();
    assert!(
        console.contains("pivot-init: loaded module virtio_blk"),
        "{console}"
    );
    boots(&console, &m, "vb");
}

/// The same for virtio-scsi: the controller's driver by coldplug, sd_mod
/// for the disk the controller then finds.
#[test]
fn virtio_scsi_present_at_boot_with_image_modules() {
    let s = Scratch::new("cloud-vscsi");
    let initrd = initramfs(&s, &["virtio_pci", "virtio_scsi", "sd_mod"], &[]);
    let vol = volume(&s, "vs", "vscsi");
    let mut vm = Vm::start(
        &s,
        &Boot {
            initrd: Some(&initrd),
            qemu_args: scsi_luns(&[(&vol, 0)]),
            cmdline: "root=LABEL=vscsi rw",
            ..Boot::default()
        },
    );
    let (console, m) = vm.wait_exit();
    assert!(
        console.contains("pivot-init: loaded module sd_mod"),
        "{console}"
    );
    boots(&console, &m, "vs");
}

/// A module parameter reaches the module: from the command line (a dash in
/// the module name, as modprobe allows), and from a modprobe.d `options`
/// line put in the image; the command line wins. A softdep loads first.
#[test]
fn module_parameters_and_softdeps() {
    let s = Scratch::new("cloud-params");
    let conf = s.0.join("modprobe.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("test.conf"),
        "options virtio_blk queue_depth=32 poll_queues=0\nsoftdep virtio_blk pre: crc-itu-t\n",
    )
    .unwrap();
    let initrd = initramfs_with_modprobe(&s, &["virtio_pci", "virtio_blk"], &[], &conf);
    let t = volume_tree(s.0.join("vp"), "vp");
    t.file("/etc/params", b"virtio_blk/parameters/queue_depth\n", 0o644);
    let vol = t.ext4(&s.0.join("vp.img"), 16, "vparams");
    for (extra, want) in [("", "32"), (" virtio-blk.queue_depth=64", "64")] {
        let s2 = Scratch::new(&format!("cloud-params{}", want));
        let mut vm = Vm::start(
            &s2,
            &Boot {
                initrd: Some(&initrd),
                qemu_args: virtio_blk("v0", &vol, "vvol"),
                cmdline: &format!("root=LABEL=vparams rw{extra}"),
                ..Boot::default()
            },
        );
        let (console, m) = vm.wait_exit();
        boots(&console, &m, "vp");
        assert_line(
            &m,
            &format!("PARAM virtio_blk/parameters/queue_depth={want}"),
            "the parameter",
            &console,
        );
        let soft = console.find("pivot-init: loaded module crc_itu_t");
        let blk = console.find("pivot-init: loaded module virtio_blk (");
        assert!(
            soft.is_some() && blk.is_some() && soft < blk,
            "the softdep loads first:\n{console}"
        );
    }
}

/// `root=/dev/disk/by-uuid/...` in initramfs mode.
#[test]
fn by_uuid_in_initramfs_mode() {
    let s = Scratch::new("cloud-byuuid");
    let initrd = initramfs(&s, &[], &[]);
    let uuid = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
    let vol = volume_tree(s.0.join("bu"), "bu").ext4_args(
        &s.0.join("bu.img"),
        16,
        &["-L", "byuuid", "-U", uuid],
    );
    let mut vm = Vm::initramfs(
        &s,
        &initrd,
        &[Disk {
            image: &vol,
            serial: "byuuid",
        }],
        &format!("root=/dev/disk/by-uuid/{uuid} rw"),
    );
    let (console, m) = vm.wait_exit();
    boots(&console, &m, "bu");
}

/// `pivot.root=/dev/disk/by-id/nvme-MODEL_SERIAL` in a machine image, and
/// `/dev/disk/by-label/` with a label that needs udev's `\x20`.
#[test]
fn by_id_and_escaped_by_label_in_image_mode() {
    for (name, spec, label) in [
        (
            "byid",
            "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_vol0byid",
            "plain",
        ),
        ("bylabel", "/dev/disk/by-label/my\\x20vol", "my vol"),
    ] {
        let s = Scratch::new(&format!("cloud-{name}"));
        let boot = BootDisk::new(&s).image(&s);
        let vol = volume(&s, name, label);
        let mut vm = Vm::boot(
            &s,
            &boot,
            &[Disk {
                image: &vol,
                serial: "vol0byid",
            }],
            &format!("pivot.root={spec}"),
        );
        let (console, m) = vm.wait_exit();
        boots(&console, &m, name);
    }
}

/// `/dev/disk/by-path/pci-...-nvme-1` for an NVMe volume hot-plugged at a
/// known PCI slot.
#[test]
fn by_path_for_a_hotplugged_nvme() {
    let s = Scratch::new("cloud-bypath");
    let boot = BootDisk::new(&s).image(&s);
    let vol = volume(&s, "bp", "bypath");
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[],
        "pivot.root=/dev/disk/by-path/pci-0000:00:09.0-nvme-1",
    );
    vm.wait_console("pivot-init: waiting for /dev/disk/by-path/pci-0000:00:09.0-nvme-1");
    vm.hotplug_with(
        "nvme",
        &Disk {
            image: &vol,
            serial: "bypath",
        },
        r#","addr":"0x9""#,
    );
    let (console, m) = vm.wait_exit();
    boots(&console, &m, "bp");
}

/// A name that no device has (`/dev/sdf`, as the volume was attached on
/// AWS): every NVMe controller is asked for its attach name with an NVMe
/// Identify Controller command. QEMU's is not EBS: no match, said once per
/// device, and the boot fails over after the timeout to the old init.
#[test]
fn attach_name_asks_qemus_nvme_controller() {
    let s = Scratch::new("cloud-attach");
    let boot = BootDisk::new(&s).image(&s);
    let vol = volume(&s, "at", "attach");
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "vol0attach",
        }],
        "pivot.root=/dev/sdf pivot.timeout=4",
    );
    let (console, m) = vm.wait_exit();
    let saw = lines_with(
        &console,
        "(NVMe vendor 0x1b36, not an EBS volume): not /dev/sdf",
    );
    assert!(!saw.is_empty(), "{console}");
    for dev in ["nvme0n1 ", "nvme1n1 "] {
        assert_eq!(
            saw.iter()
                .filter(|l| l.contains(&format!("saw {dev}")))
                .count(),
            1,
            "{dev} logged once:\n{console}"
        );
    }
    assert!(
        console.contains(
            "pivot-init: FAILED at wait: no device matching /dev/sdf appeared within 4 s"
        ),
        "{console}"
    );
    assert_line(&m, "OLD-INIT pid=1 root=boot-disk", "old init", &console);
}

/// `LUN=3` picks the SCSI disk at LUN 3 among disks at other LUNs, as Azure
/// data disks are named.
#[test]
fn lun_picks_the_scsi_disk() {
    let s = Scratch::new("cloud-lun");
    let initrd = initramfs(&s, &["virtio_pci", "virtio_scsi", "sd_mod"], &[]);
    let other0 = volume(&s, "l0", "lun0");
    let vol = volume(&s, "l3", "lun3");
    let other5 = volume(&s, "l5", "lun5");
    let mut vm = Vm::start(
        &s,
        &Boot {
            initrd: Some(&initrd),
            qemu_args: scsi_luns(&[(&other0, 0), (&vol, 3), (&other5, 5)]),
            cmdline: "root=LUN=3 rw",
            ..Boot::default()
        },
    );
    let (console, m) = vm.wait_exit();
    boots(&console, &m, "l3");
}

/// Two disks with the same filesystem UUID (a snapshot clone beside its
/// source): no coin toss, the ambiguity is the failure; with SERIAL=
/// naming one of them, the boot succeeds.
#[test]
fn two_volumes_with_one_uuid() {
    let s = Scratch::new("cloud-ambiguous");
    let boot = BootDisk::new(&s).image(&s);
    let uuid = "5ca1ab1e-0000-4000-8000-00000000beef";
    let a = volume_tree(s.0.join("twin"), "twin").ext4_args(
        &s.0.join("a.img"),
        16,
        &["-L", "twin", "-U", uuid],
    );
    let b = s.0.join("b.img");
    std::fs::copy(&a, &b).unwrap();
    let disks = [
        Disk {
            image: &a,
            serial: "vol0a",
        },
        Disk {
            image: &b,
            serial: "vol0b",
        },
    ];
    let mut vm = Vm::boot(&s, &boot, &disks, &format!("pivot.root=UUID={uuid}"));
    let (console, m) = vm.wait_exit();
    let failed = lines_with(
        &console,
        "pivot-init: FAILED at wait: 2 devices match UUID=",
    );
    assert_eq!(failed.len(), 1, "{console}");
    assert!(
        failed[0]
            .trim_end()
            .ends_with("; detach one or use SERIAL=; action: oldinit /sbin/init.old")
            && failed[0].contains("nvme1n1 (259:")
            && failed[0].contains("nvme2n1 (259:"),
        "{}",
        failed[0]
    );
    assert_line(&m, "OLD-INIT pid=1 root=boot-disk", "old init", &console);

    let s = Scratch::new("cloud-ambiguous-serial");
    let mut vm = Vm::boot(&s, &boot, &disks, "pivot.root=SERIAL=vol0b");
    let (console, m) = vm.wait_exit();
    boots(&console, &m, "twin");
}

/// The same Identify, while the boot goes on by another spec: the volume's
/// init runs `pivot-init plan` (the boot disk's binary, at /old-root) for
/// `/dev/sdf`, which asks each NVMe controller for its attach name.
#[test]
fn attach_name_in_plan_while_the_boot_goes_on() {
    let s = Scratch::new("cloud-attach-plan");
    let boot = BootDisk::new(&s).image(&s);
    let t = volume_tree(s.0.join("ap"), "ap");
    t.file(
        "/sbin/init",
        format!(
            "{SCRIPT_HEAD}m \"VOLUME-INIT attach-plan\"\n\
             /old-root/sbin/init plan --cmdline 'pivot.root=/dev/sdf' --config /dev/null > /plan.txt 2>&1\n\
             while read -r l; do m \"PLAN $l\"; done < /plan.txt\n\
             sync\npoweroff -f\n"
        )
        .as_bytes(),
        0o755,
    );
    let vol = t.ext4(&s.0.join("ap.img"), 16, "attachplan");
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "vol0plan",
        }],
        "pivot.root=SERIAL=vol-0plan",
    );
    let (console, m) = vm.wait_exit();
    assert_line(&m, "VOLUME-INIT attach-plan", "the boot went on", &console);
    let lines = lines_with(&m, "(NVMe vendor 0x1b36, not an EBS volume)");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("nvme1n1 (259:") && l.trim_end().ends_with("no match")),
        "{m}"
    );
}
