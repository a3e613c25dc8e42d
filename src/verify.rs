//! Decisions on top of an estimate: does a face fit a stated age and gender (verification), and is
//! it clearly over or under an age threshold (age gate)? Both use the calibrated age range
//! (`age_low..age_high`, which holds the true age about 80% of the time) and never answer
//! confidently near a line: when the evidence is not clear they say "cannot tell" / "check ID",
//! with the reason.
//!
//! Rules (`VerifyRules` / `GateRules` hold the numbers):
//! - Stated age: *consistent* inside the range; *inconsistent* only outside the **doubled** range
//!   (each side widened by its half-width, at least `min_margin` years; about 2 predicted
//!   standard deviations, so a truthful claim lands there rarely); in between, *cannot tell*.
//! - Stated gender: *consistent* when the model shows a gender (`gender_reliable`) and it matches;
//!   *inconsistent* only when it shows the other one with at least `strong_gender` confidence;
//!   otherwise, and always for faces estimated younger than `estimate::GENDER_MIN_AGE`,
//!   *cannot tell*.
//! - Age gate at threshold `T`: *clearly over* only if the range, widened on each side by half
//!   its half-width (at least `min_margin` years; about 1.6 predicted standard deviations, so
//!   roughly 1 in 20 people whose true age is at the line's edge of the range slip through),
//!   lies at or above `T`; *clearly under* only if it lies below `T`; anything else is *check ID*.
//! - No estimate, a face too small or blurred: *cannot tell* / *check ID*.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::estimate::{Estimate, GENDER_MIN_AGE};
use crate::results::{Face, Quality};

/// The oldest stated age or threshold accepted.
pub const MAX_STATED_AGE: f32 = 130.0;

/// A stated age or gender that cannot be checked.
#[derive(Debug, Error, PartialEq)]
pub enum ClaimError {
    #[error("state an age, a gender or both")]
    Empty,
    #[error("the stated age must be a number from 0 to {MAX_STATED_AGE}, got {0}")]
    BadAge(f32),
    #[error("the age threshold must be a number from 1 to {MAX_STATED_AGE}, got {0}")]
    BadThreshold(f32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Female,
    Male,
}

/// What a person says about themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Claim {
    /// Age in years.
    pub age: Option<f32>,
    pub gender: Option<Gender>,
}

impl Claim {
    /// Checks the claim itself (something stated, a possible age), whatever the faces.
    pub fn validate(&self) -> Result<(), ClaimError> {
        match self.age {
            None if self.gender.is_none() => Err(ClaimError::Empty),
            Some(a) if !(0.0..=MAX_STATED_AGE).contains(&a) => Err(ClaimError::BadAge(a)),
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Consistent,
    Inconsistent,
    CannotTell,
}

/// One part of a verification (age or gender) and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub verdict: Verdict,
    pub reason: String,
}

/// A face checked against a claim. `verdict` is the worst of the parts: inconsistent if any part
/// is, else cannot tell if any part is, else consistent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verification {
    pub verdict: Verdict,
    pub reason: String,
    pub age: Option<Check>,
    pub gender: Option<Check>,
}

/// Numbers behind the verification rules.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyRules {
    /// Least widening, in years, of each side of the range before a stated age is called
    /// inconsistent.
    pub min_margin: f32,
    /// Confidence in the other gender needed to call a stated gender inconsistent.
    pub strong_gender: f32,
}

impl Default for VerifyRules {
    fn default() -> Self {
        Self {
            min_margin: 3.0,
            // Where the model shows a gender it is right 96.8% of the time (README); 0.85 keeps
            // "inconsistent" for the clear cases.
            strong_gender: 0.85,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateDecision {
    ClearlyOver,
    ClearlyUnder,
    CheckId,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateResult {
    pub decision: GateDecision,
    pub threshold: f32,
    pub reason: String,
}

/// Numbers behind the age-gate rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GateRules {
    /// Least widening, in years, of each side of the range.
    pub min_margin: f32,
    /// Widening of each side of the range as a fraction of its half-width.
    pub range_factor: f32,
}

impl Default for GateRules {
    fn default() -> Self {
        Self {
            min_margin: 2.0,
            range_factor: 0.5,
        }
    }
}

/// What a decision needs from a face: its estimate and quality (a whole [`Face`] from
/// `analyze` deserialises into this; other fields are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
pub struct FaceEvidence {
    pub estimate: Option<Estimate>,
    pub quality: Quality,
}

impl From<&Face> for FaceEvidence {
    fn from(face: &Face) -> Self {
        Self {
            estimate: face.estimate,
            quality: face.quality,
        }
    }
}

impl FaceEvidence {
    /// The estimate if the face is good enough to decide on, else why not.
    fn usable(&self) -> Result<&Estimate, &'static str> {
        if self.quality.too_small {
            return Err("the face is too small to judge");
        }
        if self.quality.blurry {
            return Err("the face is too blurred to judge");
        }
        self.estimate.as_ref().ok_or("no age or gender estimate")
    }
}

/// The range widened on each side by `factor` times its half-width, at least `min_margin` years.
fn widened_range(e: &Estimate, factor: f32, min_margin: f32) -> (f32, f32) {
    let margin = (factor * (e.age_high - e.age_low) / 2.0).max(min_margin);
    (e.age_low - margin, e.age_high + margin)
}

fn years(x: f32) -> String {
    format!("{}", x.round().max(0.0) as i32)
}

fn range_text(e: &Estimate) -> String {
    format!(
        "estimated {} (likely {}–{})",
        years(e.age),
        years(e.age_low),
        years(e.age_high)
    )
}

fn check_age(e: &Estimate, stated: f32, rules: &VerifyRules) -> Check {
    let (lo, hi) = widened_range(e, 1.0, rules.min_margin);
    // Inside the range as shown (whole years), so the reason never contradicts the numbers.
    let (verdict, how) = if (e.age_low.round()..=e.age_high.round()).contains(&stated) {
        (Verdict::Consistent, "within")
    } else if stated < lo || stated > hi {
        (Verdict::Inconsistent, "far outside")
    } else {
        (Verdict::CannotTell, "just outside")
    };
    Check {
        verdict,
        reason: format!(
            "stated age {} is {how} the likely range: {}",
            years(stated),
            range_text(e)
        ),
    }
}

fn check_gender(e: &Estimate, stated: Gender, rules: &VerifyRules) -> Check {
    let name = |g: Gender| match g {
        Gender::Female => "female",
        Gender::Male => "male",
    };
    let p_stated = match stated {
        Gender::Female => e.p_female,
        Gender::Male => 1.0 - e.p_female,
    };
    let (verdict, reason) = if e.age < GENDER_MIN_AGE {
        (
            Verdict::CannotTell,
            "gender cannot be judged from a young child's face".to_owned(),
        )
    } else if !e.gender_reliable {
        (
            Verdict::CannotTell,
            format!(
                "the model is unsure of the gender ({} {})",
                percent(e.gender_confidence()),
                if e.p_female >= 0.5 { "female" } else { "male" }
            ),
        )
    } else if p_stated >= 0.5 {
        (
            Verdict::Consistent,
            format!(
                "the model also says {} ({} confidence)",
                name(stated),
                percent(p_stated)
            ),
        )
    } else {
        let other = match stated {
            Gender::Female => Gender::Male,
            Gender::Male => Gender::Female,
        };
        let verdict = if 1.0 - p_stated >= rules.strong_gender {
            Verdict::Inconsistent
        } else {
            Verdict::CannotTell
        };
        (
            verdict,
            format!(
                "the model says {} ({} confidence)",
                name(other),
                percent(1.0 - p_stated)
            ),
        )
    };
    Check { verdict, reason }
}

/// A probability as a whole percentage; never "100%", which would claim certainty.
fn percent(p: f32) -> String {
    if p >= 0.995 {
        ">99%".to_owned()
    } else {
        format!("{:.0}%", 100.0 * p)
    }
}

/// Checks one face against a claim.
pub fn verify(
    face: &FaceEvidence,
    claim: &Claim,
    rules: &VerifyRules,
) -> Result<Verification, ClaimError> {
    claim.validate()?;
    let e = match face.usable() {
        Ok(e) => e,
        Err(why) => {
            let cannot = || Check {
                verdict: Verdict::CannotTell,
                reason: why.to_owned(),
            };
            return Ok(Verification {
                verdict: Verdict::CannotTell,
                reason: why.to_owned(),
                age: claim.age.map(|_| cannot()),
                gender: claim.gender.map(|_| cannot()),
            });
        }
    };
    let age = claim.age.map(|a| check_age(e, a, rules));
    let gender = claim.gender.map(|g| check_gender(e, g, rules));
    let parts: Vec<&Check> = age.iter().chain(gender.iter()).collect();
    let worst = [Verdict::Inconsistent, Verdict::CannotTell]
        .into_iter()
        .find(|v| parts.iter().any(|c| c.verdict == *v))
        .unwrap_or(Verdict::Consistent);
    let reason = parts
        .iter()
        .filter(|c| c.verdict == worst)
        .map(|c| c.reason.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Verification {
        verdict: worst,
        reason,
        age,
        gender,
    })
}

/// Checks an age-gate threshold, whatever the faces.
pub fn validate_threshold(threshold: f32) -> Result<(), ClaimError> {
    if (1.0..=MAX_STATED_AGE).contains(&threshold) {
        Ok(())
    } else {
        Err(ClaimError::BadThreshold(threshold))
    }
}

/// Decides one face at an age threshold.
pub fn age_gate(
    face: &FaceEvidence,
    threshold: f32,
    rules: &GateRules,
) -> Result<GateResult, ClaimError> {
    validate_threshold(threshold)?;
    let t = years(threshold);
    let (decision, reason) = match face.usable() {
        Err(why) => (GateDecision::CheckId, why.to_owned()),
        Ok(e) => {
            let (lo, hi) = widened_range(e, rules.range_factor, rules.min_margin);
            if lo >= threshold {
                (
                    GateDecision::ClearlyOver,
                    format!("{}: well above {t}", range_text(e)),
                )
            } else if hi < threshold {
                (
                    GateDecision::ClearlyUnder,
                    format!("{}: well below {t}", range_text(e)),
                )
            } else {
                (
                    GateDecision::CheckId,
                    format!("{}: too close to {t} to tell", range_text(e)),
                )
            }
        }
    };
    Ok(GateResult {
        decision,
        threshold,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality() -> Quality {
        Quality {
            too_small: false,
            blurry: false,
            cut_off: false,
            eye_distance: 40.0,
            sharpness: 300.0,
        }
    }

    fn face(age: f32, half: f32, p_female: f32) -> FaceEvidence {
        let reliable =
            age >= GENDER_MIN_AGE && (p_female - 0.5).abs() >= crate::estimate::GENDER_MARGIN;
        FaceEvidence {
            estimate: Some(Estimate {
                age,
                age_std: half,
                age_low: (age - half).max(0.0),
                age_high: age + half,
                p_female,
                gender_reliable: reliable,
            }),
            quality: quality(),
        }
    }

    fn age_claim(a: f32) -> Claim {
        Claim {
            age: Some(a),
            gender: None,
        }
    }

    fn gender_claim(g: Gender) -> Claim {
        Claim {
            age: None,
            gender: Some(g),
        }
    }

    #[test]
    fn stated_age_inside_just_outside_and_far_outside() {
        let r = VerifyRules::default();
        let f = face(30.0, 5.0, 0.9); // likely 25-35, doubled 20-40
        let v = |a| verify(&f, &age_claim(a), &r).unwrap();
        assert_eq!(v(28.0).verdict, Verdict::Consistent);
        assert_eq!(v(25.0).verdict, Verdict::Consistent);
        assert_eq!(v(38.0).verdict, Verdict::CannotTell);
        assert_eq!(v(21.0).verdict, Verdict::CannotTell);
        assert_eq!(v(41.0).verdict, Verdict::Inconsistent);
        assert_eq!(v(16.0).verdict, Verdict::Inconsistent);
        assert!(v(41.0).reason.contains("far outside"), "{}", v(41.0).reason);
        assert!(v(41.0).reason.contains("25–35"));
    }

    #[test]
    fn narrow_ranges_are_widened_by_at_least_the_margin() {
        // likely 29-31: 33 is only 2 years out, inside the 3-year margin.
        let f = face(30.0, 1.0, 0.9);
        let r = VerifyRules::default();
        assert_eq!(
            verify(&f, &age_claim(33.0), &r).unwrap().verdict,
            Verdict::CannotTell
        );
        assert_eq!(
            verify(&f, &age_claim(35.0), &r).unwrap().verdict,
            Verdict::Inconsistent
        );
    }

    #[test]
    fn gender_needs_a_reliable_and_strong_prediction() {
        let r = VerifyRules::default();
        let check = |f: &FaceEvidence, g| verify(f, &gender_claim(g), &r).unwrap().verdict;
        let woman = face(30.0, 5.0, 0.95);
        assert_eq!(check(&woman, Gender::Female), Verdict::Consistent);
        assert_eq!(check(&woman, Gender::Male), Verdict::Inconsistent);
        // Shown as female (0.75) but not strongly enough to contradict "male".
        let leaning = face(30.0, 5.0, 0.75);
        assert_eq!(check(&leaning, Gender::Female), Verdict::Consistent);
        assert_eq!(check(&leaning, Gender::Male), Verdict::CannotTell);
        // Unsure, and children: never a confident gender verdict.
        assert_eq!(
            check(&face(30.0, 5.0, 0.55), Gender::Male),
            Verdict::CannotTell
        );
        let child = face(3.0, 1.5, 0.99);
        assert_eq!(check(&child, Gender::Female), Verdict::CannotTell);
        assert_eq!(check(&child, Gender::Male), Verdict::CannotTell);
        assert!(
            verify(&child, &gender_claim(Gender::Male), &r)
                .unwrap()
                .reason
                .contains("child")
        );
    }

    #[test]
    fn the_overall_verdict_is_the_worst_part() {
        let r = VerifyRules::default();
        let f = face(30.0, 5.0, 0.95);
        let both = |a, g| Claim {
            age: Some(a),
            gender: Some(g),
        };
        let v = verify(&f, &both(30.0, Gender::Female), &r).unwrap();
        assert_eq!(v.verdict, Verdict::Consistent);
        assert_eq!(v.age.as_ref().unwrap().verdict, Verdict::Consistent);
        let v = verify(&f, &both(30.0, Gender::Male), &r).unwrap();
        assert_eq!(v.verdict, Verdict::Inconsistent);
        assert!(v.reason.contains("says female"), "{}", v.reason);
        let v = verify(&f, &both(37.0, Gender::Female), &r).unwrap();
        assert_eq!(v.verdict, Verdict::CannotTell);
    }

    #[test]
    fn poor_faces_cannot_be_told() {
        let r = VerifyRules::default();
        let mut f = face(30.0, 5.0, 0.95);
        f.quality.blurry = true;
        let v = verify(&f, &age_claim(30.0), &r).unwrap();
        assert_eq!(v.verdict, Verdict::CannotTell);
        assert!(v.reason.contains("blurred"));
        assert_eq!(v.age.unwrap().verdict, Verdict::CannotTell);
        assert!(v.gender.is_none());
        let none = FaceEvidence {
            estimate: None,
            quality: Quality {
                too_small: true,
                ..quality()
            },
        };
        let g = age_gate(&none, 18.0, &GateRules::default()).unwrap();
        assert_eq!(g.decision, GateDecision::CheckId);
        assert!(g.reason.contains("too small"));
    }

    #[test]
    fn bad_claims_are_errors() {
        let f = face(30.0, 5.0, 0.9);
        let r = VerifyRules::default();
        assert_eq!(
            verify(&f, &Claim::default(), &r).unwrap_err(),
            ClaimError::Empty
        );
        assert!(matches!(
            verify(&f, &age_claim(f32::NAN), &r),
            Err(ClaimError::BadAge(_))
        ));
        assert!(verify(&f, &age_claim(-1.0), &r).is_err());
        assert!(verify(&f, &age_claim(200.0), &r).is_err());
        let g = GateRules::default();
        assert!(age_gate(&f, 0.0, &g).is_err());
        assert!(age_gate(&f, f32::INFINITY, &g).is_err());
        assert!(age_gate(&f, f32::NAN, &g).is_err());
    }

    #[test]
    fn age_gate_is_never_a_bare_guess_near_the_line() {
        let g = GateRules::default();
        let gate = |age, half| age_gate(&face(age, half, 0.9), 18.0, &g).unwrap().decision;
        assert_eq!(gate(40.0, 6.0), GateDecision::ClearlyOver); // widened 31-49
        assert_eq!(gate(27.0, 6.0), GateDecision::ClearlyOver); // widened 18-36: at the line
        assert_eq!(gate(26.0, 6.0), GateDecision::CheckId);
        assert_eq!(gate(40.0, 20.0), GateDecision::CheckId); // widened 10-70: too unsure
        assert_eq!(gate(19.0, 1.0), GateDecision::CheckId); // estimated over, but close
        assert_eq!(gate(17.0, 1.0), GateDecision::CheckId); // estimated under, but close
        assert_eq!(gate(6.0, 2.0), GateDecision::ClearlyUnder); // widened 2-10 (2-year margin)
        assert_eq!(gate(13.0, 2.0), GateDecision::ClearlyUnder); // widened 9-17
        assert_eq!(gate(14.0, 2.0), GateDecision::CheckId); // widened 10-18
        let r = age_gate(&face(6.0, 2.0, 0.5), 25.0, &g).unwrap();
        assert_eq!(r.threshold, 25.0);
        assert!(r.reason.contains("well below 25"), "{}", r.reason);
    }

    #[test]
    fn results_serialise_in_snake_case() {
        let g = age_gate(&face(40.0, 6.0, 0.9), 18.0, &GateRules::default()).unwrap();
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["decision"], "clearly_over");
        let claim: Claim = serde_json::from_str(r#"{"age": 30, "gender": "female"}"#).unwrap();
        assert_eq!(claim.gender, Some(Gender::Female));
        let v = verify(&face(30.0, 5.0, 0.9), &claim, &VerifyRules::default()).unwrap();
        assert_eq!(serde_json::to_value(&v).unwrap()["verdict"], "consistent");
    }
}
