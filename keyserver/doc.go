// Package keyserver is the key server's domain: the diagnosis keys phones
// upload (exposures), the health authorities whose certificates authorise an
// upload, the apps allowed to publish, and the publish rules themselves —
// validation, certificate and TEK HMAC checks, symptom onset, revision tokens
// and report-type transitions, embargo and coarse time.
//
// The rules are plain Go that tests call without HTTP or a store. Storage
// lives behind the ExposureStore and AuthorityStore interfaces, implemented
// by adapter packages (storage/bolt, and Redis for shared deployments); the
// HTTP translation is one thin file (http.go).
package keyserver
