// Package web holds what every Candor HTTP API shares: the echo server with
// its timeouts and graceful shutdown, request logging and metrics that never
// see a client address, the strict JSON decoder of the device and admin
// APIs, response padding, and the latency sampler that makes decoy (chaff)
// requests look like real ones.
package web
