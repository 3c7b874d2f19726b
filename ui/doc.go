// Package ui is the health workers' and realm admins' web UI of the
// verification service, served under /ui/: sign-in (password, optional TOTP
// second factor), issuing a code (with a live expiry countdown, the link of
// the long code and its QR code), bulk issuing from a CSV file, checking and
// expiring a code by its tracking ID, and for admins the realm's statistics,
// users, API keys, code policy and audit list; system admins manage realms.
//
// Pages are server-rendered html/template and work without JavaScript; one
// small script (assets/ui.js) adds the countdown, copy buttons and the bulk
// progress bar. Every asset is embedded (go:embed); the Content Security
// Policy allows scripts and styles from this origin only, without
// 'unsafe-inline'. State-changing requests need the session's CSRF token
// (and pass net/http's cross-origin check); sessions are server-side, in the
// account store (see package verification/account).
//
// The rules live in packages verification and verification/account; this
// package only translates between them and HTML.
package ui
