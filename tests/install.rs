//! scripts/install-image: an image prepared only by it (twice), configured
//! only by its /etc/pivot-init.conf, boots onto the volume under QEMU.

use std::process::Command;

use pivot_harness::*;

fn debugfs_cat(img: &std::path::Path, path: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn image_from_install_image_boots_with_config_file_only() {
    let s = Scratch::new("install");
    // A plain image: its own /sbin/init, no pivot-init, no /new-root.
    let fs =
        plain_boot_tree(s.0.join("plain"), "/sbin/init").ext4(&s.0.join("boot.fs"), 16, "bootdisk");
    let conf = s.0.join("pivot-init.conf");
    std::fs::write(
        &conf,
        "# written by the test\nroot = SERIAL=vol-0cfg   # the cloud volume id\nhook = none\n",
    )
    .unwrap();
    let first = install_image(&fs, &conf);
    assert!(
        first.contains("moving /sbin/init to /sbin/init.old"),
        "{first}"
    );
    let second = install_image(&fs, &conf);
    assert!(
        second.contains("/sbin/init.old is there already: keeping it"),
        "{second}"
    );
    // The original init is still the old one, and the config is in place.
    assert_eq!(debugfs_cat(&fs, "/sbin/init.old"), old_init_script());
    assert!(debugfs_cat(&fs, "/etc/pivot-init.conf").contains("root = SERIAL=vol-0cfg"));
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&fs)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );

    let disk = s.0.join("boot.img");
    mbr_disk(&fs, &disk, BOOT_SIG);
    let vol = volume_tree(s.0.join("vol"), "cfg").ext4(&s.0.join("vol.img"), 16, "data");
    // No pivot.* key on the command line: everything comes from the config file.
    let mut vm = Vm::boot(
        &s,
        &disk,
        &[Disk {
            image: &vol,
            serial: "vol0cfg",
        }],
        "",
    );
    let (console, m) = vm.wait_exit();
    assert!(
        !console.contains("pivot."),
        "a pivot.* key reached the command line:\n{console}"
    );
    assert_line(
        &m,
        "VOLUME-INIT id=cfg pid=1 args=",
        "the volume's init",
        &console,
    );
    assert_line(&m, "OLDROOT boot-disk", "old root", &console);
}

#[test]
fn install_image_refuses_non_ext() {
    let s = Scratch::new("install-refuse");
    let img = s.0.join("not-ext.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let out = Command::new(root().join("scripts/install-image"))
        .env("PIVOT_INIT_BIN", pivot_init_bin())
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not an ext2/3/4 filesystem image (no ext superblock magic at byte 1080)"),
        "{err}"
    );
}
