//! The running kernel's modules follow the boot onto the volume: a boot disk
//! with a module tree for the test kernel, volumes with and without one.

use std::path::Path;
use std::process::Command;

use pivot_harness::*;

/// A boot disk that carries a small module tree for the test kernel: one
/// module and a modules.dep made by depmod; a /tmp for links that would
/// lead there.
fn boot_disk_with_modules(s: &Scratch) -> (std::path::PathBuf, String) {
    boot_disk_with(s, &[])
}

/// The same with more of the test kernel's modules (paths under kernel/).
fn boot_disk_with(s: &Scratch, more: &[&str]) -> (std::path::PathBuf, String) {
    let ver = std::fs::read_to_string(root().join("target/test-kernel/VERSION"))
        .unwrap()
        .trim()
        .to_string();
    let bd = BootDisk::new(s);
    for rel in ["kernel/lib/crc-itu-t.ko"].iter().chain(more) {
        bd.tree.copy(
            &format!("/lib/modules/{ver}/{rel}"),
            &modules_dir().join(rel),
            0o644,
        );
    }
    bd.tree.mkdir("/tmp");
    let st = Command::new("depmod")
        .arg("-b")
        .arg(&bd.tree.dir)
        .arg(&ver)
        .status()
        .expect("depmod runs");
    assert!(st.success(), "depmod");
    (bd.image(s), ver)
}

/// A volume tree whose init tries the module and reports what it sees:
/// the tree, the module, the read-only mounts, whether its /lib still
/// holds /lib/marker, what the boot root's /tmp holds.
fn volume_tree_km(s: &Scratch) -> Tree {
    let t = volume_tree(s.0.join("vol"), "km");
    t.file(
        "/sbin/init",
        format!(
            "{SCRIPT_HEAD}m \"VOLUME-INIT kmods\"\n\
             r=$(/bin/busybox uname -r)\n\
             m \"HAS-TREE $([ -d /lib/modules/$r ] && echo yes || echo no)\"\n\
             /bin/busybox modprobe crc_itu_t 2>/dev/null\n\
             m \"LOADED $(grep -c '^crc_itu_t ' /proc/modules)\"\n\
             m \"KMODS-RO $(grep 'lib/modules/' /proc/mounts | grep -cE ' ro[, ]')\"\n\
             m \"LIB-MARKER $([ -f /lib/marker ] && echo yes || echo no)\"\n\
             m \"BOOT-TMP [$(echo $(ls -A /old-root/tmp))]\"\n\
             sync\npoweroff -f\n"
        )
        .as_bytes(),
        0o755,
    );
    t
}

/// A volume (ext4) made by [`volume_tree_km`].
fn volume(s: &Scratch, own_tree: Option<&str>, usr_merged: bool) -> std::path::PathBuf {
    let t = volume_tree_km(s);
    if usr_merged {
        t.mkdir("/usr/lib");
        t.symlink("/lib", "usr/lib");
    }
    if let Some(ver) = own_tree {
        t.file(&format!("/lib/modules/{ver}/modules.dep"), b"", 0o644);
    }
    t.ext4(&s.0.join("vol.img"), 16, "kmods")
}

fn boot(s: &Scratch, disk: &Path, vol: &Path, extra: &str) -> (String, String) {
    let mut vm = Vm::boot(
        s,
        disk,
        &[Disk {
            image: vol,
            serial: "vol0km",
        }],
        &format!("pivot.root=SERIAL=vol-0km {extra}"),
    );
    vm.wait_exit()
}

/// The volume has no tree for the running kernel (and a merged /usr: its
/// /lib is a symlink): the boot disk's is bound read-only, and modprobe on
/// the volume loads from it.
#[test]
fn boot_disk_modules_follow_onto_a_volume_without_them() {
    let s = Scratch::new("kmods-none");
    let (disk, ver) = boot_disk_with_modules(&s);
    let vol = volume(&s, None, true);
    let (console, m) = boot(&s, &disk, &vol, "");
    assert!(
        console.contains(&format!(
            "pivot-init: modules for {ver} from the boot disk (the volume has none)"
        )),
        "{console}"
    );
    assert_line(&m, "HAS-TREE yes", "the tree is there", &console);
    assert_line(&m, "LOADED 1", "modprobe found the module", &console);
    assert_line(&m, "KMODS-RO 1", "a read-only mount", &console);
}

/// A volume with its own tree for the running kernel keeps it; and
/// pivot.kmods=volume leaves a volume without one without one.
#[test]
fn own_tree_kept_and_kmods_volume_binds_nothing() {
    let s = Scratch::new("kmods-own");
    let (disk, ver) = boot_disk_with_modules(&s);
    let vol = volume(&s, Some(&ver), false);
    let (console, m) = boot(&s, &disk, &vol, "");
    assert!(
        console.contains(&format!("pivot-init: modules for {ver}: the volume's own")),
        "{console}"
    );
    assert_line(&m, "KMODS-RO 0", "no bind", &console);
    assert_line(&m, "LOADED 0", "the volume's (empty) tree", &console);

    let s = Scratch::new("kmods-volume");
    let (disk, ver) = boot_disk_with_modules(&s);
    let vol = volume(&s, None, false);
    let (console, m) = boot(&s, &disk, &vol, "pivot.kmods=volume");
    assert!(
        console.contains(&format!(
            "pivot-init: modules for {ver}: none on the volume (pivot.kmods=volume)"
        )),
        "{console}"
    );
    assert_line(&m, "HAS-TREE no", "no tree", &console);
    assert_line(&m, "LOADED 0", "nothing to load", &console);
}

/// The bind is undone with the rest: an exec failure after the switch (a
/// test key) undoes the switch, unmounts the module tree and the volume
/// cleanly, and the old init sees the volume gone.
#[test]
fn the_bind_is_undone_with_the_switch() {
    let s = Scratch::new("kmods-undo");
    let (disk, ver) = boot_disk_with_modules(&s);
    let vol = volume(&s, None, false);
    let (console, m) = boot(&s, &disk, &vol, "pivot.debug_exec_fail=1");
    assert!(
        console.contains(&format!("pivot-init: modules for {ver} from the boot disk")),
        "{console}"
    );
    assert!(console.contains("(switch undone)"), "{console}");
    assert!(
        console.contains("pivot-init: unmounted /new-root (mounted read-write)"),
        "{console}"
    );
    assert!(!console.contains("detached"), "{console}");
    assert_line(
        &m,
        "OLD-INIT new-root-mounted=0",
        "the volume is gone",
        &console,
    );
}

/// A read-only volume (squashfs) with a /lib but no /lib/modules: no tmpfs
/// covers its /lib (which would hide the loader and every library); the
/// bind is skipped and the warning says why. With a /lib/modules for another
/// kernel, a tmpfs over that directory holds the mount point, and the
/// module loads.
#[test]
fn a_read_only_volume_without_modules_keeps_its_lib() {
    let s = Scratch::new("kmods-ro");
    let (disk, ver) = boot_disk_with(&s, &["kernel/fs/squashfs/squashfs.ko"]);
    let t = volume_tree_km(&s);
    t.file("/lib/marker", b"lib\n", 0o644);
    let vol = t.squashfs(&s.0.join("vol.img"));
    let (console, m) = boot(&s, &disk, &vol, "pivot.modules=squashfs");
    assert!(
        console.contains(&format!(
            "pivot-init: the volume is read-only and has no /lib/modules: not binding the boot \
             disk's modules for {ver} (create /lib/modules on the volume, or mount it rw)"
        )),
        "{console}"
    );
    assert_line(&m, "VOLUME-INIT kmods", "the volume's init runs", &console);
    assert_line(&m, "LIB-MARKER yes", "its /lib is intact", &console);
    assert_line(&m, "HAS-TREE no", "no tree", &console);

    let s = Scratch::new("kmods-ro-holder");
    let (disk, ver) = boot_disk_with(&s, &["kernel/fs/squashfs/squashfs.ko"]);
    let t = volume_tree_km(&s);
    t.file("/lib/marker", b"lib\n", 0o644);
    t.file("/lib/modules/5.10.0-other/modules.dep", b"", 0o644);
    let vol = t.squashfs(&s.0.join("vol.img"));
    let (console, m) = boot(&s, &disk, &vol, "pivot.modules=squashfs");
    assert!(
        console.contains(&format!(
            "pivot-init: modules for {ver} from the boot disk (the volume has none)"
        )),
        "{console}"
    );
    assert_line(&m, "LIB-MARKER yes", "its /lib is intact", &console);
    assert_line(&m, "HAS-TREE yes", "the tree is there", &console);
    assert_line(&m, "LOADED 1", "modprobe found the module", &console);
    assert_line(&m, "KMODS-RO 1", "a read-only mount", &console);
}

/// The volume's /lib/modules links out of it: `/proc/self/root/tmp`, `/tmp`
/// (the volume has none), and `/proc/self/root/tmp` once a hook bound the
/// boot root's /proc onto the volume's (a magic link then: a proc mounted
/// by the hook would be its own PID namespace's, where pivot-init has no
/// `self`). Resolved from the boot
/// root, each would lead to the boot root's /tmp. Nothing lands there (the
/// boot root is at /old-root after the switch), the bind is skipped with a
/// warning, and the volume's init runs.
#[test]
fn volume_links_cannot_land_the_bind_on_the_boot_root() {
    let nowhere = "/lib/modules on the volume is a link that leads nowhere inside it: ";
    // ELOOP: the errno's text is musl's.
    let magic = "cannot open /lib/modules inside the volume, its links followed inside it: \
                 errno 40 (Symbolic link loop) (a magic link, or too many links): ";
    for (name, target, hook, why) in [
        ("proc", "/proc/self/root/tmp", false, nowhere),
        ("abs", "/tmp", false, nowhere),
        ("magic", "/proc/self/root/tmp", true, magic),
    ] {
        let s = Scratch::new(&format!("kmods-link-{name}"));
        let (disk, ver) = boot_disk_with_modules(&s);
        let t = volume_tree_km(&s);
        t.file("/lib/marker", b"lib\n", 0o644);
        t.symlink("/lib/modules", target);
        if hook {
            t.file(
                "/pre-pivot",
                b"#!/bin/sh\nmount -o bind /proc \"$PIVOT_NEW_ROOT/proc\"\n",
                0o755,
            );
        }
        let vol = t.ext4(&s.0.join("vol.img"), 16, "kmods");
        let (console, m) = boot(&s, &disk, &vol, "");
        assert!(
            console.contains(&format!(
                "pivot-init: {why}not binding the boot disk's modules for {ver}"
            )),
            "{name}: {console}"
        );
        assert_line(&m, "VOLUME-INIT kmods", "the volume's init runs", &console);
        assert_line(&m, "BOOT-TMP []", "nothing on the boot root", &console);
        assert_line(&m, "HAS-TREE no", "no tree", &console);
        assert_line(&m, "LIB-MARKER yes", "its /lib is intact", &console);
    }
}

/// Absolute links that resolve inside the volume are followed there, as the
/// volume sees them after the switch: /lib -> /usr/lib, /usr/lib/modules ->
/// /tmp. The tree is bound at the volume's /tmp, not the boot root's.
#[test]
fn absolute_links_are_followed_inside_the_volume() {
    let s = Scratch::new("kmods-abs-inside");
    let (disk, ver) = boot_disk_with_modules(&s);
    let t = volume_tree_km(&s);
    t.file("/usr/lib/marker", b"lib\n", 0o644);
    t.symlink("/lib", "/usr/lib");
    t.symlink("/usr/lib/modules", "/tmp");
    t.mkdir("/tmp");
    let vol = t.ext4(&s.0.join("vol.img"), 16, "kmods");
    let (console, m) = boot(&s, &disk, &vol, "");
    assert!(
        console.contains(&format!(
            "pivot-init: modules for {ver} from the boot disk (the volume has none)"
        )),
        "{console}"
    );
    assert_line(&m, "HAS-TREE yes", "the tree is there", &console);
    assert_line(&m, "LOADED 1", "modprobe found the module", &console);
    assert_line(&m, "BOOT-TMP []", "nothing on the boot root", &console);
    assert_line(&m, "LIB-MARKER yes", "its /lib is the volume's", &console);
}
