//! A reproducible newc cpio writer (the initramfs format) and the
//! gen_init_cpio-style list format of `initramfs/files.txt`.
//! Used by `pivot-mkinitramfs`, not by PID 1.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// Device node: `'c'` or `'b'`, major, minor.
    Node(char, u32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub kind: Kind,
}

/// An archive under construction: path (without leading `/`) -> entry.
/// Written sorted, with mtime 0 and inode numbers in path order, so the same
/// inputs always give the same bytes.
#[derive(Debug, Default)]
pub struct Archive {
    pub entries: BTreeMap<String, Entry>,
}

fn clean(path: &str) -> String {
    path.trim_matches('/').to_string()
}

impl Archive {
    /// Adds an entry and any missing parent directories (0755, root).
    pub fn add(&mut self, path: &str, entry: Entry) {
        let p = clean(path);
        let mut parent = String::new();
        for comp in p.split('/').collect::<Vec<_>>().iter().rev().skip(1).rev() {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            self.entries.entry(parent.clone()).or_insert(Entry {
                mode: 0o755,
                uid: 0,
                gid: 0,
                kind: Kind::Dir,
            });
        }
        if !p.is_empty() {
            self.entries.insert(p, entry);
        }
    }

    /// Adds the entries of a list: `dir NAME MODE UID GID`,
    /// `nod NAME MODE UID GID c|b MAJ MIN`, `slink NAME TARGET MODE UID GID`,
    /// `file NAME SOURCE MODE UID GID`. `#` starts a comment.
    pub fn add_list(
        &mut self,
        text: &str,
        read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let err = |why: &str| format!("line {}: {why}: {line}", i + 1);
            let num =
                |s: &str, radix: u32| u32::from_str_radix(s, radix).map_err(|_| err("bad number"));
            // Each form ends in (or, for nod, continues after) MODE UID GID.
            let (name, owner, kind) = match f.as_slice() {
                ["dir", name, owner @ ..] if owner.len() == 3 => (name, owner, Kind::Dir),
                ["nod", name, m, u, g, t @ ("c" | "b"), maj, min] => (
                    name,
                    &[*m, *u, *g][..],
                    Kind::Node(
                        t.chars().next().unwrap_or('c'),
                        num(maj, 10)?,
                        num(min, 10)?,
                    ),
                ),
                ["slink", name, target, owner @ ..] if owner.len() == 3 => {
                    (name, owner, Kind::Symlink(target.to_string()))
                }
                ["file", name, src, owner @ ..] if owner.len() == 3 => {
                    (name, owner, Kind::File(read(src).map_err(|e| err(&e))?))
                }
                _ => return Err(err("not one of dir, nod, slink, file with their fields")),
            };
            let [mode, uid, gid] = owner else {
                return Err(err("expected MODE UID GID"));
            };
            let entry = Entry {
                mode: num(mode, 8)?,
                uid: num(uid, 10)?,
                gid: num(gid, 10)?,
                kind,
            };
            self.add(name, entry);
        }
        Ok(())
    }

    /// The archive in newc format.
    pub fn write(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, e)) in self.entries.iter().enumerate() {
            let (type_bits, data, rdev) = match &e.kind {
                Kind::Dir => (0o040000, &[][..], (0, 0)),
                Kind::File(d) => (0o100000, &d[..], (0, 0)),
                Kind::Symlink(t) => (0o120000, t.as_bytes(), (0, 0)),
                Kind::Node('b', ma, mi) => (0o060000, &[][..], (*ma, *mi)),
                Kind::Node(_, ma, mi) => (0o020000, &[][..], (*ma, *mi)),
            };
            let nlink = if e.kind == Kind::Dir { 2 } else { 1 };
            header(
                &mut out,
                ino as u32 + 1,
                type_bits | (e.mode & 0o7777),
                e.uid,
                e.gid,
                nlink,
                data.len(),
                rdev,
                path,
            );
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        header(&mut out, 0, 0, 0, 0, 1, 0, (0, 0), "TRAILER!!!");
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[allow(clippy::too_many_arguments)]
fn header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) {
    out.extend_from_slice(b"070701");
    let fields = [
        ino,
        mode,
        uid,
        gid,
        nlink,
        0,
        size as u32,
        0,
        0,
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0,
    ];
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_layout() {
        let mut a = Archive::default();
        let read = |src: &str| -> Result<Vec<u8>, String> { Ok(format!("<{src}>").into_bytes()) };
        a.add_list(
            "# skeleton\ndir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\nslink /bin/sh busybox 0777 0 0\n\
             file /init pivot-init 0755 0 0\n",
            &read,
        )
        .unwrap();
        assert_eq!(
            a.entries.keys().collect::<Vec<_>>(),
            vec!["bin", "bin/sh", "dev", "dev/console", "init"]
        );
        let out = a.write();
        assert_eq!(&out[..6], b"070701");
        assert!(out.len().is_multiple_of(4));
        // The same input gives the same bytes.
        let mut b = Archive::default();
        b.add_list("file /init pivot-init 0755 0 0\nslink /bin/sh busybox 0777 0 0\nnod /dev/console 0600 0 0 c 5 1\n", &read)
            .unwrap();
        assert_eq!(b.write(), out);
        assert!(
            a.add_list("dir /x 0755 0\n", &read)
                .unwrap_err()
                .starts_with("line 1: ")
        );
        assert!(a.add_list("nod /x 0755 0 0 q 1 1\n", &read).is_err());
    }

    /// GNU cpio reads what we write, with the modes, owners and node numbers.
    #[test]
    fn gnu_cpio_lists_it() {
        let mut a = Archive::default();
        a.add(
            "/dev/console",
            Entry {
                mode: 0o600,
                uid: 0,
                gid: 0,
                kind: Kind::Node('c', 5, 1),
            },
        );
        a.add(
            "/init",
            Entry {
                mode: 0o755,
                uid: 0,
                gid: 0,
                kind: Kind::File(b"#!/bin/sh\n".to_vec()),
            },
        );
        a.add(
            "/bin/sh",
            Entry {
                mode: 0o777,
                uid: 0,
                gid: 0,
                kind: Kind::Symlink("busybox".into()),
            },
        );
        let mut child = std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("cpio runs (scripts/setup installs it)");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&a.write()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            lines[0].starts_with("drwxr-xr-x   2 root     root            0 Jan  1  1970 bin"),
            "{text}"
        );
        assert!(lines[1].contains("bin/sh -> busybox"), "{text}");
        assert!(
            lines[3]
                .starts_with("crw-------   1 root     root       5,   1 Jan  1  1970 dev/console"),
            "{text}"
        );
        assert!(
            lines[4].starts_with("-rwxr-xr-x   1 root     root           10 Jan  1  1970 init"),
            "{text}"
        );
    }
}
