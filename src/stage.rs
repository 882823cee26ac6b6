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
    Fsck,
    Mount,
    Check,
    Hook,
    Switch,
    Exec,
}

impl Stage {
    pub const ALL: [Stage; 11] = [
        Stage::Config,
        Stage::Prepare,
        Stage::Modules,
        Stage::Wait,
        Stage::Node,
        Stage::Fsck,
        Stage::Mount,
        Stage::Check,
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
            Stage::Fsck => "fsck",
            Stage::Mount => "mount",
            Stage::Check => "check",
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
