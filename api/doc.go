// Package api holds Candor's wire contracts: the JSON types and error codes of
// the key server's publish API and of the verification service's device and
// admin APIs. They match the Google exposure-notifications reference servers
// field for field, so apps built for those servers work unchanged, and app
// back ends may import this package to talk to Candor.
//
// It also holds the contracts between the two services and with phones, so
// that neither service imports the other: the verification certificate's
// claims (CertificateClaims), the key set that publishes its keys (JWK,
// JWKS), the TEK-MAC that binds it to the uploaded keys (TEKMACCleartext,
// TEKMAC), and the one parser of P-256 public keys in PEM form
// (ParsePublicKeyPEM).
//
// Sub-packages hold the export file format (api/export) and the schema of the
// transparency log's entries.
package api
