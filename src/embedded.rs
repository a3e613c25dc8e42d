//! The models compiled into the library: the YuNet detector always, the age/gender classifier
//! and its model card when `model/agegender.graph` and `model/agegender.json` were present at build
//! time (see `build.rs`). The page (`src/wasm.rs`) and the native golden test use [`pipeline`], so
//! both run exactly the same models.

use crate::error::Result;
use crate::pipeline::Pipeline;

/// The classifier, when shipped: `model/agegender.graph`, which the trainer's `export` writes
/// with `model/agegender.onnx` (kept equal to its translation by `tests/shipped_model.rs`).
#[cfg(agegender_classifier)]
pub const CLASSIFIER: Option<&[u8]> = Some(include_bytes!("../model/agegender.graph"));
#[cfg(not(agegender_classifier))]
pub const CLASSIFIER: Option<&[u8]> = None;

/// The classifier's model card (JSON: name, calibration, metrics...), when shipped.
#[cfg(agegender_classifier)]
pub const CARD: Option<&str> = Some(include_str!("../model/agegender.json"));
#[cfg(not(agegender_classifier))]
pub const CARD: Option<&str> = None;

/// What the library needs from the card, as constants `build.rs` wrote from it (the page's
/// module then parses no JSON).
#[cfg(agegender_classifier)]
mod card {
    include!(concat!(env!("OUT_DIR"), "/card.rs"));
}

/// Detector and, when embedded, the classifier calibrated from its card; otherwise detection
/// only (faces come back with `estimate: None`).
pub fn pipeline() -> Result<Pipeline> {
    #[cfg(agegender_classifier)]
    if let Some(model) = CLASSIFIER {
        return Ok(Pipeline::new(model)?.with_calibration(card::CALIBRATION));
    }
    Pipeline::detector_only()
}

/// The classifier's name from its card, when embedded.
pub fn classifier_name() -> Option<String> {
    #[cfg(agegender_classifier)]
    return Some(card::NAME.to_string());
    #[cfg(not(agegender_classifier))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_models_load_together() {
        let pipeline = pipeline().expect("embedded models load");
        assert_eq!(pipeline.classifier().is_some(), CLASSIFIER.is_some());
        assert_eq!(classifier_name().is_some(), CARD.is_some());
    }

    #[test]
    fn the_constants_are_the_cards() {
        #[derive(serde::Deserialize)]
        struct Card {
            name: String,
        }
        let Some(json) = CARD else { return };
        let card: Card = serde_json::from_str(json).unwrap();
        assert_eq!(classifier_name(), Some(card.name));
        let calibration = crate::classify::calibration_from_card(json).unwrap();
        assert_eq!(
            pipeline().unwrap().classifier().unwrap().calibration(),
            calibration
        );
    }
}
