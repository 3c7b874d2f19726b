package ui

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/verification"
)

type statsDay struct {
	Day                      string
	Label                    string
	Issued, Claimed, Expired int64
	Invalid, Certificates    int64
	ClaimRate                float64
	HasRate                  bool
}

type statsPage struct {
	Days       int
	Choices    []int
	Rows       []statsDay
	Total      statsDay
	Counts     *chartSpec
	Rates      *chartSpec
	FirstDay   string
	LastDay    string
	EmptyRange bool
}

func (h *Handler) stats(c echo.Context, st *state) error {
	days := 14
	if n, err := strconv.Atoi(c.QueryParam("days")); err == nil && (n == 7 || n == 28 || n == 90) {
		days = n
	}
	now := h.opts.Now().UTC()
	from := now.AddDate(0, 0, 1-days)
	got, err := h.ver.Stats(c.Request().Context(), st.realm.Name, from, now)
	if err != nil {
		return h.fail(c, st, err)
	}
	byDay := map[string]verification.Stats{}
	for _, d := range got {
		byDay[d.Day] = d.Stats
	}
	p := statsPage{Days: days, Choices: []int{7, 14, 28, 90}, EmptyRange: len(got) == 0}
	counts := &chartSpec{ID: "chart-counts", Title: fmt.Sprintf("Codes per day, last %d UTC days", days),
		Desc: "Bars per day: codes issued, codes claimed (redeemed by the app), and codes that expired unclaimed. The table below has the numbers."}
	rates := &chartSpec{ID: "chart-rate", Title: fmt.Sprintf("Claim rate per day, last %d UTC days", days), Max: 1,
		Desc:   "Codes claimed that day divided by codes issued that day. The table below has the numbers.",
		Format: func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) }}
	issued := series{Name: "Issued", Class: "s-issued"}
	claimed := series{Name: "Claimed", Class: "s-claimed"}
	expired := series{Name: "Expired unclaimed", Class: "s-expired"}
	rate := series{Name: "Claim rate", Class: "s-rate"}
	for i := range days {
		t := from.AddDate(0, 0, i)
		s := byDay[verification.UTCDay(t)]
		d := statsDay{Day: verification.UTCDay(t), Label: t.Format("2 Jan"), Issued: s.CodesIssued, Claimed: s.CodesClaimed,
			Expired: s.CodesExpired, Invalid: s.InvalidAttempts, Certificates: s.CertificatesIssued}
		if d.Issued > 0 {
			d.ClaimRate, d.HasRate = float64(d.Claimed)/float64(d.Issued), true
		}
		p.Rows = append(p.Rows, d)
		p.Total.Issued += d.Issued
		p.Total.Claimed += d.Claimed
		p.Total.Expired += d.Expired
		p.Total.Invalid += d.Invalid
		p.Total.Certificates += d.Certificates
		counts.Labels = append(counts.Labels, d.Label)
		rates.Labels = append(rates.Labels, d.Label)
		issued.Values = append(issued.Values, float64(d.Issued))
		claimed.Values = append(claimed.Values, float64(d.Claimed))
		expired.Values = append(expired.Values, float64(d.Expired))
		rate.Values = append(rate.Values, d.ClaimRate)
	}
	if p.Total.Issued > 0 {
		p.Total.ClaimRate, p.Total.HasRate = float64(p.Total.Claimed)/float64(p.Total.Issued), true
	}
	counts.Series = []series{issued, claimed, expired}
	rates.Series = []series{rate}
	p.Counts, p.Rates = counts, rates
	p.FirstDay, p.LastDay = p.Rows[0].Day, p.Rows[len(p.Rows)-1].Day
	slices.Reverse(p.Rows) // the table shows the newest day first
	return h.render(c, http.StatusOK, "stats", st, "Statistics", p)
}
