// Package client is a Go client for every Candor API, written for the back
// ends of exposure-notification apps, for health authorities' systems, and
// for tools that test a deployment. The `candor phone` simulator and
// Candor's own end-to-end tests use it.
//
// # The upload journey
//
// A person tests positive and a health worker issues a verification code
// (Client.Issue, with a realm's admin API key). The person's app then:
//
//  1. exchanges the code for a verification token (Client.Verify, with the
//     app's device API key);
//  2. prepares the upload of its temporary exposure keys (PreparePublish),
//     which draws a random HMAC secret and computes the HMAC of exactly those
//     keys, and exchanges the token and that HMAC for a verification
//     certificate (Client.Certificate);
//  3. uploads the keys with the certificate and the secret
//     (Client.Publish), keeping the revision token of the answer so that a
//     later, more certain result (likely → confirmed) can revise the keys.
//
// # The download journey
//
// Every phone periodically lists the export files of its region
// (Client.Index), downloads the ones it has not seen (Client.DownloadExport),
// checks their signatures against public keys it was configured with, and
// matches the keys inside against what it heard over Bluetooth (package
// phone does the matching for the simulator). Pin the export signing keys
// with WithExportKeys, as apps do; WithFetchedExportKeys trusts whatever
// keys the server lists under /exports/<root>/keys, which is only good for
// tests and demos.
//
// # The transparency log
//
// Client.LogCheckpoint fetches the data-use log's checkpoint, verified
// against the log's public key given with WithLogKey, and Client.LogEntries
// downloads the entries it commits to and checks that they hash to it.
//
// # Errors
//
// A request the server refused returns an *APIError, found with errors.As:
// it holds the HTTP status, the API's error code (the api.Err* and api.Code*
// constants) and the server's message, and its Error method leads with a
// sentence a person can act on (see Explain). Export files that fail
// verification return errors wrapping the sentinel errors of package
// api/export (export.ErrBadSignature, export.ErrUnknownKey,
// export.ErrNotZip, export.ErrBadHeader, …), checked with errors.Is.
//
// # Privacy on the network
//
// Requests to the device API carry 1–2 KiB of random padding, as the
// server's answers do, so that their size does not reveal what they are,
// and Client.Chaff sends a decoy upload journey that the servers answer
// like a real one: apps send it at random times so that uploading cannot
// be told apart from not uploading.
package client
