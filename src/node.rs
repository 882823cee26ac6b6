//! Block devices as the kernel names them, and the node stage: their nodes
//! in /dev, made with mknod when missing (no devtmpfs, a static /dev).

use std::path::{Path, PathBuf};

use crate::error::{Error, NodeKind, Result};
use crate::sys::{self, FileType, Sys};

/// A block device as the kernel names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub major: u32,
    pub minor: u32,
}

impl Device {
    pub fn describe(&self) -> String {
        format!("{} ({}:{})", self.name, self.major, self.minor)
    }
}

/// Parses a sysfs `dev` file (`259:2\n`).
pub fn parse_devno(s: &str) -> Option<(u32, u32)> {
    let (a, b) = sys::trim(s).split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The node stage: makes sure `dev_dir/NAME` is a block node for `dev`,
/// creating it with mknod when missing (no devtmpfs, static /dev).
pub fn ensure_node(s: &dyn Sys, dev_dir: &Path, dev: &Device) -> Result<PathBuf> {
    let path = dev_dir.join(&dev.name);
    let want = (dev.major, dev.minor);
    let found = match s.lstat(&path) {
        Err(_) => {
            s.mknod_block(&path, dev.major, dev.minor)?;
            log::info!(
                "created block node {} ({}:{}) with mknod",
                path.display(),
                dev.major,
                dev.minor
            );
            return Ok(path);
        }
        Ok(st) if st.kind == FileType::BlockDevice => {
            if sys::split_dev(st.rdev) == want {
                return Ok(path);
            }
            let (a, b) = sys::split_dev(st.rdev);
            NodeKind::Block(a, b)
        }
        Ok(st) => match st.kind {
            FileType::Directory => NodeKind::Directory,
            FileType::Symlink => NodeKind::Symlink,
            FileType::CharacterDevice => NodeKind::CharDevice,
            _ => NodeKind::Other,
        },
    };
    Err(Error::NotBlockDevice { path, found, want })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, major: u32, minor: u32) -> Device {
        Device {
            name: name.into(),
            major,
            minor,
        }
    }

    #[test]
    fn devno_file() {
        assert_eq!(parse_devno("259:2\n"), Some((259, 2)));
        assert_eq!(parse_devno("8:240"), Some((8, 240)));
        assert_eq!(parse_devno("8-240"), None);
        assert_eq!(parse_devno(""), None);
    }

    #[test]
    fn ensure_node_creates_or_refuses() {
        use crate::sys::{Files, RealSys};
        let real = RealSys::default();
        let dir = std::env::temp_dir().join(format!("pivot-dev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sdp")).unwrap();
        let err = ensure_node(&real, &dir, &dev("sdp", 8, 240)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}/sdp exists but is a directory", dir.display())
        );
        // A missing node is made with mknod, with the device's number.
        let fake = sys::fake::FakeSys::default();
        let p = ensure_node(&fake, &dir, &dev("sdq", 8, 250)).unwrap();
        assert_eq!(p, dir.join("sdq"));
        assert_eq!(
            fake.log(),
            vec![format!("mknod {}/sdq 8:250", dir.display())]
        );
        if sys::is_root_user() {
            let p = ensure_node(&real, &dir, &dev("sdq", 8, 250)).unwrap();
            let st = real.lstat(&p).unwrap();
            assert_eq!(st.kind, FileType::BlockDevice);
            assert_eq!(st.rdev, sys::makedev(8, 250));
            // A second call finds the node and leaves it.
            assert_eq!(ensure_node(&real, &dir, &dev("sdq", 8, 250)).unwrap(), p);
            let err = ensure_node(&real, &dir, &dev("sdq", 8, 1)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{}/sdq exists but is a block node for 8:250, not 8:1",
                    dir.display()
                )
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
