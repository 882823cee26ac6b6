//! The running kernel's modules follow the boot onto the volume: a boot disk
//! with a module tree for the test kernel, volumes with and without one.

use std::path::Path;
use std::process::Command;

use pivot_harness::*;

/// A boot disk that carries a small module tree for the test kernel: one
/// module and a modules.dep made by depmod.
fn boot_disk_with_modules(s: &Scratch) -> (std::path::PathBuf, String) {
    let ver = std::fs::read_to_string(root().join("target/test-kernel/VERSION"))
        .unwrap()
        .trim()
        .to_string();
    let bd = BootDisk::new(s);
    let rel = "kernel/lib/crc-itu-t.ko";
    bd.tree.copy(
        &format!("/lib/modules/{ver}/{rel}"),
        &modules_dir().join(rel),
        0o644,
    );
    let st = Command::new("depmod")
        .arg("-b")
        .arg(&bd.tree.dir)
        .arg(&ver)
        .status()
        .expect("depmod runs");
    assert!(st.success(), "depmod");
    (bd.image(s), ver)
}

/// A volume whose init tries the module and reports what it sees.
fn volume(s: &Scratch, own_tree: Option<&str>, usr_merged: bool) -> std::path::PathBuf {
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
             sync\npoweroff -f\n"
        )
        .as_bytes(),
        0o755,
    );
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
