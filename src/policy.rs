//! The failure policy as a pure decision: which action a failure ends in,
//! given the configured one, the mode, whether the root was switched and
//! what exists on the boot root. Carrying it out is [`crate::boot`]'s job.

use std::path::Path;

use crate::config::OnFail;

/// What can be run on the boot root right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Have {
    /// The configured old init (`pivot.oldinit`) is an executable we can run.
    pub old_init: bool,
    /// `/bin/sh` is an executable we can run.
    pub shell: bool,
}

/// The action to take, and the ones passed over on the way down to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: OnFail,
    /// Actions wanted but impossible (no old init, no shell), in order.
    pub unusable: Vec<OnFail>,
    /// The root was already switched: nothing on the boot root can be run.
    pub switched: bool,
}

impl Decision {
    /// The action as the status line names it (`oldinit /sbin/init.old`,
    /// `shell /bin/sh`, `reboot`, ...).
    pub fn describe(&self, old_init: &Path) -> String {
        match self.action {
            _ if self.switched => "wait (the root was already switched)".into(),
            OnFail::OldInit => format!("oldinit {}", old_init.display()),
            OnFail::Shell => "shell /bin/sh".into(),
            other => other.name().into(),
        }
    }
}

/// The action `pivot.onfail` asks for, or the mode's default: the old init
/// in a machine image; in an initramfs a shell if there is one, else wait.
pub fn chosen(onfail: Option<OnFail>, initramfs: bool, have: Have) -> OnFail {
    onfail.unwrap_or(if !initramfs {
        OnFail::OldInit
    } else if have.shell {
        OnFail::Shell
    } else {
        OnFail::Wait
    })
}

/// Decides what a failure ends in. An action that cannot be carried out
/// steps down: no old init, a shell; no shell, wait.
pub fn decide(onfail: Option<OnFail>, initramfs: bool, switched: bool, have: Have) -> Decision {
    if switched {
        return Decision {
            action: OnFail::Wait,
            unusable: Vec::new(),
            switched,
        };
    }
    let mut action = chosen(onfail, initramfs, have);
    let mut unusable = Vec::new();
    if action == OnFail::OldInit && !have.old_init {
        unusable.push(action);
        action = OnFail::Shell;
    }
    if action == OnFail::Shell && !have.shell {
        unusable.push(action);
        action = OnFail::Wait;
    }
    Decision {
        action,
        unusable,
        switched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OnFail::*;

    const ALL: [Option<OnFail>; 6] = [
        None,
        Some(OldInit),
        Some(Shell),
        Some(Reboot),
        Some(PowerOff),
        Some(Wait),
    ];

    /// The README's table, case by case: (onfail, initramfs, old init, shell) -> action.
    fn expected(onfail: Option<OnFail>, initramfs: bool, have: Have) -> (OnFail, Vec<OnFail>) {
        let wanted = match onfail {
            Some(a) => a,
            None if !initramfs => OldInit,
            None if have.shell => Shell,
            None => Wait,
        };
        match (wanted, have.old_init, have.shell) {
            (OldInit, true, _) => (OldInit, vec![]),
            (OldInit, false, true) => (Shell, vec![OldInit]),
            (OldInit, false, false) => (Wait, vec![OldInit, Shell]),
            (Shell, _, true) => (Shell, vec![]),
            (Shell, _, false) => (Wait, vec![Shell]),
            (other, _, _) => (other, vec![]),
        }
    }

    #[test]
    fn every_combination() {
        let mut cases = 0;
        for onfail in ALL {
            for initramfs in [false, true] {
                for old_init in [false, true] {
                    for shell in [false, true] {
                        let have = Have { old_init, shell };
                        let d = decide(onfail, initramfs, false, have);
                        let (action, unusable) = expected(onfail, initramfs, have);
                        assert_eq!(
                            (d.action, d.unusable),
                            (action, unusable),
                            "{onfail:?} initramfs={initramfs} {have:?}"
                        );
                        // After the switch nothing of the boot root can run.
                        let d = decide(onfail, initramfs, true, have);
                        assert_eq!((d.action, d.switched), (Wait, true));
                        assert_eq!(
                            d.describe(Path::new("/sbin/init.old")),
                            "wait (the root was already switched)"
                        );
                        cases += 2;
                    }
                }
            }
        }
        assert_eq!(cases, 96);
    }

    #[test]
    fn documented_defaults_and_texts() {
        let all = Have {
            old_init: true,
            shell: true,
        };
        let none = Have {
            old_init: false,
            shell: false,
        };
        let old = Path::new("/sbin/init.old");
        let d = decide(None, false, false, all);
        assert_eq!(d.describe(old), "oldinit /sbin/init.old");
        let d = decide(None, true, false, all);
        assert_eq!(d.describe(old), "shell /bin/sh");
        let d = decide(None, true, false, none);
        assert_eq!(d.describe(old), "wait");
        let d = decide(Some(PowerOff), false, false, none);
        assert_eq!(d.describe(old), "poweroff");
        let d = decide(None, false, false, none);
        assert_eq!((d.action, d.unusable), (Wait, vec![OldInit, Shell]));
    }
}
