//! Mount options as a user writes them (`ro,noatime,data=ordered`), split into
//! kernel mount flags and the data string passed to the filesystem.

use crate::sys::{FLAG_CLEAR, FLAG_SET, MountFlags, describe_flags};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOpts {
    pub flags: MountFlags,
    /// Options the filesystem itself interprets, comma-separated.
    pub data: String,
}

impl Default for MountOpts {
    fn default() -> Self {
        MountOpts {
            flags: MountFlags::empty(),
            data: String::new(),
        }
    }
}

impl MountOpts {
    /// Parses a comma-separated option list. Later options win over earlier
    /// ones (`ro,rw` is read-write); unknown options go to the data string.
    pub fn parse(s: &str) -> MountOpts {
        let mut opts = MountOpts::default();
        let mut data: Vec<&str> = Vec::new();
        for o in s.split(',').filter(|o| !o.is_empty()) {
            if o == "defaults" {
                continue;
            }
            if let Some((_, f)) = FLAG_SET.iter().find(|(n, _)| *n == o) {
                opts.flags |= *f;
            } else if let Some((_, f)) = FLAG_CLEAR.iter().find(|(n, _)| *n == o) {
                opts.flags &= !*f;
            } else {
                data.push(o);
            }
        }
        opts.data = crate::sys::joined(&data, ",");
        opts
    }

    pub fn read_only(&self) -> bool {
        self.flags.contains(MountFlags::RDONLY)
    }

    /// The options back as text, for log lines and errors: `ro,noatime,data=x`.
    pub fn describe(&self) -> String {
        describe_flags(self.flags, &self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_data_are_split() {
        let o = MountOpts::parse("ro,noatime,nodev,data=journal,errors=remount-ro");
        assert_eq!(
            o.flags,
            MountFlags::RDONLY | MountFlags::NOATIME | MountFlags::NODEV
        );
        assert_eq!(o.data, "data=journal,errors=remount-ro");
        assert_eq!(
            o.describe(),
            "ro,nodev,noatime,data=journal,errors=remount-ro"
        );
    }

    #[test]
    fn later_wins_and_defaults_is_ignored() {
        let o = MountOpts::parse("defaults,ro,,rw,noexec,exec");
        assert_eq!(o, MountOpts::default());
        assert_eq!(o.describe(), "rw");
        assert!(MountOpts::parse("rw,ro").read_only());
    }
}
