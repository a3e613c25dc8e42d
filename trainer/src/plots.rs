//! PNG plots for the report: learning curves, predicted vs true age, confusion matrices.
//! Text uses DejaVu Sans embedded from the `dejavu` crate, so no system fonts are needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::files;
use crate::metrics::{GROUP4, Outcome, Report};
use crate::training::EpochStats;

const FONT: &str = "sans-serif";

/// (x, y) points of one line.
type Curve = Vec<(f64, f64)>;

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| Error::Plot("the embedded DejaVu font did not load".into()));
    });
    result
}

fn err(e: impl std::fmt::Debug) -> Error {
    Error::Plot(format!("{e:?}"))
}

/// Training loss and validation MAE per epoch, side by side.
pub fn learning_curves(history: &[EpochStats], path: &Path) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(550);
    let epochs = history.len().max(1) as f64 + 0.5;
    let series = [
        (
            &left,
            "Loss / age MAE on training batches",
            history
                .iter()
                .map(|h| (h.epoch as f64, h.train_loss))
                .collect::<Curve>(),
            history
                .iter()
                .map(|h| (h.epoch as f64, h.train_mae))
                .collect::<Curve>(),
            "train loss",
            "train MAE (years)",
        ),
        (
            &right,
            "Validation",
            history
                .iter()
                .map(|h| (h.epoch as f64, h.val_mae))
                .collect::<Curve>(),
            history
                .iter()
                .map(|h| (h.epoch as f64, (1.0 - h.val_gender_acc) * 100.0))
                .collect::<Curve>(),
            "val age MAE (years)",
            "val gender error (%)",
        ),
    ];
    for (area, title, a, b, la, lb) in series {
        let ymax = a.iter().chain(&b).map(|p| p.1).fold(1.0f64, f64::max) * 1.05;
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0.5f64..epochs, 0f64..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .label_style((FONT, 13))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(a, BLUE.stroke_width(2)))
            .map_err(err)?
            .label(la)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE));
        chart
            .draw_series(LineSeries::new(b, RED.stroke_width(2)))
            .map_err(err)?
            .label(lb)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED));
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Predicted against true age, one dot per face, with the identity line.
pub fn predicted_vs_true(outcomes: &[Outcome], path: &Path) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (650, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Predicted vs true age (test split)", (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(45)
        .build_cartesian_2d(0f64..105f64, 0f64..105f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("true age")
        .y_desc("predicted age")
        .label_style((FONT, 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(outcomes.iter().map(|o| {
            let c = if o.label.gender == 1 {
                RED.mix(0.35)
            } else {
                BLUE.mix(0.35)
            };
            Circle::new((o.label.age as f64, o.estimate.age as f64), 2, c.filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (105.0, 105.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

fn heatmap(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    labels: &[&str],
    m: &[Vec<usize>],
) -> Result<()> {
    let k = labels.len();
    let cell = 300 / k as i32;
    area.titled(title, (FONT, 20)).map_err(err)?;
    let (x0, y0) = (110, 60);
    for (r, row) in m.iter().enumerate() {
        let total: usize = row.iter().sum::<usize>().max(1);
        for (c, &v) in row.iter().enumerate() {
            let share = v as f64 / total as f64;
            let shade = (255.0 * (1.0 - 0.85 * share)) as u8;
            let (x, y) = (x0 + c as i32 * cell, y0 + r as i32 * cell);
            area.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                RGBColor(shade, shade, 255).filled(),
            ))
            .map_err(err)?;
            area.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], BLACK))
                .map_err(err)?;
            let ink = if share > 0.55 { WHITE } else { BLACK };
            area.draw(&Text::new(
                format!("{v}"),
                (x + 8, y + cell / 2 - 16),
                (FONT, 15).into_font().color(&ink),
            ))
            .map_err(err)?;
            area.draw(&Text::new(
                format!("{:.0}%", share * 100.0),
                (x + 8, y + cell / 2 + 2),
                (FONT, 13).into_font().color(&ink),
            ))
            .map_err(err)?;
        }
        area.draw(&Text::new(
            labels[r].to_string(),
            (8, y0 + r as i32 * cell + cell / 2 - 7),
            (FONT, 14),
        ))
        .map_err(err)?;
    }
    for (c, l) in labels.iter().enumerate() {
        area.draw(&Text::new(
            l.to_string(),
            (x0 + c as i32 * cell + 6, y0 + k as i32 * cell + 8),
            (FONT, 14),
        ))
        .map_err(err)?;
    }
    area.draw(&Text::new(
        "rows: true, columns: predicted",
        (x0, y0 + k as i32 * cell + 32),
        (FONT, 13),
    ))
    .map_err(err)?;
    Ok(())
}

/// Gender and age-group confusion matrices.
pub fn confusion(gender: [[usize; 2]; 2], groups: [[usize; 4]; 4], path: &Path) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (900, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(450);
    heatmap(
        &left,
        "Gender",
        &["male", "female"],
        &gender.iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
    )?;
    heatmap(
        &right,
        "Age group",
        &GROUP4,
        &groups.iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
    )?;
    root.present().map_err(err)?;
    Ok(())
}

/// Writes a report folder: the plots, and the report itself as `json_name`. The learning
/// curves need a training history, which `eval` has only when given the run.
pub fn write_report(
    dir: &Path,
    outcomes: &[Outcome],
    report: &Report,
    history: Option<&[EpochStats]>,
    json_name: &str,
) -> Result<()> {
    files::create_dir_all(dir)?;
    if let Some(h) = history {
        learning_curves(h, &dir.join("learning_curves.png"))?;
    }
    predicted_vs_true(outcomes, &dir.join("pred_vs_true.png"))?;
    confusion(
        report.overall.gender_confusion,
        report.group4_confusion,
        &dir.join("confusion.png"),
    )?;
    files::write_json(&dir.join(json_name), report)
}
