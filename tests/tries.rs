//! Boot counting (`pivot.tries`) with real reboots: the guest reboots
//! instead of QEMU exiting (`Boot::reboot`), QEMU starts the machine again
//! with the same disks, and the markers of every boot go on in one file.
//! Each volume init here says what it saw, then reboots or powers off.

use std::path::PathBuf;

use pivot_harness::*;

/// The boot disk's filesystem UUID (mkfs.ext4 -U).
const BOOT_UUID: &str = "b0070000-5eed-4000-8000-00000000b007";
/// The volume's.
const VOL_UUID: &str = "da7a0000-0000-4000-8000-00000000da7a";
const SPEC: &str = "pivot.root=SERIAL=vol-0tries";

/// A volume whose /sbin/init is `body` (after the marker helper and /dev),
/// with /run, the binary at /sbin/pivot-init (for the tests that hide
/// /old-root), ext4 with [`VOL_UUID`].
fn volume(s: &Scratch, body: &str) -> PathBuf {
    let tree = volume_tree(s.0.join("vol"), "tries");
    tree.file(
        "/sbin/init",
        format!("{SCRIPT_HEAD}mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev\n{body}")
            .as_bytes(),
        0o755,
    )
    .copy("/sbin/pivot-init", &pivot_init_bin(), 0o755)
    .mkdir("/run");
    tree.ext4_args(&s.0.join("vol.img"), 16, &["-L", "data", "-U", VOL_UUID])
}

/// A boot disk with [`BOOT_UUID`] and the count's directory; `full`: no free block.
fn boot_disk(s: &Scratch, full: bool) -> PathBuf {
    let bd = BootDisk::new(s);
    bd.tree.mkdir("/var/lib/pivot-init");
    bd.image_args(s, &["-U", BOOT_UUID], full)
}

/// Boots until the guest powers off, rebooting as it asks; (console, markers).
fn boots(
    s: &Scratch,
    boot: &std::path::Path,
    vol: &std::path::Path,
    cmdline: &str,
) -> (String, String) {
    let mut vm = Vm::start(
        s,
        &Boot {
            disk: Some(boot),
            nvme: &[Disk {
                image: vol,
                serial: "vol0tries",
            }],
            cmdline,
            reboot: true,
            ..Boot::default()
        },
    );
    vm.wait_exit()
}

/// How many times the kernel started.
fn kernel_starts(console: &str) -> usize {
    lines_with(console, "Linux version ").len()
}

/// The markers that start with `prefix`, trimmed.
fn marked<'a>(m: &'a str, prefix: &str) -> Vec<&'a str> {
    m.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with(prefix))
        .collect()
}

/// The count on the boot disk image after the guest is gone.
fn count_on_image(s: &Scratch) -> Option<String> {
    ext4_file(&BootDisk::filesystem(s), "/var/lib/pivot-init/state")
}

/// `tries = 2` and a volume whose init reboots without blessing: two boots
/// reach the volume, the third runs the old init with the FAILED line.
#[test]
fn t01_two_tries_then_the_old_init() {
    let s = Scratch::new("tries-t01");
    let boot = boot_disk(&s, false);
    let vol = volume(
        &s,
        "m \"VOLUME-UP $(echo $(grep -E '^(left|attempts) ' /old-root/var/lib/pivot-init/state))\"\n\
         sync\nreboot -f\n",
    );
    let (console, m) = boots(&s, &boot, &vol, &format!("{SPEC} pivot.tries=2"));
    assert_eq!(kernel_starts(&console), 3, "three boots:\n{console}");
    assert_eq!(
        marked(&m, "VOLUME-UP"),
        ["VOLUME-UP left 1 attempts 1", "VOLUME-UP left 0 attempts 2"],
        "{m}"
    );
    assert_line(
        &m,
        "OLD-INIT pid=1 root=boot-disk",
        "the old init ran",
        &console,
    );
    assert_line(
        &m,
        "OLD-INIT new-root-mounted=0",
        "the volume was not mounted",
        &console,
    );
    let failed = lines_with(&console, "pivot-init: FAILED at ");
    assert_eq!(failed.len(), 1, "{console}");
    let line = failed[0].trim_end();
    let head = format!("pivot-init: FAILED at tries: UUID={VOL_UUID} (SERIAL=vol-0tries) on nvme");
    let tail = " did not come up in 2 boots; run 'pivot-init bless' on it to try again; \
                action: oldinit /sbin/init.old";
    assert!(
        line.contains(&head) && line.ends_with(tail),
        "status line\n  got: {line}\n want: {head}...{tail}"
    );
    for left in [
        "2 of 2 tries left, this boot included",
        "1 of 2 tries left, this boot included",
        "1 of 2 tries left after it",
        "0 of 2 tries left after it",
    ] {
        assert_eq!(
            lines_with(&console, left).len(),
            1,
            "{left} once:\n{console}"
        );
    }
    // The count on the boot disk, and a volume never mounted on the third boot.
    let count = count_on_image(&s).expect("the count on the boot disk");
    assert!(
        count.starts_with(&format!(
            "pivot-init-state 1\nuuid {VOL_UUID}\nspec SERIAL=vol-0tries\ntries 2\nleft 0\nattempts 2\nlast-attempt "
        )),
        "{count}"
    );
    assert!(
        lines_with(&console, "pivot-init: unmounted /new-root").is_empty(),
        "the volume was never mounted to be refused:\n{console}"
    );
}

/// A volume whose init blesses and reboots is booted again every time, even
/// with `tries = 1`; it powers off after its third boot.
#[test]
fn t02_blessed_every_boot() {
    let s = Scratch::new("tries-t02");
    let boot = boot_disk(&s, false);
    let vol = volume(
        &s,
        "n=$(( $(cat /boots 2>/dev/null || echo 0) + 1 )); echo $n > /boots; sync\n\
         m \"VOLUME-UP boot=$n\"\n\
         /old-root/sbin/init bless > /bless.out 2>&1; rc=$?\n\
         m \"BLESS rc=$rc\"\n\
         while read -r l; do m \"BLESS-OUT $l\"; done < /bless.out\n\
         /old-root/sbin/init status | while read -r l; do m \"STATUS $l\"; done\n\
         sync\n\
         if [ $n -lt 3 ]; then reboot -f; else poweroff -f; fi\n",
    );
    let (console, m) = boots(&s, &boot, &vol, &format!("{SPEC} pivot.tries=1"));
    assert_eq!(kernel_starts(&console), 3, "{console}");
    assert_eq!(
        marked(&m, "VOLUME-UP"),
        ["VOLUME-UP boot=1", "VOLUME-UP boot=2", "VOLUME-UP boot=3"],
        "{m}\n{console}"
    );
    assert_eq!(marked(&m, "BLESS rc="), ["BLESS rc=0"; 3], "{m}");
    assert!(lines_with(&console, "FAILED").is_empty(), "{console}");
    assert!(!m.contains("OLD-INIT"), "{m}");
    // Where bless found the boot disk, and what it wrote.
    let found = marked(&m, "BLESS-OUT boot disk: ");
    assert_eq!(found.len(), 3, "{m}");
    assert!(
        found[0].starts_with("BLESS-OUT boot disk: /old-root (where the switch left it): nvme")
            && found[0].ends_with(&format!(" ext4 UUID={BOOT_UUID}")),
        "{}",
        found[0]
    );
    let blessed = marked(&m, "BLESS-OUT UUID=");
    assert_eq!(blessed.len(), 3, "{m}");
    assert!(
        blessed[0].starts_with(&format!(
            "BLESS-OUT UUID={VOL_UUID} (SERIAL=vol-0tries): blessed, all 1 try left; last attempt 20"
        )),
        "{}",
        blessed[0]
    );
    assert_eq!(
        marked(&m, "BLESS-OUT written to "),
        ["BLESS-OUT written to /old-root/var/lib/pivot-init/state"; 3],
        "{m}"
    );
    let status = marked(&m, "STATUS UUID=");
    assert_eq!(status.len(), 3, "{m}");
    assert!(
        status[2].contains(": blessed, all 1 try left; last attempt 20"),
        "{}",
        status[2]
    );
    let count = count_on_image(&s).expect("the count on the boot disk");
    assert!(
        count.contains("\nattempts 0\n") && !count.contains("\nleft "),
        "{count}"
    );
}

/// A read-only boot root (`ro`): the count is written, and /old-root is
/// read-only again when the volume's init runs; bless does the same.
#[test]
fn t03_read_only_boot_root() {
    let s = Scratch::new("tries-t03");
    let boot = boot_disk(&s, false);
    let vol = volume(
        &s,
        "m \"OLDROOT $(grep ' /old-root ' /proc/mounts)\"\n\
         m \"COUNT $(echo $(grep -E '^(left|attempts) ' /old-root/var/lib/pivot-init/state))\"\n\
         /old-root/sbin/init bless > /dev/null; m \"BLESS rc=$?\"\n\
         m \"OLDROOT-AFTER $(grep ' /old-root ' /proc/mounts)\"\n\
         m \"COUNT-AFTER $(grep -cE '^(left|last-bless) ' /old-root/var/lib/pivot-init/state)\"\n\
         sync\npoweroff -f\n",
    );
    let (console, m) = boots(&s, &boot, &vol, &format!("{SPEC} pivot.tries=1 ro"));
    assert_eq!(kernel_starts(&console), 1, "{console}");
    for key in ["OLDROOT ", "OLDROOT-AFTER "] {
        let line = marked(&m, key);
        assert!(
            line.len() == 1 && line[0].contains(" /old-root ext4 ro,"),
            "{key}: the boot root is read-only: {line:?}\n{m}\n{console}"
        );
    }
    assert_eq!(
        marked(&m, "COUNT "),
        ["COUNT left 0 attempts 1"],
        "{m}\n{console}"
    );
    assert_eq!(marked(&m, "BLESS rc="), ["BLESS rc=0"], "{m}");
    // Blessed: no `left` line, a `last-bless` line.
    assert_eq!(marked(&m, "COUNT-AFTER"), ["COUNT-AFTER 1"], "{m}");
    let counted = lines_with(&console, "pivot-init: counted this boot of ");
    assert_eq!(counted.len(), 1, "{console}");
    assert!(
        counted[0].trim_end().ends_with(
            "in /old-root/var/lib/pivot-init/state: 0 of 1 try left after it (/old-root was \
             read-only: made writable for the write, read-only again)"
        ),
        "{}",
        counted[0]
    );
}

/// A full boot disk: the write fails, the log says so, the volume boots.
#[test]
fn t04_full_boot_disk() {
    let s = Scratch::new("tries-t04");
    let boot = boot_disk(&s, true);
    let vol = volume(&s, "m \"VOLUME-UP pid=$$\"\nsync\npoweroff -f\n");
    let (console, m) = boots(&s, &boot, &vol, &format!("{SPEC} pivot.tries=1"));
    assert_line(&m, "VOLUME-UP pid=1", "the volume's init ran", &console);
    let line = format!(
        "pivot-init: cannot count this boot of UUID={VOL_UUID} (SERIAL=vol-0tries): cannot \
         write /old-root/var/lib/pivot-init/state.new: errno 28 (No space left on device); \
         handing over all the same"
    );
    assert!(
        console.lines().any(|l| l.trim_end().ends_with(&line)),
        "expected ...{line}\n{console}"
    );
    let fs = BootDisk::filesystem(&s);
    assert_eq!(ext4_free_blocks(&fs), 0);
    assert_eq!(ext4_file(&fs, "/var/lib/pivot-init/state"), None);
    assert_eq!(
        ext4_file(&fs, "/var/lib/pivot-init/state.new"),
        None,
        "the temporary file is removed"
    );
}

/// `bless` without /old-root, as after a kexec: the boot disk is found by
/// `pivot.bootdisk=UUID=` on the command line, mounted, written and
/// unmounted; `--root` names it explicitly. The next boot (tries = 1) goes
/// to the volume again.
#[test]
fn t05_bless_finds_the_boot_disk_by_uuid() {
    let s = Scratch::new("tries-t05");
    let boot = boot_disk(&s, false);
    let vol = volume(
        &s,
        "n=$(( $(cat /boots 2>/dev/null || echo 0) + 1 )); echo $n > /boots; sync\n\
         m \"VOLUME-UP boot=$n\"\n\
         if [ $n = 1 ]; then\n\
         \x20 /sbin/pivot-init status --root /old-root | while read -r l; do m \"STATUS1 $l\"; done\n\
         \x20 umount -l /old-root; m \"OLDROOT-MOUNTED $(grep -c ' /old-root ' /proc/mounts)\"\n\
         \x20 /sbin/pivot-init bless > /bless.out 2>&1; m \"BLESS rc=$?\"\n\
         \x20 while read -r l; do m \"BLESS-OUT $l\"; done < /bless.out\n\
         \x20 /sbin/pivot-init status | while read -r l; do m \"STATUS2 $l\"; done\n\
         \x20 m \"LEFT-MOUNTED $(grep -c pivot-init-bootdisk /proc/mounts) $(ls /run | grep -c pivot-init-bootdisk)\"\n\
         \x20 sync; reboot -f\n\
         fi\n\
         sync; poweroff -f\n",
    );
    let cmdline = format!("{SPEC} pivot.tries=1 pivot.bootdisk=UUID={BOOT_UUID}");
    let (console, m) = boots(&s, &boot, &vol, &cmdline);
    assert_eq!(
        marked(&m, "VOLUME-UP"),
        ["VOLUME-UP boot=1", "VOLUME-UP boot=2"],
        "blessed, the volume boots again with tries = 1:\n{m}\n{console}"
    );
    assert!(lines_with(&console, "FAILED").is_empty(), "{console}");
    let status1 = marked(&m, "STATUS1 ");
    assert_eq!(status1.len(), 2, "{m}");
    assert!(
        status1[0].starts_with("STATUS1 boot disk: /old-root (--root): nvme")
            && status1[0].ends_with(&format!(" ext4 UUID={BOOT_UUID}")),
        "{}",
        status1[0]
    );
    assert!(
        status1[1].starts_with(&format!(
            "STATUS1 UUID={VOL_UUID} (SERIAL=vol-0tries): 0 of 1 try left, 1 boot since the last bless; last attempt 20"
        )) && status1[1].ends_with("; last bless never"),
        "{}",
        status1[1]
    );
    assert_eq!(marked(&m, "OLDROOT-MOUNTED"), ["OLDROOT-MOUNTED 0"], "{m}");
    assert_eq!(marked(&m, "BLESS rc="), ["BLESS rc=0"], "{m}");
    let found = marked(&m, "BLESS-OUT boot disk: ");
    assert_eq!(found.len(), 1, "{m}");
    let at = "/run/pivot-init-bootdisk.";
    assert!(
        found[0].starts_with(&format!(
            "BLESS-OUT boot disk: pivot.bootdisk=UUID={BOOT_UUID} on the command line, mounted at {at}"
        )) && found[0].ends_with(&format!(" ext4 UUID={BOOT_UUID}")),
        "{}",
        found[0]
    );
    let written = marked(&m, "BLESS-OUT written to ");
    assert!(
        written.len() == 1
            && written[0].starts_with(&format!("BLESS-OUT written to {at}"))
            && written[0].contains("/var/lib/pivot-init/state"),
        "{m}"
    );
    let status2 = marked(&m, "STATUS2 ");
    assert_eq!(status2.len(), 2, "{m}");
    assert!(
        status2[1].starts_with(&format!(
            "STATUS2 UUID={VOL_UUID} (SERIAL=vol-0tries): blessed, all 1 try left; last attempt 20"
        )),
        "{}",
        status2[1]
    );
    assert_eq!(
        marked(&m, "LEFT-MOUNTED"),
        ["LEFT-MOUNTED 0 0"],
        "nothing left mounted or made (/run holds the hand-back's initramfs/):\n{m}"
    );
    // The second boot counted over the bless: one attempt since it.
    let count = count_on_image(&s).expect("the count on the boot disk");
    assert!(
        count.contains("\nleft 0\nattempts 1\n") && count.contains("\nlast-bless "),
        "{count}"
    );
}

/// `pivot.kexec=on` with `pivot.tries=1`: the boot is counted on the boot
/// disk before the jump, and the volume's own kernel gets
/// `pivot.bootdisk=UUID=<the boot disk's UUID>` on its line; the volume's
/// system runs `pivot-init bless`, which finds the boot disk from that key
/// (not mounted there after a kexec), and the next boot (QEMU restarts the
/// machine: the boot disk's kernel again) kexecs into the volume again.
#[test]
fn t06_kexec_names_the_boot_disk_for_bless() {
    let s = Scratch::new("tries-t06");
    let boot = boot_disk(&s, false);
    let vol = KexecVolume::new(&s, "kt");
    vol.bls_entry("test-kt", "kexec.marker=kt");
    vol.tree
        .file(
            "/sbin/init",
            format!(
                "{SCRIPT_HEAD}mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev\n\
                 mountpoint -q /proc || mount -t proc proc /proc\n\
                 mount -o remount,rw /\n\
                 n=$(( $(cat /boots 2>/dev/null || echo 0) + 1 )); echo $n > /boots; sync\n\
                 m \"KV-UP boot=$n pid=$$\"\n\
                 m \"KV-CMDLINE $(cat /proc/cmdline)\"\n\
                 m \"KV-LOADER $(cat /proc/sys/kernel/bootloader_type)\"\n\
                 /sbin/pivot-init bless > /bless.out 2>&1; m \"BLESS rc=$?\"\n\
                 while read -r l; do m \"BLESS-OUT $l\"; done < /bless.out\n\
                 sync\n\
                 if [ $n -lt 2 ]; then reboot -f; else poweroff -f; fi\n"
            )
            .as_bytes(),
            0o755,
        )
        .copy("/sbin/pivot-init", &pivot_init_bin(), 0o755)
        .mkdir("/run");
    let img = vol.image(&s, "vol.img");
    let mut vm = Vm::start(
        &s,
        &Boot {
            disk: Some(&boot),
            nvme: &[Disk {
                image: &img,
                serial: "vol0tries",
            }],
            cmdline: &format!("pivot.root=UUID={} pivot.kexec=on pivot.tries=1", vol.uuid),
            reboot: true,
            ..Boot::default()
        },
    );
    let (console, m) = vm.wait_exit();
    assert_eq!(
        marked(&m, "KV-UP"),
        ["KV-UP boot=1 pid=1", "KV-UP boot=2 pid=1"],
        "blessed after the kexec, the volume is booted again with tries = 1:\n{m}\n{console}"
    );
    // Two machine boots, each the boot disk's kernel then the volume's.
    assert_eq!(kernel_starts(&console), 4, "{console}");
    assert_eq!(marked(&m, "KV-LOADER"), ["KV-LOADER 208"; 2], "{m}");
    let lines = marked(&m, "KV-CMDLINE ");
    assert_eq!(lines.len(), 2, "{m}");
    for l in &lines {
        assert!(
            l.contains(&format!(" pivot.bootdisk=UUID={BOOT_UUID}"))
                && l.contains("kexec.marker=kt"),
            "{l}"
        );
    }
    assert_eq!(marked(&m, "BLESS rc="), ["BLESS rc=0"; 2], "{m}");
    let found = marked(&m, "BLESS-OUT boot disk: ");
    assert_eq!(found.len(), 2, "{m}");
    assert!(
        found[0].starts_with(&format!(
            "BLESS-OUT boot disk: pivot.bootdisk=UUID={BOOT_UUID} on the command line, mounted at /run/pivot-init-bootdisk."
        )),
        "{}",
        found[0]
    );
    assert!(lines_with(&console, "FAILED").is_empty(), "{console}");
    assert!(!m.contains("OLD-INIT"), "{m}");
    // The count on the boot disk: blessed by the second boot's volume.
    let count = count_on_image(&s).expect("the count on the boot disk");
    assert!(
        count.contains("\nattempts 0\n") && !count.contains("\nleft "),
        "{count}"
    );
}
