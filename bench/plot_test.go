package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/httpbreaker/httpbreaker/internal/knee"
)

// A hand-drawn SVG line chart, for the plots make simulate puts in
// docs/overload.md: panels stacked over one time axis, a line per
// contender in each. No plotting dependency: a handful of paths and text.

// plotLine is one contender's series in a panel.
type plotLine struct {
	name  string
	color string
	at    []time.Duration
	value []float64
}

// plotPanel is one quantity over time.
type plotPanel struct {
	title string
	lines []plotLine
	// ceiling, if set, tops the value axis: higher values run along it.
	ceiling float64
}

// plotColors are the contenders' colours, in limiterContenders' order.
var plotColors = []string{"#1f77b4", "#d62728", "#2ca02c"}

const (
	plotWidth       = 760
	plotPanelHeight = 150
	plotLeft        = 60
	plotRight       = 20
	plotTop         = 50
	plotGap         = 40
)

// svgPlot draws panels over [0, length), with a dashed mark at each of
// marks, under title.
func svgPlot(title string, panels []plotPanel, length time.Duration, marks []time.Duration) string {
	height := plotTop + len(panels)*(plotPanelHeight+plotGap) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", plotLeft, escape(title))
	if len(panels) > 0 { // the legend
		x := plotLeft
		for _, l := range panels[0].lines {
			fmt.Fprintf(&b, `<line x1="%d" y1="36" x2="%d" y2="36" stroke="%s" stroke-width="2"/><text x="%d" y="40">%s</text>`+"\n",
				x, x+20, l.color, x+25, escape(l.name))
			x += 30 + 7*len(l.name)
		}
	}
	inner := float64(plotWidth - plotLeft - plotRight)
	xOf := func(at time.Duration) float64 { return plotLeft + inner*float64(at)/float64(length) }
	for i, p := range panels {
		top := float64(plotTop + i*(plotPanelHeight+plotGap) + 20)
		bottom := top + plotPanelHeight
		high := 0.0
		for _, l := range p.lines {
			for _, v := range l.value {
				high = max(high, v)
			}
		}
		high = niceCeiling(high)
		if p.ceiling > 0 {
			high = min(high, p.ceiling)
		}
		yOf := func(v float64) float64 { return bottom - plotPanelHeight*v/high }
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" font-weight="bold">%s</text>`+"\n", plotLeft, top-6, escape(p.title))
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%.0f" height="%d" fill="none" stroke="#999"/>`+"\n", plotLeft, top, inner, plotPanelHeight)
		for _, f := range []float64{0, 0.5, 1} { // the value axis
			y := yOf(f * high)
			fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%s</text>`+"\n", plotLeft-6, y+4, trimFloat(f*high))
			if f > 0 && f < 1 {
				fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#ddd"/>`+"\n", plotLeft, y, plotLeft+inner, y)
			}
		}
		for s := time.Duration(0); s <= length; s += time.Second { // the time axis
			fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">%ds</text>`+"\n", xOf(s), bottom+14, int(s/time.Second))
		}
		for _, m := range marks {
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888" stroke-dasharray="4 3"/>`+"\n", xOf(m), top, xOf(m), bottom)
		}
		for _, l := range p.lines {
			var path strings.Builder
			for j, at := range l.at {
				cmd := "L"
				if j == 0 {
					cmd = "M"
				}
				fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, xOf(at), yOf(min(l.value[j], high)))
			}
			fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", strings.TrimSpace(path.String()), l.color)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeiling rounds v up to 1, 2 or 5 times a power of ten.
func niceCeiling(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.0f", v), ".0") }

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// series turns a trace into a plot line's points.
func series(tr knee.Trace) ([]time.Duration, []float64) {
	values := make([]float64, len(tr.Limit))
	for i, v := range tr.Limit {
		values[i] = float64(v)
	}
	return tr.At, values
}

// p50Series is the median latency, in milliseconds, of the successful
// answers that came in each step of time.
func p50Series(answered, latencies []time.Duration, ok []bool, length, step time.Duration) ([]time.Duration, []float64) {
	buckets := make([][]time.Duration, int(length/step)+1)
	for i, at := range answered {
		if b := int(at / step); b < len(buckets) && ok[i] {
			buckets[b] = append(buckets[b], latencies[i])
		}
	}
	var at []time.Duration
	var values []float64
	for i, b := range buckets {
		if len(b) == 0 {
			continue
		}
		at = append(at, time.Duration(i)*step+step/2)
		values = append(values, float64(knee.Percentile(b, 0.5))/float64(time.Millisecond))
	}
	return at, values
}

// writePlot writes svg to dir/name.
func writePlot(dir, name, svg string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(svg), 0o644)
}
