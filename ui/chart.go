package ui

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// series is one set of bars of a chart; class colours it (style.css).
type series struct {
	Name   string
	Class  string
	Values []float64
}

// chartSpec is a grouped bar chart: one group per label, one bar per
// series. It renders as inline SVG, so it needs no script; the page shows
// the same numbers in a table for screen readers and for copying.
type chartSpec struct {
	ID     string
	Title  string
	Desc   string
	Labels []string
	Series []series
	// Max fixes the top of the axis (e.g. 1 for rates); 0 scales to the data.
	Max    float64
	Format func(float64) string
}

// Chart geometry in SVG user units; the SVG scales to its container.
const (
	chartW, chartH            = 720, 280
	padLeft, padRight, padTop = 48, 8, 12
	padBottom                 = 40
	plotW                     = chartW - padLeft - padRight
	plotH                     = chartH - padTop - padBottom
	maxLabels                 = 10
	barGap, groupGapFraction  = 1.0, 0.25
	gridLines                 = 4
)

// niceMax rounds m up to 1, 2 or 5 times a power of ten.
func niceMax(m float64) float64 {
	if m <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(m)))
	for _, f := range []float64{1, 2, 5, 10} {
		if f*p >= m {
			return f * p
		}
	}
	return 10 * p
}

// SVG draws the chart.
func (c *chartSpec) SVG() template.HTML {
	format := c.Format
	if format == nil {
		format = func(v float64) string { return fmt.Sprintf("%.0f", v) }
	}
	top := c.Max
	if top == 0 {
		for _, s := range c.Series {
			for _, v := range s.Values {
				top = math.Max(top, v)
			}
		}
		top = niceMax(top)
		// Whole-number axes for counts below four.
		if top < gridLines {
			top = gridLines
		}
	}
	esc := html.EscapeString
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-labelledby="%s-t %s-d">`, chartW, chartH, esc(c.ID), esc(c.ID))
	fmt.Fprintf(&b, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, esc(c.ID), esc(c.Title), esc(c.ID), esc(c.Desc))
	for i := 0; i <= gridLines; i++ {
		v := top * float64(i) / gridLines
		y := padTop + plotH - plotH*float64(i)/gridLines
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padLeft, chartW-padRight, y, y)
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`, padLeft-6, y+4, esc(format(v)))
	}
	n := len(c.Labels)
	if n > 0 && len(c.Series) > 0 {
		group := float64(plotW) / float64(n)
		inner := group * (1 - groupGapFraction)
		bar := (inner - barGap*float64(len(c.Series)-1)) / float64(len(c.Series))
		every := (n + maxLabels - 1) / maxLabels
		for i, label := range c.Labels {
			x0 := padLeft + group*float64(i) + (group-inner)/2
			for j, s := range c.Series {
				v := 0.0
				if i < len(s.Values) {
					v = s.Values[i]
				}
				hgt := plotH * math.Min(v, top) / top
				x := x0 + float64(j)*(bar+barGap)
				fmt.Fprintf(&b, `<rect class="bar %s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s, %s: %s</title></rect>`,
					esc(s.Class), x, padTop+plotH-hgt, bar, hgt, esc(label), esc(s.Name), esc(format(v)))
			}
			if i%every == 0 || i == n-1 && every == 1 {
				fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%d" text-anchor="middle">%s</text>`, padLeft+group*(float64(i)+0.5), chartH-padBottom+18, esc(label))
			}
		}
	}
	fmt.Fprintf(&b, `<line class="baseline" x1="%d" x2="%d" y1="%d" y2="%d"/>`, padLeft, chartW-padRight, padTop+plotH, padTop+plotH)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec: every text above is escaped
}
