//! The names of the kernel's mount flags, as mount options spell them: what
//! `mountopts` parses and what every mount error prints.

use rustix::mount::MountFlags;

/// Options that set a flag (`ro` and `rw` are handled apart: see [`describe`]).
pub const FLAG_SET: &[(&str, MountFlags)] = &[
    ("ro", MountFlags::RDONLY),
    ("nosuid", MountFlags::NOSUID),
    ("nodev", MountFlags::NODEV),
    ("noexec", MountFlags::NOEXEC),
    ("sync", MountFlags::SYNCHRONOUS),
    ("dirsync", MountFlags::DIRSYNC),
    ("noatime", MountFlags::NOATIME),
    ("nodiratime", MountFlags::NODIRATIME),
    ("relatime", MountFlags::RELATIME),
    ("strictatime", MountFlags::STRICTATIME),
    ("lazytime", MountFlags::LAZYTIME),
    ("silent", MountFlags::SILENT),
];

/// Options that clear a flag.
pub const FLAG_CLEAR: &[(&str, MountFlags)] = &[
    ("rw", MountFlags::RDONLY),
    ("suid", MountFlags::NOSUID),
    ("dev", MountFlags::NODEV),
    ("exec", MountFlags::NOEXEC),
    ("async", MountFlags::SYNCHRONOUS),
    ("atime", MountFlags::NOATIME),
    ("diratime", MountFlags::NODIRATIME),
    ("norelatime", MountFlags::RELATIME),
    ("nostrictatime", MountFlags::STRICTATIME),
    ("nolazytime", MountFlags::LAZYTIME),
    ("loud", MountFlags::SILENT),
];

/// Flags and data as option text: `ro,noatime,data=x`. It always starts
/// with `ro` or `rw`; then the other set flags in [`FLAG_SET`]'s order.
pub fn describe(flags: MountFlags, data: &str) -> String {
    let mut parts: Vec<&str> = vec![if flags.contains(MountFlags::RDONLY) {
        "ro"
    } else {
        "rw"
    }];
    for (name, f) in FLAG_SET {
        if *f != MountFlags::RDONLY && flags.contains(*f) {
            parts.push(name);
        }
    }
    if !data.is_empty() {
        parts.push(data);
    }
    crate::sys::joined(&parts, ",")
}
