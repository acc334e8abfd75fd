//! A hand-written SVG: delivery latency (log scale) against the submission's simulated
//! time, one dot per delivery (thinned to a bounded number), the p50 and p99 per time
//! bucket as lines, and the fault window shaded.

use crate::plan::Plan;

const W: f64 = 900.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const DOTS_MAX: usize = 4000;
const BUCKETS: usize = 60;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(super) fn svg(title: &str, points: &[(u64, u64)], plan: &Plan) -> String {
    let t_max = points
        .iter()
        .map(|p| p.0)
        .max()
        .unwrap_or(1)
        .max(plan.faults_end_ms)
        .max(1) as f64;
    let l_max = points.iter().map(|p| p.1).max().unwrap_or(1).max(10) as f64;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |t: f64| LEFT + t / t_max * pw;
    let ly = |l: f64| {
        let v = (l.max(1.0)).log10() / l_max.log10();
        TOP + ph - v * ph
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"14\">delivery latency over simulated time — {}</text>\n",
        esc(title)
    );
    if plan.faults_end_ms > 0 {
        let start = plan.faults.first().map_or(0, |f| f.at_ms) as f64;
        s.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{ph}\" fill=\"#fde8e8\"/>\n",
            x(start),
            (x(plan.faults_end_ms as f64) - x(start)).max(0.0)
        ));
        for f in &plan.faults {
            s.push_str(&format!(
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{1}\" stroke=\"#e99\" stroke-width=\"0.5\"><title>{2}</title></line>\n",
                x(f.at_ms as f64),
                TOP + ph,
                esc(&f.what)
            ));
        }
    }
    // axes and grid
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{0}\" stroke=\"black\"/>\n",
        TOP + ph,
        LEFT + pw
    ));
    let mut decade = 1.0;
    while decade <= l_max * 1.0001 {
        let y = ly(decade);
        let label = if decade >= 1000.0 {
            format!("{} s", decade / 1000.0)
        } else {
            format!("{decade} ms")
        };
        s.push_str(&format!(
            "<line x1=\"{LEFT}\" x2=\"{0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{label}</text>\n",
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0
        ));
        decade *= 10.0;
    }
    for i in 0..=5 {
        let t = t_max * i as f64 / 5.0;
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0} min</text>\n",
            x(t),
            TOP + ph + 16.0,
            t / 60_000.0
        ));
    }
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">submission time (simulated, from start of traffic)</text>\n",
        LEFT + pw / 2.0,
        H - 10.0
    ));
    // dots
    let step = points.len().div_ceil(DOTS_MAX).max(1);
    for p in points.iter().step_by(step) {
        s.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.3\" fill=\"#4a7ab7\" fill-opacity=\"0.5\"/>\n",
            x(p.0 as f64),
            ly(p.1 as f64)
        ));
    }
    // percentile lines
    let mut buckets: Vec<Vec<u64>> = vec![Vec::new(); BUCKETS];
    for p in points {
        let b = ((p.0 as f64 / t_max) * (BUCKETS as f64 - 1.0)).round() as usize;
        buckets[b.min(BUCKETS - 1)].push(p.1);
    }
    for (q, color, name) in [(0.5, "#1b5e20", "p50"), (0.99, "#b71c1c", "p99")] {
        let pts: Vec<String> = buckets
            .iter_mut()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, b)| {
                b.sort_unstable();
                let v = b[((b.len() as f64 - 1.0) * q).round() as usize];
                format!(
                    "{:.1},{:.1}",
                    x(t_max * i as f64 / (BUCKETS as f64 - 1.0)),
                    ly(v as f64)
                )
            })
            .collect();
        if !pts.is_empty() {
            s.push_str(&format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"/>\n",
                pts.join(" ")
            ));
        }
        let ly_label = if name == "p50" {
            TOP + 12.0
        } else {
            TOP + 26.0
        };
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{ly_label}\" fill=\"{color}\">{name}</text>\n",
            LEFT + pw - 30.0
        ));
    }
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#c66\">faults</text>\n",
        LEFT + 4.0,
        TOP + 12.0
    ));
    s.push_str("</svg>\n");
    s
}
