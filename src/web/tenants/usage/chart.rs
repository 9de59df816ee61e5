//! The usage chart: a server-rendered SVG stacked bar chart laid out here so the template only
//! draws, and how its buckets are labelled.

use time::OffsetDateTime;
use time::macros::format_description;

use super::outcomes::OUTCOMES;
use crate::domain::usage::{Counts, nice_ceiling};
use crate::vocabulary::Window;
use crate::web::page::Clock;

/// Whether the window's buckets are whole (UTC) days, labelled by date alone.
pub(super) fn daily(window: Window) -> bool {
    matches!(window, Window::Month | Window::Quarter)
}

/// A bucket as the chart and table name it: minutes and hours at the viewer's time of day
/// ("14:05", dated "3 Nov 14:05" when `dated`), days by their date ("3 Nov", UTC days).
pub(super) fn bucket_label(
    window: Window,
    at: OffsetDateTime,
    clock: &Clock,
    dated: bool,
) -> String {
    if daily(window) {
        return at
            .format(format_description!("[day padding:none] [month repr:short]"))
            .unwrap_or_default();
    }
    let local = clock.local_time(at);
    let text = if dated {
        local.format(format_description!(
            "[day padding:none] [month repr:short] [hour]:[minute]"
        ))
    } else {
        local.format(format_description!("[hour]:[minute]"))
    };
    text.unwrap_or_default()
}

/// What one bar counts, for the y-axis and the chart's title: "verifications per hour".
fn unit(window: Window) -> &'static str {
    match window {
        Window::Hour => "verifications per minute",
        Window::Day => "verifications per hour",
        Window::Month | Window::Quarter => "verifications per day (UTC)",
    }
}

pub struct Segment {
    pub y: f64,
    pub height: f64,
    pub class: &'static str,
}

pub struct Bar {
    /// Its figures in words, shown above the chart while the bar has focus (keyboard, touch) or
    /// the pointer, and read out as its label.
    pub readout: String,
    pub x: f64,
    pub width: f64,
    pub segments: Vec<Segment>,
    pub title: String,
}

pub struct Tick {
    pub position: f64,
    pub label: String,
    /// Every other x label: phones show only the rest, so labels stay legible without overlapping.
    pub minor: bool,
}

/// An SVG stacked bar chart, laid out here so the template only draws.
pub struct Chart {
    /// The y-axis unit, written above the axis.
    pub unit: &'static str,
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub plot_bottom: f64,
    pub bars: Vec<Bar>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
}

const CHART_WIDTH: f64 = 760.0;
const CHART_HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
/// Room above the plot for the unit and a focused bar's figures.
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;

#[allow(clippy::cast_precision_loss)]
pub fn chart(window: Window, buckets: &[(OffsetDateTime, Counts)], clock: &Clock) -> Chart {
    let ceiling = nice_ceiling(buckets.iter().map(|(_, c)| c.total()).max().unwrap_or(0));
    let plot_height = CHART_HEIGHT - TOP - BOTTOM;
    let plot_bottom = CHART_HEIGHT - BOTTOM;
    let slot = (CHART_WIDTH - LEFT) / buckets.len().max(1) as f64;
    let scale = |count: i64| count as f64 / ceiling as f64 * plot_height;
    let bars = buckets
        .iter()
        .enumerate()
        .map(|(i, (at, counts))| {
            let mut y = plot_bottom;
            let mut segments = Vec::new();
            for outcome in &OUTCOMES {
                let count = counts.get(outcome.code);
                if count > 0 {
                    let height = scale(count);
                    y -= height;
                    segments.push(Segment {
                        y,
                        height,
                        class: outcome.chart,
                    });
                }
            }
            let figures: Vec<String> = OUTCOMES
                .iter()
                .filter_map(|outcome| {
                    let count = counts.get(outcome.code);
                    (count > 0).then(|| format!("{count} {}", outcome.name))
                })
                .collect();
            let figures = if figures.is_empty() {
                "no verifications".to_owned()
            } else {
                figures.join(", ")
            };
            let title = format!("{}: {figures}", bucket_label(window, *at, clock, true));
            Bar {
                readout: title.clone(),
                x: LEFT + i as f64 * slot + slot * 0.15,
                width: slot * 0.7,
                segments,
                title,
            }
        })
        .collect();
    let y_ticks = [0, ceiling / 2, ceiling]
        .into_iter()
        .map(|value| Tick {
            position: plot_bottom - scale(value),
            label: value.to_string(),
            minor: false,
        })
        .collect();
    let every = match window {
        Window::Hour => 10,
        Window::Day => 4,
        Window::Month => 5,
        Window::Quarter => 15,
    };
    // The first label, and each that starts another day, carries its date.
    let mut last_day = None;
    let x_ticks = buckets
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, (at, _))| {
            let day = clock.local_time(*at).date();
            let dated = last_day != Some(day);
            last_day = Some(day);
            Tick {
                position: LEFT + i as f64 * slot + slot / 2.0,
                label: bucket_label(window, *at, clock, dated),
                minor: (i / every) % 2 == 1,
            }
        })
        .collect();
    Chart {
        unit: unit(window),
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        left: LEFT,
        plot_bottom,
        bars,
        y_ticks,
        x_ticks,
    }
}
