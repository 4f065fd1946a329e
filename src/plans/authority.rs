//! Who decides a proposal (PLANS.md §1, §2 rule 6, §5.1): the console role whose holder
//! may approve, reject or confirm it. Pure: from the plan, the proposed level and the
//! track's current level.
//!
//! - Pollution: a warning is signed by the city government (37号 §3.3.2 "报请市政府签发",
//!   PLANS.md §2 rule 6): `signer`.
//! - Coal: level 1 is announced and ended by the commander (33号 §5.2.2, §5.4; PLANS.md §1,
//!   §5.1): any proposal into or out of L1 (proposed L1, or the track at L1 now) is the
//!   `commander`'s; level 2 moves and the confirmation of a termination from L2 are the
//!   command office director's (PLANS.md §1): `director`.

use crate::notice::Plan;

/// The role that decides a proposal of `plan` to `proposed` while the track is at
/// `current`; `None` for a plan without proposals.
pub fn decider(plan: Plan, proposed: &str, current: &str) -> Option<&'static str> {
    match plan {
        Plan::HeavyPollution => Some("signer"),
        Plan::CoalSupply if proposed == "L1" || current == "L1" => Some("commander"),
        Plan::CoalSupply => Some("director"),
        Plan::SevereWeather => None,
    }
}

/// Role names in Chinese for the console.
pub fn role_zh(role: &str) -> &'static str {
    match role {
        "duty" => "值班员",
        "director" => "市指挥部办公室主任",
        "commander" => "指挥长",
        "signer" => "市政府签发人",
        _ => "未知角色",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coal_l1_is_the_commanders_l2_the_directors_pollution_the_signers() {
        use Plan::*;
        assert_eq!(
            decider(CoalSupply, "L1", "L2"),
            Some("commander"),
            "escalate"
        );
        assert_eq!(
            decider(CoalSupply, "L1", "none"),
            Some("commander"),
            "activate at L1"
        );
        assert_eq!(
            decider(CoalSupply, "L2", "L1"),
            Some("commander"),
            "downgrade"
        );
        assert_eq!(
            decider(CoalSupply, "none", "L1"),
            Some("commander"),
            "terminate from L1"
        );
        assert_eq!(
            decider(CoalSupply, "none", "L2"),
            Some("director"),
            "confirm at L2"
        );
        assert_eq!(decider(HeavyPollution, "orange", "yellow"), Some("signer"));
        assert_eq!(decider(SevereWeather, "red", "none"), None);
    }
}
