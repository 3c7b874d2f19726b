package ui

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/candor-en/candor/verification"
)

type apiKeysPage struct {
	Keys  []*verification.APIKey
	Error string
	Name  string
	Kind  string
	// Created is a key just created: its secret is shown this once.
	Created *verification.APIKey
	Secret  string
	Notice  string
}

func (h *Handler) apiKeysPage(c echo.Context, st *state, status int, p apiKeysPage) error {
	keys, err := h.ver.APIKeys(c.Request().Context(), st.realm.Name)
	if err != nil {
		return h.fail(c, st, err)
	}
	slices.SortFunc(keys, func(a, b *verification.APIKey) int { return b.CreatedAt.Compare(a.CreatedAt) })
	p.Keys = keys
	return h.render(c, status, "apikeys", st, "API keys", p)
}

func (h *Handler) apiKeys(c echo.Context, st *state) error {
	p := apiKeysPage{Kind: string(verification.DeviceKey)}
	if c.QueryParam("done") == "revoke" {
		p.Notice = "The key was revoked: requests with it are refused from now on."
	}
	return h.apiKeysPage(c, st, http.StatusOK, p)
}

func (h *Handler) addAPIKey(c echo.Context, st *state) error {
	name, kindText := strings.TrimSpace(c.FormValue("name")), c.FormValue("kind")
	kind, err := verification.ParseAPIKeyKind(kindText)
	if err != nil || name == "" || len(name) > 100 {
		msg := "Give the key a name of at most 100 characters, such as “Android app”."
		if err != nil {
			msg = "Choose the kind of key."
		}
		return h.apiKeysPage(c, st, http.StatusBadRequest, apiKeysPage{Error: msg, Name: name, Kind: kindText})
	}
	secret, k, err := h.ver.CreateAPIKey(c.Request().Context(), st.realm.Name, kind, name)
	if err != nil {
		return h.fail(c, st, err)
	}
	return h.apiKeysPage(c, st, http.StatusOK, apiKeysPage{Created: k, Secret: secret, Kind: string(verification.DeviceKey)})
}

func (h *Handler) findKey(c echo.Context, st *state) (*verification.APIKey, error) {
	keys, err := h.ver.APIKeys(c.Request().Context(), st.realm.Name)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.ID == c.Param("id") {
			return k, nil
		}
	}
	return nil, nil
}

func (h *Handler) confirmRevoke(c echo.Context, st *state) error {
	k, err := h.findKey(c, st)
	if err != nil {
		return h.fail(c, st, err)
	}
	if k == nil || k.Revoked() {
		return h.notFound(c, st)
	}
	return h.render(c, http.StatusOK, "confirm", st, "Confirm", confirmPage{
		Heading: fmt.Sprintf("Revoke the %s key %q?", k.Kind, k.Name), Button: "Revoke key", Danger: true,
		Message: "Every request with this key is refused at once. This cannot be undone: a revoked key never works again.",
		Action:  Prefix + "/admin/apikeys/" + k.ID + "/revoke", Back: Prefix + "/admin/apikeys",
	})
}

func (h *Handler) revokeAPIKey(c echo.Context, st *state) error {
	_, err := h.ver.RevokeAPIKey(c.Request().Context(), st.realm.Name, c.Param("id"))
	if errors.Is(err, verification.ErrNotFound) {
		return h.notFound(c, st)
	}
	if err != nil {
		return h.fail(c, st, err)
	}
	return c.Redirect(http.StatusSeeOther, Prefix+"/admin/apikeys?done=revoke")
}
