package ui

import (
	"fmt"
	"html"
	"html/template"
	"strings"

	"rsc.io/qr"
)

// qrSVG is a QR code drawn as an inline SVG: no image request, so the
// encoded text (a long code's link, a TOTP secret) never appears in a URL.
type qrSVG struct {
	size  int // modules, quiet zone included
	path  string
	label string
}

// quietZone is the blank margin, in modules, that scanners need.
const quietZone = 4

// newQR encodes text (error correction M) with an accessible label.
func newQR(text, label string) (*qrSVG, error) {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	var d strings.Builder
	for y := 0; y < code.Size; y++ {
		for x := 0; x < code.Size; x++ {
			if !code.Black(x, y) {
				continue
			}
			// Runs of dark modules become one rectangle.
			run := 1
			for x+run < code.Size && code.Black(x+run, y) {
				run++
			}
			fmt.Fprintf(&d, "M%d %dh%dv1h-%dz", x+quietZone, y+quietZone, run, run)
			x += run - 1
		}
	}
	return &qrSVG{size: code.Size + 2*quietZone, path: d.String(), label: label}, nil
}

// SVG returns the markup. Dark on white whatever the page's colours, as
// scanners expect.
func (q *qrSVG) SVG() template.HTML {
	return template.HTML(fmt.Sprintf( // #nosec: numbers and an escaped label only
		`<svg class="qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s" shape-rendering="crispEdges"><rect width="%d" height="%d" fill="#fff"/><path d="%s" fill="#000"/></svg>`,
		q.size, q.size, html.EscapeString(q.label), q.size, q.size, q.path))
}
