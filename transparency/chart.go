package transparency

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"

	"github.com/candor-en/candor/api/logentry"
)

// value is one bar of a chart: a count, and whether it is a lower bound
// (some of its parts were counts below the threshold, shown as "<10").
type value struct {
	N     int64
	Lower bool
}

// series is one set of bars of a chart, one value per day.
type series struct {
	Name string
	// Class styles the bars (see style.css): "s1" or "s2".
	Class  string
	Values []value
}

// chart is one daily bar chart of the page.
type chart struct {
	Title string
	Note  string
	// SVG is the chart, rendered on the server; no script, no external
	// resource, styled only by classes of the page's style sheet.
	SVG    template.HTML
	Series []series
	// Total sums every series over the days.
	Totals []string
	// Rows are the days with a count, oldest first: the chart's numbers
	// as a table, for screen readers and for copying.
	Rows []chartRow
}

// chartRow is one day of a chart's numbers, a value per series.
type chartRow struct {
	Day    string
	Values []string
}

// Chart geometry, in SVG user units.
const (
	chartWidth  = 720
	chartHeight = 200
	chartLeft   = 48
	chartBottom = 26
	chartTop    = 8
)

// barChart renders series over days as grouped bars.
func barChart(title string, days []time.Time, ss []series) template.HTML {
	maxV := int64(0)
	for _, s := range ss {
		for _, v := range s.Values {
			maxV = max(maxV, v.N)
		}
	}
	top := niceCeil(maxV)
	plotW := float64(chartWidth - chartLeft - 4)
	plotH := float64(chartHeight - chartTop - chartBottom)
	group := plotW / float64(max(len(days), 1))
	bar := group * 0.8 / float64(max(len(ss), 1))

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartWidth, chartHeight, html.EscapeString(title))
	// Axes and the scale.
	baseY := float64(chartTop) + plotH
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%.1f"/>`, chartLeft, chartTop, chartLeft, baseY)
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, chartLeft, baseY, chartWidth-4, baseY)
	fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%d" x2="%d" y2="%d"/>`, chartLeft, chartTop, chartWidth-4, chartTop)
	fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="end">%s</text>`, chartLeft-4, chartTop+8, formatInt(top))
	fmt.Fprintf(&b, `<text class="label" x="%d" y="%.1f" text-anchor="end">0</text>`, chartLeft-4, baseY)
	for i, d := range days {
		x := float64(chartLeft) + group*float64(i) + group*0.1
		for j, s := range ss {
			if i >= len(s.Values) {
				continue
			}
			v := s.Values[i]
			h := 0.0
			if top > 0 {
				h = plotH * float64(v.N) / float64(top)
			}
			if v.N > 0 && h < 1 {
				h = 1
			}
			class := s.Class
			label := formatInt(v.N)
			if v.Lower {
				class += " lower"
				label = "at least " + label + " (some counts <10)"
			}
			fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s %s: %s</title></rect>`,
				class, x+bar*float64(j), baseY-h, bar, h, d.Format(logentry.DayLayout), html.EscapeString(s.Name), html.EscapeString(label))
		}
		if i == 0 || i == len(days)-1 || i == len(days)/2 {
			anchor := "middle"
			if i == 0 {
				anchor = "start"
			} else if i == len(days)-1 {
				anchor = "end"
			}
			fmt.Fprintf(&b, `<text class="label" x="%.1f" y="%d" text-anchor="%s">%s</text>`,
				float64(chartLeft)+group*(float64(i)+0.5), chartHeight-6, anchor, d.Format("Jan 2"))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceCeil rounds n up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(n int64) int64 {
	if n <= 1 {
		return 1
	}
	p := int64(1)
	for p*10 < n {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= n {
			return m * p
		}
	}
	return 10 * p
}

// formatInt writes n with thin thousands separators.
func formatInt(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
