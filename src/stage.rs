//! The stages of the boot, in order: plain data that the settings (which
//! stage `pivot.debug_panic` names), the boot and its failure line share.

/// The stages, in order; the current one names a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Config,
    Prepare,
    Modules,
    Wait,
    Node,
    /// Boot counting (`pivot.tries`): before anything can change the volume.
    Tries,
    Fsck,
    Mount,
    Check,
    /// `pivot.kexec`: the volume's own kernel loaded and jumped into,
    /// instead of the hook, the switch and the exec.
    Kexec,
    Hook,
    Switch,
    Exec,
}

impl Stage {
    pub const ALL: [Stage; 13] = [
        Stage::Config,
        Stage::Prepare,
        Stage::Modules,
        Stage::Wait,
        Stage::Node,
        Stage::Tries,
        Stage::Fsck,
        Stage::Mount,
        Stage::Check,
        Stage::Kexec,
        Stage::Hook,
        Stage::Switch,
        Stage::Exec,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Prepare => "prepare",
            Stage::Modules => "modules",
            Stage::Wait => "wait",
            Stage::Node => "node",
            Stage::Tries => "tries",
            Stage::Fsck => "fsck",
            Stage::Mount => "mount",
            Stage::Check => "check",
            Stage::Kexec => "kexec",
            Stage::Hook => "hook",
            Stage::Switch => "switch",
            Stage::Exec => "exec",
        }
    }

    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_name(s.name()), Some(s));
        }
        assert_eq!(Stage::from_name("bogus"), None);
    }
}
