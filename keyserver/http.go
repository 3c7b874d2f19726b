package keyserver

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/internal/web"
)

// Handler serves the publish API over HTTP.
type Handler struct {
	pub      *Publisher
	log      *slog.Logger
	outcomes *prometheus.CounterVec
	keys     *prometheus.CounterVec
	// timer releases real and decoy answers alike (web.ReleaseTimer).
	timer web.ReleaseTimer
}

// NewHandler returns the HTTP handler of pub, registering its metrics with reg.
func NewHandler(pub *Publisher, log *slog.Logger, reg prometheus.Registerer) *Handler {
	h := &Handler{
		pub: pub,
		log: log,
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_publish_requests_total",
			Help: "Publish requests by outcome: ok, chaff, or the error code.",
		}, []string{"code"}),
		keys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_publish_keys_total",
			Help: "Uploaded keys by result: inserted, revised or dropped.",
		}, []string{"result"}),
	}
	reg.MustRegister(h.outcomes, h.keys)
	return h
}

// Register adds the publish route to e.
func (h *Handler) Register(e *echo.Echo) {
	e.POST(api.PublishPath, h.publish)
}

// publish answers an upload. A decoy (X-Chaff) is read and discarded and
// answered like a success; real and decoy answers alike leave at a release
// time and padded size that tell nothing (web.ReleaseTimer, web.PadJSON).
func (h *Handler) publish(c echo.Context) error {
	start := web.ReadBody(c)
	ctx := c.Request().Context()
	if c.Request().Header.Get(api.ChaffHeader) != "" {
		h.outcomes.WithLabelValues("chaff").Inc()
		token := web.RandomBase64(revisionTokenCiphertextSize)
		return h.reply(c, http.StatusOK, &api.PublishResponse{RevisionToken: token, InsertedExposures: 1 + rand.IntN(14)},
			func() { h.timer.Decoy(ctx, start) })
	}
	status, resp := h.answer(c)
	if resp == nil {
		return nil // the client is gone; nobody reads an answer
	}
	return h.reply(c, status, resp, func() { h.timer.Real(ctx, start, status == http.StatusOK) })
}

// answer handles a real publish; a nil answer means the client left.
func (h *Handler) answer(c echo.Context) (int, *api.PublishResponse) {
	var req api.Publish
	if err := web.DecodeJSON(c, &req); err != nil {
		status := http.StatusBadRequest
		var de *web.DecodeError
		if errors.As(err, &de) {
			status = de.Status
		}
		h.outcomes.WithLabelValues(api.CodeBadRequest).Inc()
		return status, &api.PublishResponse{ErrorMessage: err.Error(), Code: api.CodeBadRequest}
	}
	res, err := h.pub.Publish(c.Request().Context(), &req)
	if err != nil && c.Request().Context().Err() != nil {
		h.outcomes.WithLabelValues("canceled").Inc()
		return 0, nil
	}
	if err != nil {
		code := ErrorCode(err)
		h.outcomes.WithLabelValues(code).Inc()
		msg := "internal error"
		var perr *api.Error
		if errors.As(err, &perr) {
			msg = perr.Message
		}
		if Status(code) >= 500 {
			h.log.ErrorContext(c.Request().Context(), "publish failed", "code", code, "err", err)
		} else {
			h.log.DebugContext(c.Request().Context(), "publish refused", "code", code, "err", err)
		}
		return Status(code), &api.PublishResponse{ErrorMessage: msg, Code: code}
	}
	h.keys.WithLabelValues("inserted").Add(float64(res.Inserted))
	h.keys.WithLabelValues("revised").Add(float64(res.Revised))
	h.keys.WithLabelValues("dropped").Add(float64(res.Dropped))
	resp := &api.PublishResponse{
		RevisionToken:     res.RevisionToken,
		InsertedExposures: res.Inserted,
		Warnings:          res.Warnings,
	}
	outcome := "ok"
	if res.PartialFailure != "" {
		resp.Code, resp.ErrorMessage = api.CodePartialFailure, res.PartialFailure
		outcome = api.CodePartialFailure
	}
	h.outcomes.WithLabelValues(outcome).Inc()
	return http.StatusOK, resp
}

// revisionTokenCiphertextSize is the sealed size of every revision token:
// Tink's 5-byte prefix, the 12-byte GCM nonce and the 16-byte tag.
const revisionTokenCiphertextSize = 5 + 12 + revisionPlaintextSize + 16

// reply pads resp to a size drawn from one fixed distribution, holds it
// until hold returns (its release time) and sends it, never cached.
func (h *Handler) reply(c echo.Context, status int, resp *api.PublishResponse, hold func()) error {
	b, err := web.PadJSON(resp, &resp.Padding)
	if err != nil {
		return err
	}
	hold()
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSONBlob(status, b)
}

// Status returns the HTTP status of a publish error code.
func Status(code string) int {
	switch code {
	case "":
		return http.StatusOK
	case api.CodePartialFailure:
		return http.StatusOK
	case api.CodeUnknownHealthAuthorityID, api.CodeCertificateInvalid:
		return http.StatusUnauthorized
	case api.CodeInternalError, api.CodeUnableToLoadHealthAuthority:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// ErrorCode returns the API code of err: the code of an *api.Error, or
// internal_error for anything else.
func ErrorCode(err error) string {
	return api.ErrorCode(err, api.CodeInternalError)
}
