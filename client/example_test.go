package client_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/candor-en/candor/api"
	"github.com/candor-en/candor/api/export"
	"github.com/candor-en/candor/client"
)

// The upload journey of an app after a positive test: verify the code,
// get a certificate for exactly the keys to upload, publish them.
func Example() {
	ctx := context.Background()
	c, err := client.New("https://candor.example.org")
	if err != nil {
		log.Fatal(err)
	}
	const deviceKey = "cd_…" // the app's device API key
	v, err := c.Verify(ctx, deviceKey, "12345678", []string{api.TestTypeLikely})
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && apiErr.Code == api.ErrVerifyCodeExpired {
		log.Fatal("ask the health authority for a new code")
	}
	if err != nil {
		log.Fatal(err) // the message says what went wrong and what to do
	}

	keys := []api.ExposureKey{ // the phone's temporary exposure keys
		{Key: "z2Cx9hdz2SlxZ8GEgqTYpA==", IntervalNumber: 2942208, IntervalCount: 144},
	}
	up, err := client.PreparePublish(keys, nil)
	if err != nil {
		log.Fatal(err)
	}
	cert, err := c.Certificate(ctx, deviceKey, v.VerificationToken, up.EKeyHMAC)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := c.Publish(ctx, up.Request("gov.example.app", cert.Certificate, ""))
	if err != nil {
		log.Fatal(err)
	}
	// Keep resp.RevisionToken: a later, confirmed result revises the keys
	// with it (pass it as the last argument of Request).
	fmt.Println(resp.InsertedExposures, "keys uploaded")
}

// The download journey: list the region's export files, download the new
// ones and check their signatures against the pinned public key.
func ExampleClient_DownloadExport() {
	ctx := context.Background()
	pemBytes, err := os.ReadFile("export-signing-key.pem")
	if err != nil {
		log.Fatal(err)
	}
	pub, err := api.ParsePublicKeyPEM(string(pemBytes))
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("https://candor.example.org", client.WithExportKeys(map[export.SignatureInfo]*ecdsa.PublicKey{
		{KeyID: "310", KeyVersion: "v1"}: pub,
	}))
	if err != nil {
		log.Fatal(err)
	}
	names, err := c.Index(ctx, "us-wa")
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range names { // skip the ones processed before
		f, err := c.DownloadExport(ctx, name)
		if errors.Is(err, export.ErrBadSignature) || errors.Is(err, export.ErrUnknownKey) {
			log.Printf("%s: not signed by the health authority: %v", name, err)
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(name, len(f.Keys), "keys,", len(f.RevisedKeys), "revised")
	}
}

func ExampleKeyHMAC() {
	secret, _ := base64.StdEncoding.DecodeString("AQIDBAUGBwgJCgsMDQ4PEA==")
	keys := []api.ExposureKey{
		{Key: "z2Cx9hdz2SlxZ8GEgqTYpA==", IntervalNumber: 1, IntervalCount: 144, TransmissionRisk: 3},
		{Key: "dPCphLzfG4uzXneNimkPRQ==", IntervalNumber: 144, IntervalCount: 144, TransmissionRisk: 5},
	}
	fmt.Println(base64.StdEncoding.EncodeToString(client.KeyHMAC(secret, keys)))
	// Output: 2u1nHt5WWurJytFLF3xitNzM99oNrad2y4YGOL53AeY=
}

func ExampleExplain() {
	fmt.Println(client.Explain(api.ErrVerifyCodeExpired))
	fmt.Println(client.Explain(api.CodeInvalidReportTypeTransition))
	// Output:
	// the verification code has expired; ask the health authority for a new one
	// this test result cannot replace the earlier one (only likely or self-reported results can be revised)
}
