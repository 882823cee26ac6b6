//! pivot-init as an ordinary command (not PID 1): plan and check outputs and
//! exit codes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn pivot_init(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pivot-init"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pivot-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The settings line for `key`: (value, source).
fn setting(out: &str, key: &str) -> (String, String) {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("  {key} ")))
        .unwrap_or_else(|| panic!("no {key} line:\n{out}"));
    let rest = line[2 + key.len()..].trim_start();
    let (value, source) = rest.split_at(rest.find("  ").unwrap_or(rest.len()));
    (value.trim().to_string(), source.trim().to_string())
}

#[test]
fn version_help_and_bad_arguments() {
    let (code, out, _) = pivot_init(&["--version"]);
    assert_eq!(
        (code, out.trim()),
        (0, concat!("pivot-init ", env!("CARGO_PKG_VERSION")))
    );
    let (code, out, _) = pivot_init(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("usage: pivot-init plan "), "{out}");
    for (args, msg) in [
        (
            &["frobnicate"][..],
            "pivot-init: unknown command `frobnicate`",
        ),
        (
            &["plan", "--bogus"][..],
            "pivot-init: unknown option --bogus",
        ),
        (
            &["plan", "--cmdline"][..],
            "pivot-init: --cmdline needs a value",
        ),
        (
            &["plan", "extra"][..],
            "pivot-init: plan takes no argument `extra`",
        ),
        (&["check"][..], "pivot-init: check needs a VOLUME_DIR"),
        (
            &["bless", "--bogus"][..],
            "pivot-init: unknown option --bogus",
        ),
        (
            &["bless", "--root"][..],
            "pivot-init: --root needs a directory",
        ),
        (
            &["status", "extra"][..],
            "pivot-init: status takes no argument `extra`",
        ),
        (
            &["check", "/nonexistent-dir"][..],
            "pivot-init: /nonexistent-dir is not a directory",
        ),
        (
            &["plan", "--config", "/nonexistent.conf", "--cmdline", ""][..],
            "pivot-init: cannot read /nonexistent.conf: ",
        ),
    ] {
        let (code, _, err) = pivot_init(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(err.starts_with(msg), "{args:?}: {err}");
    }
    let (code, out, _) = pivot_init(&[]);
    assert_eq!(code, 2);
    assert!(out.starts_with("usage:"));
}

/// A fake /sys/class/block with one NVMe disk whose serial is vol0abc.
fn fake_sysfs(dir: &Path) -> PathBuf {
    let sys = dir.join("class-block");
    for (name, devno, serial) in [
        ("nvme0n1", "259:0", "boot"),
        ("nvme1n1", "259:2", "vol0abc"),
    ] {
        std::fs::create_dir_all(sys.join(name).join("device")).unwrap();
        std::fs::write(sys.join(name).join("dev"), format!("{devno}\n")).unwrap();
        std::fs::write(
            sys.join(name).join("device/serial"),
            format!("{serial}   \n"),
        )
        .unwrap();
    }
    sys
}

#[test]
fn plan_shows_sources_warnings_and_matches() {
    let d = scratch("plan");
    let conf = d.join("pivot-init.conf");
    std::fs::write(
        &conf,
        "# image defaults\nroot = SERIAL=vol-0abc\ntimeout = 30  # seconds\nthis line is wrong\nloglevel = 9\nhook-failure = continue\n",
    )
    .unwrap();
    let sys = fake_sysfs(&d);
    let (code, out, _) = pivot_init(&[
        "plan",
        "--config",
        conf.to_str().unwrap(),
        "--cmdline",
        "console=ttyS0 pivot.timeout=5 pivot.onfail=poweroff",
        "--sysfs",
        sys.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "warnings give exit status 1:\n{out}");
    assert_eq!(
        setting(&out, "root"),
        ("SERIAL=vol-0abc".into(), "config file".into())
    );
    assert_eq!(
        setting(&out, "timeout"),
        ("5 s".into(), "kernel command line".into())
    );
    assert_eq!(
        setting(&out, "onfail"),
        ("poweroff".into(), "kernel command line".into())
    );
    assert_eq!(
        setting(&out, "hook_failure"),
        ("continue".into(), "config file".into())
    );
    assert_eq!(setting(&out, "loglevel"), ("6".into(), "default".into()));
    let c = conf.display();
    assert!(
        out.contains(&format!(
            "  {c}:4: ignoring `this line is wrong`: expected `key = value`\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  {c}:5: ignoring loglevel = 9: `9` is not a log level 0..7; using the default\n"
        )),
        "{out}"
    );
    let nvme1 = out
        .lines()
        .find(|l| l.contains("nvme1n1 (259:2) serial vol0abc"))
        .unwrap();
    assert!(nvme1.ends_with("MATCH"), "{nvme1}");
    let nvme0 = out
        .lines()
        .find(|l| l.contains("nvme0n1 (259:0) serial boot"))
        .unwrap();
    assert!(nvme0.ends_with("no match"), "{nvme0}");

    // Clean input: exit 0; nothing matching: the boot would wait.
    std::fs::write(&conf, "root = /dev/sdp\n").unwrap();
    let (code, out, _) = pivot_init(&[
        "plan",
        "--config",
        conf.to_str().unwrap(),
        "--cmdline",
        "",
        "--sysfs",
        sys.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warnings:\n  (none)\n"), "{out}");
    assert!(
        out.contains("  nothing matches now: the boot would wait for it\n"),
        "{out}"
    );

    // No spec at all.
    let (code, out, _) = pivot_init(&[
        "plan",
        "--cmdline",
        "quiet",
        "--sysfs",
        sys.to_str().unwrap(),
        "--config",
        "/dev/null",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains(
            "no volume spec: set root in the config file or pivot.root= on the command line"
        ),
        "{out}"
    );

    // Initramfs mode reads the kernel's own keys.
    let (_, out, _) = pivot_init(&[
        "plan",
        "--initramfs",
        "--config",
        "/dev/null",
        "--cmdline",
        "root=8:240 rootwait",
        "--sysfs",
        sys.to_str().unwrap(),
    ]);
    assert_eq!(
        setting(&out, "root"),
        ("8:240".into(), "kernel command line (kernel key)".into())
    );
    assert_eq!(
        setting(&out, "flags"),
        ("ro".into(), "kernel command line (kernel key)".into())
    );
    std::fs::remove_dir_all(&d).unwrap();
}

fn exe(root: &Path, p: &str, body: &[u8], mode: u32) {
    let path = root.join(p.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn check_a_good_and_a_bad_volume() {
    let d = scratch("check");
    let good = d.join("good");
    exe(
        &good,
        "/bin/sh",
        &std::fs::read("/bin/busybox").expect("busybox-static"),
        0o755,
    );
    exe(&good, "/sbin/init", b"#!/bin/sh\nexec /bin/sh\n", 0o755);
    exe(&good, "/pre-pivot", b"#!/bin/sh\ntrue\n", 0o750);
    let (code, out, _) = pivot_init(&["check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().skip(1).collect::<Vec<_>>(),
        vec![
            "ok: init /sbin/init can be executed",
            "ok: hook /pre-pivot would run",
            "ok: /old-root is missing and will be created (the volume must be mounted rw)",
            "result: the volume looks bootable",
        ]
    );

    let bad = d.join("bad");
    exe(&bad, "/sbin/init", b"#!/bin/nonexistent\n", 0o755);
    exe(&bad, "/pre-pivot", b"#!/bin/sh\ntrue\n", 0o777);
    exe(&bad, "/old-root", b"not a dir", 0o644);
    let (code, out, _) = pivot_init(&["check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().skip(1).collect::<Vec<_>>(),
        vec![
            format!(
                "problem: no usable init on the new root {}: /sbin/init: its interpreter /bin/nonexistent is missing \
                 or unusable (not found); /etc/init: not found; /bin/init: not found",
                bad.display()
            )
            .as_str(),
            "problem: hook /pre-pivot would be skipped: it is group- or world-writable (mode 0777)",
            "problem: /old-root exists but is not a directory",
            "result: 3 problem(s)",
        ]
    );

    // Settings from a command line apply: another init, hooks off.
    // (A file that is neither ELF nor `#!` is refused, as the kernel does.)
    exe(&bad, "/lib/systemd/systemd", b"plain", 0o755);
    let (code, out, _) = pivot_init(&[
        "check",
        bad.to_str().unwrap(),
        "--cmdline",
        "pivot.init=/lib/systemd/systemd pivot.hook=none",
        "--config",
        "/dev/null",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("/lib/systemd/systemd: neither an ELF binary nor a `#!` script"),
        "{out}"
    );
    exe(
        &bad,
        "/lib/systemd/systemd",
        &std::fs::read("/bin/busybox").unwrap(),
        0o755,
    );
    let (code, out, _) = pivot_init(&[
        "check",
        bad.to_str().unwrap(),
        "--cmdline",
        "pivot.init=/lib/systemd/systemd pivot.hook=none pivot.oldroot=/boot-disk",
        "--config",
        "/dev/null",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok: init /lib/systemd/systemd can be executed\nok: hooks are disabled\n"),
        "{out}"
    );
    let (code, out, _) = pivot_init(&[
        "check",
        bad.to_str().unwrap(),
        "--cmdline",
        "pivot.init=/lib/systemd/systemd pivot.oldroot=/mnt/boot",
        "--config",
        "/dev/null",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("problem: /mnt/boot is missing and so is its parent directory\n"),
        "{out}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// `check` with `pivot.kexec`: the entry that would be booted (kernel,
/// initramfs, why, the whole line), checked as the boot checks it; or why
/// none can be; or, with `auto` and no entry, the usual pivot checks.
#[test]
fn check_shows_the_kexec_entry() {
    let d = scratch("check-kexec");
    let vol = d.join("vol");
    let kernel =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-kernel/vmlinuz"))
            .expect("the test kernel (scripts/setup)");
    let release = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-kernel/VERSION"),
    )
    .unwrap()
    .trim()
    .to_string();
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static");
    exe(&vol, "/bin/sh", &busybox, 0o755);
    exe(&vol, "/sbin/init", b"#!/bin/sh\nexec /bin/sh\n", 0o755);
    exe(&vol, &format!("/boot/vmlinuz-{release}"), &kernel, 0o644);
    exe(
        &vol,
        &format!("/boot/initrd.img-{release}"),
        b"070701...",
        0o644,
    );
    exe(
        &vol,
        "/boot/loader/entries/vol.conf",
        format!(
            "version {release}\nlinux /boot/vmlinuz-{release}\ninitrd /boot/initrd.img-{release}\n\
             options root=UUID=abc ro kexec.marker=1\n"
        )
        .as_bytes(),
        0o644,
    );
    let check = |cmdline: &str| {
        pivot_init(&[
            "check",
            vol.to_str().unwrap(),
            "--cmdline",
            cmdline,
            "--config",
            "/dev/null",
        ])
    };
    let (code, out, _) = check("console=ttyS0,115200 pivot.root=LABEL=x pivot.kexec=on");
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines[0], "ok: init /sbin/init can be executed");
    assert!(
        lines[1].starts_with(&format!(
            "ok: pivot.kexec=on would boot the volume's own kernel (release {release}; this machine runs "
        )),
        "{out}"
    );
    assert_eq!(
        lines[2..],
        [
            format!("  kernel /boot/vmlinuz-{release} (bzImage, release {release})"),
            format!("  initramfs /boot/initrd.img-{release} (9 bytes)"),
            "  why: BLS entry vol, the only one".to_string(),
            "  command line (the entry's options, with console=ttyS0,115200 of the running \
             kernel): root=UUID=abc ro kexec.marker=1 console=ttyS0,115200"
                .to_string(),
            "ok: no hook runs and nothing is switched: pivot.kexec boots the volume's own kernel"
                .to_string(),
            "result: the volume looks bootable".to_string(),
        ]
    );

    // A kernel cut short is a problem (kexec_file_load would take it).
    exe(
        &vol,
        &format!("/boot/vmlinuz-{release}"),
        &kernel[..1 << 20],
        0o644,
    );
    let (code, out, _) = check("pivot.kexec=on");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "problem: kexec: /boot/vmlinuz-{release} is not a kernel this machine can boot: it is \
             cut short: 1048576 bytes, but its header says it holds "
        )),
        "{out}"
    );
    assert!(out.ends_with("result: 1 problem(s)\n"), "{out}");

    // No entry: `on` is a problem; `auto` pivots, and the pivot is checked.
    std::fs::remove_dir_all(vol.join("boot")).unwrap();
    let (code, out, _) = check("pivot.kexec=on");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("problem: kexec: the volume has no boot entry: no pivot.kexec_kernel, no "),
        "{out}"
    );
    let (code, out, _) = check("pivot.kexec=auto");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "ok: no kexec: pivot.kexec=auto: the volume has no boot entry: no pivot.kexec_kernel"
        ),
        "{out}"
    );
    assert!(out.contains("ok: no hook at /pre-pivot\n"), "{out}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `plan` with `pivot.kexec` and the volume not mounted here: it says
/// where the entry is chosen (plan never mounts).
#[test]
fn plan_with_kexec_and_the_volume_not_mounted() {
    let d = scratch("plan-kexec");
    let sys = fake_sysfs(&d);
    let (code, out, _) = pivot_init(&[
        "plan",
        "--config",
        "/dev/null",
        "--cmdline",
        "pivot.root=SERIAL=vol0abc pivot.kexec=auto pivot.kexec_entry=debian",
        "--sysfs",
        sys.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        setting(&out, "kexec"),
        ("auto".into(), "kernel command line".into())
    );
    assert_eq!(
        setting(&out, "kexec_entry"),
        ("debian".into(), "kernel command line".into())
    );
    assert!(
        out.ends_with(
            "\nkexec (pivot.kexec=auto):\n  the boot chooses the entry on the volume once it is \
             mounted; no matching device is mounted here now (`pivot-init check DIR` shows it for \
             a mounted copy)\n"
        ),
        "{out}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// `status` and `bless` with `--root`: the count on a boot disk's root
/// read, then given all its tries back (a config file there moves it).
#[test]
fn status_and_bless_with_root() {
    let d = scratch("bless");
    let root = d.to_str().unwrap();
    let line = |out: &str, n: usize| out.lines().nth(n).unwrap_or("").to_string();
    let (code, out, err) = pivot_init(&["status", "--root", root]);
    assert_eq!(code, 0, "{err}");
    assert!(
        line(&out, 0).starts_with(&format!("boot disk: {root} (--root)")),
        "{out}"
    );
    assert_eq!(
        line(&out, 1),
        format!(
            "no boot count in {root}/var/lib/pivot-init/state: no boot was counted on this boot \
             disk yet"
        )
    );
    std::fs::create_dir_all(d.join("etc")).unwrap();
    std::fs::write(d.join("etc/pivot-init.conf"), "state = /count\n").unwrap();
    std::fs::write(
        d.join("count"),
        "pivot-init-state 1\nuuid aa\nspec SERIAL=v\ntries 2\nleft 0\nattempts 2\n\
         last-attempt 1700000000\nend\n",
    )
    .unwrap();
    let (code, out, err) = pivot_init(&["status", "--root", root]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        line(&out, 1),
        "UUID=aa (SERIAL=v): 0 of 2 tries left, 2 boots since the last bless; last attempt \
         2023-11-14 22:13:20 UTC; last bless never"
    );
    let (code, out, err) = pivot_init(&["bless", "--root", root]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("\nwritten to {root}/count\n")),
        "{out}"
    );
    // Whichever volume it was given to (this host's root, when it can be
    // told, or the one the count names), all its tries are back.
    let count = std::fs::read_to_string(d.join("count")).unwrap();
    assert!(
        count.contains("\nattempts 0\nlast-")
            && !count.contains("\nleft ")
            && count.contains("\nlast-bless "),
        "{count}"
    );
    assert!(!d.join("count.new").exists());
    // A garbled count: status says why, exit 1.
    std::fs::write(d.join("count"), "garbage").unwrap();
    let (code, _, err) = pivot_init(&["status", "--root", root]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        format!(
            "pivot-init status: {root}/count is no boot count pivot-init can read: it does not \
             end with the line `end` (cut short?)"
        )
    );
    let (code, _, err) = pivot_init(&["bless", "--root", "/nonexistent-boot-disk"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        "pivot-init bless: --root /nonexistent-boot-disk: not a directory"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
