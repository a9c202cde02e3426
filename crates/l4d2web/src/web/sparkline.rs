//! Server-rendered sparklines: an inline `<svg>` per series, drawn with
//! presentation attributes and classes only (the CSP allows no inline
//! style or script), plus the current value and the window's min/max.

use crate::servers::host_usage::DiskSpace;
use crate::servers::resources::{HostResources, Series, ServerResources, WINDOW};

/// The drawing area, in viewBox units.
pub const WIDTH: f64 = 240.0;
pub const HEIGHT: f64 = 48.0;
/// Room at the top and bottom so the line's stroke is never clipped.
const PAD: f64 = 2.0;

/// One chart, ready for a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Used in element ids (`res-cpu`, …).
    pub key: &'static str,
    pub label: &'static str,
    /// The inline SVG, or None while there is no sample.
    pub svg: Option<String>,
    pub current: String,
    pub min: String,
    pub max: String,
    /// What the chart says without a sample.
    pub empty: &'static str,
}

/// Escapes text for an XML attribute or text node.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The SVG of `series` over a window of `window_secs` (now at the right
/// edge), scaled from 0 to `floor_max` or the series' maximum, whichever is
/// larger, so a flat idle line sits low instead of mid-height. None for an
/// empty series.
pub fn svg(series: &Series, window_secs: f64, floor_max: f64, label: &str) -> Option<String> {
    let points: Vec<(f64, f64)> = series
        .points
        .iter()
        .copied()
        .filter(|(ago, v)| ago.is_finite() && v.is_finite())
        .collect();
    if points.is_empty() {
        return None;
    }
    let top = points
        .iter()
        .map(|p| p.1)
        .fold(floor_max.max(f64::MIN_POSITIVE), f64::max);
    let window = if window_secs > 0.0 { window_secs } else { 1.0 };
    let xy = |(ago, v): (f64, f64)| {
        let x = WIDTH - (ago.clamp(0.0, window) / window) * WIDTH;
        let y = HEIGHT - PAD - (v.clamp(0.0, top) / top) * (HEIGHT - 2.0 * PAD);
        (x, y)
    };
    let mut out = format!(
        "<svg class=\"sparkline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}\">",
        escape(label)
    );
    out.push_str(&format!(
        "<line class=\"baseline\" x1=\"0\" y1=\"{y}\" x2=\"{WIDTH}\" y2=\"{y}\" stroke=\"currentColor\" stroke-opacity=\"0.25\" stroke-width=\"1\"/>",
        y = HEIGHT - PAD
    ));
    if points.len() == 1 {
        let (x, y) = xy(points[0]);
        out.push_str(&format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\" fill=\"currentColor\"/>"
        ));
    } else {
        let coords: Vec<String> = points
            .iter()
            .map(|p| {
                let (x, y) = xy(*p);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        out.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" vector-effect=\"non-scaling-stroke\"/>",
            coords.join(" ")
        ));
    }
    out.push_str("</svg>");
    Some(out)
}

fn chart(
    key: &'static str,
    label: &'static str,
    series: &Series,
    floor_max: f64,
    fmt: fn(f64) -> String,
) -> Chart {
    let text = |v: Option<f64>| v.map(fmt).unwrap_or_default();
    Chart {
        key,
        label,
        svg: svg(series, WINDOW.as_secs_f64(), floor_max, label),
        current: text(series.current()),
        min: text(series.min()),
        max: text(series.max()),
        empty: "no data yet",
    }
}

pub fn percent(v: f64) -> String {
    format!("{v:.1} %")
}

/// Bytes in binary units, as operators read memory and disk.
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn fps(v: f64) -> String {
    format!("{v:.1}")
}

/// The server page's three charts: CPU (100 % = one core), memory, FPS.
pub fn server_charts(r: &ServerResources) -> Vec<Chart> {
    let mut memory = chart("memory", "Memory", &r.memory, 0.0, bytes);
    // CPU figures come with the same look at the host: memory missing then
    // is a host that does not account it (no memory controller), not a
    // matter of waiting.
    if memory.svg.is_none() && r.cpu.current().is_some() {
        memory.empty = "not reported by this host";
    }
    vec![
        chart("cpu", "CPU (100 % = one core)", &r.cpu, 100.0, percent),
        memory,
        chart("fps", "Server FPS", &r.fps, 30.0, fps),
    ]
}

/// The dashboard's host block.
#[derive(Debug, Clone)]
pub struct HostCharts {
    pub charts: Vec<Chart>,
    /// "12.3 GiB free of 40.0 GiB", or why it is unknown.
    pub disk: String,
}

pub fn host_charts(r: &HostResources, disk: Result<DiskSpace, std::io::Error>) -> HostCharts {
    let mut memory = chart(
        "host-memory",
        "Memory in use",
        &r.memory,
        r.memory_total.map(|t| t as f64).unwrap_or(0.0),
        bytes,
    );
    if let (Some(total), false) = (r.memory_total, memory.current.is_empty()) {
        memory.current = format!("{} of {}", memory.current, bytes(total as f64));
    }
    HostCharts {
        charts: vec![
            chart("host-cpu", "CPU (all cores)", &r.cpu, 100.0, percent),
            memory,
        ],
        disk: match disk {
            Ok(d) => format!("{} free of {}", bytes(d.free as f64), bytes(d.total as f64)),
            Err(e) => format!("unknown ({e})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number in the `points`/`cx`/`cy` attributes, as (x, y).
    fn coordinates(svg: &str) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        if let Some(i) = svg.find("points=\"") {
            let rest = &svg[i + 8..];
            let list = &rest[..rest.find('"').unwrap()];
            for pair in list.split(' ') {
                let (x, y) = pair.split_once(',').unwrap();
                out.push((x.parse().unwrap(), y.parse().unwrap()));
            }
        }
        if let Some(i) = svg.find("cx=\"") {
            let x = &svg[i + 4..];
            let y = &svg[svg.find("cy=\"").unwrap() + 4..];
            out.push((
                x[..x.find('"').unwrap()].parse().unwrap(),
                y[..y.find('"').unwrap()].parse().unwrap(),
            ));
        }
        out
    }

    fn is_well_formed(svg: &str) -> bool {
        svg.starts_with("<svg ")
            && svg.ends_with("</svg>")
            && svg.matches('<').count() == svg.matches('>').count()
            && !svg.contains("style=")
            && !svg.contains("<script")
    }

    #[test]
    fn empty_series_draws_nothing() {
        assert_eq!(svg(&Series::default(), 3600.0, 100.0, "CPU"), None);
        let c = server_charts(&ServerResources::default());
        assert!(c.iter().all(|c| c.svg.is_none() && c.current.is_empty()));
        assert!(c.iter().all(|c| c.empty == "no data yet"));
    }

    #[test]
    fn memory_missing_beside_cpu_is_a_host_that_does_not_report_it() {
        let r = ServerResources {
            cpu: Series::new(vec![(0.0, 3.0), (10.0, 4.0)]),
            ..ServerResources::default()
        };
        let c = server_charts(&r);
        assert_eq!(c[1].key, "memory");
        assert_eq!(c[1].empty, "not reported by this host");
        assert_eq!(c[2].empty, "no data yet", "FPS needs a viewer, not a host");
    }

    #[test]
    fn one_sample_is_a_dot() {
        let s = Series::new(vec![(0.0, 50.0)]);
        let out = svg(&s, 3600.0, 100.0, "CPU").unwrap();
        assert!(is_well_formed(&out), "{out}");
        assert!(
            out.contains("<circle") && !out.contains("<polyline"),
            "{out}"
        );
        let pts = coordinates(&out);
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].0, WIDTH);
        assert!((pts[0].1 - HEIGHT / 2.0).abs() < 0.1, "{pts:?}");
    }

    #[test]
    fn values_stay_inside_the_view_box() {
        let s = Series::new(vec![
            (5000.0, 10.0), // older than the window: pinned to the left edge
            (1800.0, 0.0),
            (900.0, 250.0),
            (0.0, 75.0),
            (-3.0, 1e12),
        ]);
        let out = svg(&s, 3600.0, 100.0, "CPU").unwrap();
        assert!(is_well_formed(&out), "{out}");
        let pts = coordinates(&out);
        assert_eq!(pts.len(), 5);
        for (x, y) in &pts {
            assert!((0.0..=WIDTH).contains(x), "{pts:?}");
            assert!((PAD - 0.05..=HEIGHT - PAD + 0.05).contains(y), "{pts:?}");
        }
        assert_eq!(pts[0].0, 0.0);
        assert_eq!(pts[1].0, WIDTH / 2.0);
        // The maximum touches the top, zero the bottom.
        assert!((pts[4].1 - PAD).abs() < 0.05, "{pts:?}");
        assert!((pts[1].1 - (HEIGHT - PAD)).abs() < 0.05, "{pts:?}");
        // Later samples are further right.
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0), "{pts:?}");
    }

    #[test]
    fn flat_and_odd_values() {
        let s = Series::new(vec![(10.0, 0.0), (0.0, 0.0), (5.0, f64::NAN)]);
        let out = svg(&s, 3600.0, 0.0, "x").unwrap();
        assert!(!out.contains("NaN") && !out.contains("inf"), "{out}");
        assert_eq!(coordinates(&out).len(), 2);
        assert!(
            svg(&s, 0.0, 0.0, "x").is_some(),
            "a zero window does not divide by zero"
        );
    }

    #[test]
    fn labels_are_escaped() {
        let s = Series::new(vec![(0.0, 1.0), (1.0, 2.0)]);
        let out = svg(&s, 60.0, 0.0, "<script>\"&'").unwrap();
        assert!(
            out.contains("aria-label=\"&lt;script&gt;&quot;&amp;&#39;\""),
            "{out}"
        );
        assert!(is_well_formed(&out));
    }

    #[test]
    fn figures_in_words() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(734_003_200.0), "700.0 MiB");
        assert_eq!(percent(12.345), "12.3 %");
        let r = ServerResources {
            cpu: Series::new(vec![(4.0, 10.0), (2.0, 30.0), (0.0, 20.0)]),
            ..Default::default()
        };
        let c = &server_charts(&r)[0];
        assert_eq!(
            (c.current.as_str(), c.min.as_str(), c.max.as_str()),
            ("20.0 %", "10.0 %", "30.0 %")
        );
        let h = host_charts(
            &HostResources::default(),
            Ok(DiskSpace {
                free: 1024,
                total: 2048,
            }),
        );
        assert_eq!(h.disk, "1.0 KiB free of 2.0 KiB");
    }
}
