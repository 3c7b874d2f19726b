// Package account holds the people who use the verification service's web
// UI: users with a role per realm, their passwords and optional TOTP second
// factor, server-side sessions, sign-in throttling, and the internal audit
// list of admin actions.
//
// Roles: a health worker (RoleWorker) issues and checks codes in a realm; a
// realm admin (RoleAdmin) also manages the realm's users, API keys, code
// policy and reads its statistics; a system admin (User.System) manages
// realms and acts as an admin in every realm.
//
// Passwords are stored as argon2id hashes; sessions are random 256-bit
// tokens stored only as their SHA-256, so that a copy of the store opens no
// session; TOTP secrets are sealed with an AEAD (a Tink keyset in
// production). Everything lives behind the Store interface (store.go),
// implemented by storage/bolt and storage/redis and checked by one
// conformance suite (storage/storetest), so sessions work across replicas.
//
// The audit list names staff ("who changed what, when") and is for the
// realm's admins only: it is never written to the public transparency log.
package account
