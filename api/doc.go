// Package api holds Candor's wire contracts: the JSON types and error codes of
// the key server's publish API and of the verification service's device and
// admin APIs. They match the Google exposure-notifications reference servers
// field for field, so apps built for those servers work unchanged, and app
// back ends may import this package to talk to Candor.
//
// Sub-packages hold the export file format (api/export) and the schema of the
// transparency log's entries.
package api
